package pg

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// fuzzHooks refuses SQL containing "deny", rewrites SQL containing
// "rewrite", and re-encodes every row, so every path of the proxy runs.
type fuzzHooks struct{}

func (fuzzHooks) Open(context.Context, ConnInfo) ConnHooks { return fuzzConn{} }

type fuzzConn struct{}

func (fuzzConn) Inspect(_ context.Context, q Query) Verdict {
	switch {
	case strings.Contains(q.SQL, "deny") || q.Kind == FunctionCallMessage:
		return Verdict{Action: Refuse, Message: "denied"}
	case strings.Contains(q.SQL, "rewrite"):
		return Verdict{Action: Rewrite, SQL: "select 1"}
	}
	return Verdict{Action: Forward}
}
func (fuzzConn) StartResult(ResultInfo) RowFilter            { return fuzzFilter{} }
func (fuzzConn) ServerError(e *ServerMessage, notice bool)   { e.Message += "!" }
func (fuzzConn) Notification(channel, payload string) string { return payload }
func (fuzzConn) Close(error)                                 {}

type fuzzFilter struct{}

func (fuzzFilter) Row(v [][]byte) {
	for i := range v {
		if v[i] != nil {
			v[i] = append([]byte("<"), v[i]...)
		}
	}
}
func (fuzzFilter) CopyData(d []byte) []byte { return d }
func (fuzzFilter) End(string, string)       {}

func msg(m pgproto3.FrontendMessage) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func clientSeeds() [][]byte {
	return [][]byte{
		msg(&pgproto3.Query{String: "select 1"}),
		msg(&pgproto3.Query{String: "select 1; deny"}),
		msg(&pgproto3.Query{String: "rewrite me"}),
		msg(&pgproto3.Query{String: ""}),
		cat(msg(&pgproto3.Parse{Name: "s", Query: "select $1"}), msg(&pgproto3.Describe{ObjectType: 'S', Name: "s"}),
			msg(&pgproto3.Bind{PreparedStatement: "s", ResultFormatCodes: []int16{1}}), msg(&pgproto3.Execute{}), msg(&pgproto3.Sync{})),
		cat(msg(&pgproto3.Parse{Name: "d", Query: "deny"}), msg(&pgproto3.Bind{PreparedStatement: "d"}), msg(&pgproto3.Execute{}),
			msg(&pgproto3.Sync{}), msg(&pgproto3.Bind{PreparedStatement: "d"}), msg(&pgproto3.Describe{ObjectType: 'P'}),
			msg(&pgproto3.Execute{}), msg(&pgproto3.Sync{})),
		cat(msg(&pgproto3.Parse{Query: "select 1"}), msg(&pgproto3.Bind{}), msg(&pgproto3.Execute{MaxRows: 1}), msg(&pgproto3.Flush{}),
			msg(&pgproto3.Close{ObjectType: 'P'}), msg(&pgproto3.Close{ObjectType: 'S'}), msg(&pgproto3.Sync{})),
		cat(msg(&pgproto3.FunctionCall{Function: 1}), msg(&pgproto3.Query{String: "select 2"})),
		cat(msg(&pgproto3.CopyData{Data: []byte("1\t2\n")}), msg(&pgproto3.CopyDone{}), msg(&pgproto3.CopyFail{Message: "x"})),
		cat(msg(&pgproto3.Query{String: "select 1"}), msg(&pgproto3.Terminate{})),
		{'Q', 0, 0, 0, 4},
		{'Q', 0x7f, 0xff, 0xff, 0xff},
		{'X', 0, 0, 0, 5, 0},
	}
}

// FuzzClientStream sends arbitrary bytes after a successful startup, with
// hooks that refuse, rewrite and re-encode. The proxy must not panic, must
// not forward what it could not parse, and must end the connection once
// the client has hung up (no hang), whatever it sent.
func FuzzClientStream(f *testing.F) {
	for _, s := range clientSeeds() {
		f.Add(s)
	}
	_, _, addr := serveFake(f, fuzzHooks{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pc, err := pgconn.Connect(ctx, "postgres://guardrun:pw@"+addr+"/db?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.SyncConn(context.Background()); err != nil {
			t.Fatal(err)
		}
		hc, err := pc.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		c := hc.Conn
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(data); err != nil {
			return // the proxy may hang up while we write
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection did not end after the client hung up: %v", err)
		}
	})
}

// FuzzStartup sends arbitrary bytes as the startup phase.
func FuzzStartup(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})                                     // SSLRequest
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 48})                                     // GSSENCRequest
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})            // CancelRequest
	f.Add(append([]byte{0, 0, 0, 23, 0, 3, 0, 0}, "user\x00guardrun\x00\x00"...)) // StartupMessage
	f.Add(append([]byte{0, 0, 0, 23, 0, 3, 0, 2}, "user\x00guardrun\x00\x00"...))
	f.Add(append(append([]byte{0, 0, 0, 23, 0, 3, 0, 0}, "user\x00guardrun\x00\x00"...),
		msg(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abc")})...))
	_, _, addr := serveFake(f, fuzzHooks{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(8 * time.Second))
		if _, err := c.Write(data); err != nil {
			return
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("startup did not end after the client hung up: %v", err)
		}
	})
}

// TestFakeRefusal checks, against the scripted upstream, that the refused
// SQL text never leaves the proxy, only the stand-in does.
func TestFakeRefusal(t *testing.T) {
	_, f, addr := serveFake(t, fuzzHooks{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, "postgres://guardrun:pw@"+addr+"/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	_, err = pc.Exec(ctx, "select 'deny'").ReadAll()
	if pgErr, ok := err.(*pgconn.PgError); !ok || pgErr.Code != "42501" || pgErr.Message != "denied" {
		t.Fatalf("refusal: %v", err)
	}
	res := pc.ExecParams(ctx, "select 'deny'", nil, nil, nil, nil).Read()
	if pgErr, ok := res.Err.(*pgconn.PgError); !ok || pgErr.Code != "42501" {
		t.Fatalf("extended refusal: %v", res.Err)
	}
	res = pc.ExecParams(ctx, "rewrite", nil, nil, nil, nil).Read()
	if res.Err != nil || string(res.Rows[0][0]) != "<1" {
		t.Fatalf("rewrite + row filter: %q %v", res.Rows, res.Err)
	}
	for _, s := range f.seen() {
		if strings.Contains(s, "deny") || strings.Contains(s, "rewrite") {
			t.Fatalf("upstream saw %q", s)
		}
	}
}

// TestSCRAMVectors checks that malformed SCRAM messages are refused (the
// happy path is proven by pgx and psql, which verify the server signature).
func TestSCRAMVectors(t *testing.T) {
	sec := newSCRAMSecret("pencil")
	s := scramServer{secret: sec}
	if _, err := s.first([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "p=tls-server-end-point,,n=,r=x", "n,a=admin,n=,r=x", "n,,n=,r=", "n,,r=x", "n,,n=,r=a,b", "n,,n=,r=x,m=ext"} {
		if _, err := (&scramServer{secret: sec}).first([]byte(bad)); err == nil {
			t.Errorf("client-first %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "c=biws,r=x", "c=biws,r=x,p=AAAA", "c=eSws,r=" + s.nonce + ",p=" + strings.Repeat("A", 43) + "="} {
		if _, err := s.final([]byte(bad)); err == nil {
			t.Errorf("client-final %q accepted", bad)
		}
	}
}
