package pg

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeUpstream is a scripted PostgreSQL server on 127.0.0.1:0: it accepts
// any startup without a password, answers every query with one text row
// "1", fails the stand-ins the proxy sends for refused requests the way
// PostgreSQL does (error, then skip to Sync), and honours Terminate.
type fakeUpstream struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	sql   []string // every SQL text received
}

func startFake(t testing.TB) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{ln: ln, conns: map[net.Conn]bool{}}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Go(func() {
				defer func() {
					f.mu.Lock()
					delete(f.conns, c)
					f.mu.Unlock()
					c.Close()
				}()
				f.serve(c)
			})
		}
	})
	t.Cleanup(f.close)
	return f
}

func (f *fakeUpstream) close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeUpstream) dsn() string {
	return "postgres://real:realpw@" + f.ln.Addr().String() + "/db?sslmode=disable&connect_timeout=5"
}

func (f *fakeUpstream) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sql...)
}

func (f *fakeUpstream) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	be := pgproto3.NewBackend(c, c)
	be.SetMaxBodyLen(1 << 20)
	for {
		m, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := m.(*pgproto3.StartupMessage); ok {
			break
		}
		if _, ok := m.(*pgproto3.CancelRequest); ok {
			return
		}
		if _, err := c.Write([]byte{'N'}); err != nil {
			return
		}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}}
	row := &pgproto3.DataRow{Values: [][]byte{[]byte("1")}}
	fail := func() {
		be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"})
	}
	skip := false
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		if skip {
			if _, ok := m.(*pgproto3.Sync); !ok {
				continue
			}
		}
		switch m := m.(type) {
		case *pgproto3.Query:
			f.mu.Lock()
			f.sql = append(f.sql, m.String)
			f.mu.Unlock()
			switch {
			case m.String == refusalSQL:
				fail()
			case strings.TrimSpace(m.String) == "":
				be.Send(&pgproto3.EmptyQueryResponse{})
			default:
				be.Send(rd)
				be.Send(row)
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Parse:
			f.mu.Lock()
			f.sql = append(f.sql, m.Query)
			f.mu.Unlock()
			if m.Query == refusalSQL {
				fail()
				skip = true
				continue
			}
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			if strings.HasPrefix(m.PreparedStatement, "guardrun.refused.") {
				fail()
				skip = true
				continue
			}
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			if strings.HasPrefix(m.Name, "guardrun.refused.") {
				fail()
				skip = true
				continue
			}
			if m.ObjectType == 'S' {
				be.Send(&pgproto3.ParameterDescription{})
			}
			be.Send(rd)
		case *pgproto3.Execute:
			if strings.HasPrefix(m.Portal, "guardrun.refused.") {
				fail()
				skip = true
				continue
			}
			be.Send(row)
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		case *pgproto3.Close:
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			skip = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.FunctionCall:
			be.Send(&pgproto3.FunctionCallResponse{Result: []byte("1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}

// serveFake runs a proxy in front of a fake upstream until the test ends.
func serveFake(t testing.TB, hooks Hooks) (*Proxy, *fakeUpstream, string) {
	t.Helper()
	f := startFake(t)
	p, err := NewProxy(Config{Upstream: f.dsn(), User: "guardrun", Password: "pw", Hooks: hooks, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return p, f, ln.Addr().String()
}
