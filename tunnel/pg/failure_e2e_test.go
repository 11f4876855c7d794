package pg_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/guardrun/guardrun/tunnel/pg"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

func TestAuthFailures(t *testing.T) {
	tu := startTunnel(t, nil)
	ctx := ctx10(t)
	host, port, _ := net.SplitHostPort(tu.addr)
	try := func(user, pass, db string) *pgconn.PgError {
		t.Helper()
		cfg, err := pgconn.ParseConfig("host=" + host + " port=" + port + " sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		cfg.User, cfg.Password, cfg.Database = user, pass, db
		_, err = pgconn.ConnectConfig(ctx, cfg)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("want a server error, got %v", err)
		}
		return pgErr
	}
	e := try(tu.cred.User, "wrong-password", upDB)
	if e.Code != "28P01" || e.Severity != "FATAL" || !strings.Contains(e.Message, `password authentication failed for user "guardrun"`) {
		t.Fatalf("wrong password: %+v", e)
	}
	e = try("postgres", tu.cred.Password, upDB)
	if e.Code != "28000" || !strings.Contains(e.Message, `serves user "guardrun"`) {
		t.Fatalf("wrong user: %+v", e)
	}
	e = try(tu.cred.User, tu.cred.Password, "postgres")
	if e.Code != "3D000" || !strings.Contains(e.Message, `serves database "appdb"`) {
		t.Fatalf("wrong database: %+v", e)
	}
	// the real upstream credential is worthless at the tunnel
	e = try(upUser, upPass, upDB)
	if e.Code != "28000" {
		t.Fatalf("upstream credential: %+v", e)
	}
	fails := tu.eventsOf(pg.AuthFailed)
	if len(fails) != 4 || !errors.Is(fails[0].Err, pg.ErrAuthFailed) || !errors.Is(fails[1].Err, pg.ErrWrongUser) ||
		!errors.Is(fails[2].Err, pg.ErrWrongDatabase) || fails[0].Conn.User != "guardrun" {
		t.Fatalf("auth failure events: %+v", fails)
	}
	if len(tu.eventsOf(pg.ConnOpened)) != 0 {
		t.Fatal("a failed client was reported open")
	}
	// the right credential works, with or without naming the database
	c, err := pgconn.Connect(ctx, "host="+host+" port="+port+" sslmode=disable user=guardrun password="+tu.cred.Password+" dbname="+upDB)
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
}

// rawSession authenticates over a plain TCP connection and returns it with
// the startup answer consumed, for tests that then send broken bytes.
func rawSession(t *testing.T, tu *tun) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	pc, err := pgconn.Connect(ctx10(t), tu.dsn())
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
	_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { hc.Conn.Close() })
	return hc.Conn, hc.Frontend
}

// expectFatal reads until the connection closes and wants a FATAL with code
// on the way, and nothing else but that error.
func expectFatal(t *testing.T, conn net.Conn, code string) {
	t.Helper()
	r := bufio.NewReader(conn)
	var got []string
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("short message: %v", err)
		}
		if hdr[0] == 'E' {
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Severity+" "+e.Code+" "+e.Message)
		} else {
			got = append(got, string(hdr[0]))
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "FATAL "+code) {
		t.Fatalf("want one FATAL %s then close, got %q", code, got)
	}
}

func frame(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

func TestBadClientMessages(t *testing.T) {
	for _, hooked := range []bool{false, true} {
		var hooks pg.Hooks
		if hooked {
			hooks = &testHooks{}
		}
		name := map[bool]string{false: "nohooks", true: "hooks"}[hooked]
		t.Run(name, func(t *testing.T) {
			tu := startTunnel(t, hooks)
			d := tu.direct(t)
			if _, err := d.Exec(ctx10(t), "create table tk (id int)"); err != nil {
				t.Fatal(err)
			}
			bystander := tu.connect(t)
			cases := map[string][]byte{
				// a Query that claims 100 MiB: refused from its header alone
				"oversize": {'Q', 0x06, 0x40, 0x00, 0x00},
				// a Query whose string is not NUL-terminated: never forwarded
				"malformed-query": frame('Q', "insert into tk values (1)"),
				"negative-length": {'Q', 0xff, 0xff, 0xff, 0xff},
				"short-length":    {'Q', 0, 0, 0, 2},
				"unknown-type":    {'z', 0, 0, 0, 4},
				"bad-describe":    {'D', 0, 0, 0, 7, 'X', 'a', 0},
				"password-late":   {'p', 0, 0, 0, 8, 'a', 'b', 'c', 0},
				// a valid Query followed by half a message: the valid one
				// runs, the half one is never forwarded
				"truncated": append(frame('Q', "insert into tk values (2)\x00"), 'Q', 0, 0, 0, 40, 's'),
			}
			for cname, payload := range cases {
				t.Run(cname, func(t *testing.T) {
					conn, _ := rawSession(t, tu)
					if _, err := conn.Write(payload); err != nil {
						t.Fatal(err)
					}
					if cname == "truncated" {
						// the valid Query is answered; then the client hangs up
						time.Sleep(200 * time.Millisecond)
						conn.(*net.TCPConn).CloseWrite()
						io.Copy(io.Discard, conn)
						return
					}
					expectFatal(t, conn, "08P01")
				})
			}
			if n := count(t, d, "id = 1"); n != 0 {
				t.Fatal("a malformed query was forwarded")
			}
			if n := count(t, d, "id = 2"); n != 1 {
				t.Fatalf("valid query before a truncated one ran %d times", n)
			}
			usable(t, bystander)
		})
	}
	t.Run("bad-startup", func(t *testing.T) {
		tu := startTunnel(t, nil)
		for name, payload := range map[string][]byte{
			"huge":       {0x00, 0x10, 0, 0, 0, 3, 0, 0},
			"version2":   {0, 0, 0, 8, 0, 2, 0, 0},
			"no-nul":     {0, 0, 0, 13, 0, 3, 0, 0, 'u', 's', 'e', 'r', 'x'},
			"tls-direct": {0x16, 0x03, 0x01, 0x00, 0xa5, 0x01},
		} {
			t.Run(name, func(t *testing.T) {
				conn, err := net.DialTimeout("tcp", tu.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				conn.Write(payload)
				b, _ := io.ReadAll(conn) // must end, not hang
				if len(b) > 0 && b[0] != 'E' {
					t.Fatalf("unexpected answer %q", b)
				}
			})
		}
	})
	t.Run("handshake-deadline", func(t *testing.T) {
		tu := startTunnel(t, nil)
		p, err := pg.NewProxy(pg.Config{Upstream: tu.srv.DSN(upUser, upPass, upDB), User: "u", Password: "p", HandshakeTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Serve(ctx, ln) }()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		io.ReadAll(conn) // silent client: the tunnel hangs up
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("silent client kept for %v", d)
		}
		conn.Close()
		cancel()
		<-done
	})
}

// TestUpstreamKilled: a dead upstream gives the client 08006 and the tunnel
// carries on (new connections get a clear FATAL while it is down).
func TestUpstreamKilled(t *testing.T) {
	tu := startTunnel(t, &testHooks{})
	c := tu.connect(t)
	ctx := ctx10(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "select pg_sleep(30)")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	tu.srv.Kill()
	select {
	case err := <-errc:
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08006" {
			t.Fatalf("want 08006, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client hangs after the upstream died")
	}
	_, err := pgx.Connect(ctx, tu.dsn())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08001" {
		t.Fatalf("connect with the upstream down: %v", err)
	}
	// Events are reported from the connections' own goroutines, which may
	// still be finishing after the clients got their errors.
	deadline := time.Now().Add(5 * time.Second)
	for (len(tu.eventsOf(pg.ConnClosed)) == 0 || len(tu.eventsOf(pg.UpstreamFailed)) == 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	closed := tu.eventsOf(pg.ConnClosed)
	if len(closed) != 1 || !errors.Is(closed[0].Err, pg.ErrUpstreamLost) {
		t.Fatalf("close events %+v", closed)
	}
	up := tu.eventsOf(pg.UpstreamFailed)
	if len(up) != 1 || !errors.Is(up[0].Err, pg.ErrUpstreamUnreachable) {
		t.Fatalf("upstream failure events %+v", up)
	}
	if err := tu.proxy.Check(ctx); !errors.Is(err, pg.ErrUpstreamUnreachable) {
		t.Fatalf("Check with the upstream down: %v", err)
	}
}

// TestUpstreamAuthModes: md5 and SCRAM upstreams, TLS with verify-full,
// Check's typed errors, and a cancel over a TLS upstream.
func TestUpstreamAuthModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []pgtest.Option
	}{
		{"scram", nil},
		{"md5", []pgtest.Option{pgtest.WithMD5()}},
		{"tls-verify-full", []pgtest.Option{pgtest.WithTLS()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tu := startTunnel(t, &testHooks{}, tc.opts...)
			ctx := ctx10(t)
			if err := tu.proxy.Check(ctx); err != nil {
				t.Fatal(err)
			}
			c := tu.connectCancelling(t)
			var ssl bool
			if err := c.QueryRow(ctx, "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != (tc.name == "tls-verify-full") {
				t.Fatalf("upstream TLS = %v", ssl)
			}
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := c.Exec(cctx, "select pg_sleep(20)")
			wantPgErr(t, err, "57014")
			usable(t, c)

			bad, err := pg.NewProxy(pg.Config{Upstream: tu.srv.DSN(upUser, "wrong", upDB), User: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if err := bad.Check(ctx); !errors.Is(err, pg.ErrUpstreamAuth) || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("Check with a wrong upstream password: %v", err)
			}
		})
	}
	t.Run("tls-wrong-ca", func(t *testing.T) {
		srv := pgtest.Start(t, pgtest.WithTLS())
		srv.CreateUser(t, upUser, upPass)
		dsn := srv.DSN(upUser, upPass, "postgres")
		dsn = strings.Replace(dsn, "sslrootcert=", "sslrootcert=/nonexistent-", 1)
		u := strings.Replace(srv.DSN(upUser, upPass, "postgres"), "127.0.0.1", "localhost", 1)
		_ = u
		p, err := pg.NewProxy(pg.Config{Upstream: dsn, User: "u", Password: "p"})
		if err == nil {
			err = p.Check(ctx10(t))
		}
		if err == nil {
			t.Fatal("verify-full with a missing CA succeeded")
		}
	})
	t.Run("bad-config", func(t *testing.T) {
		_, err := pg.NewProxy(pg.Config{Upstream: "postgres://u:topsecret@[::1", User: "u", Password: "p"})
		if !errors.Is(err, pg.ErrBadConfig) || strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("bad DSN: %v", err)
		}
		if _, err := pg.NewProxy(pg.Config{Upstream: "postgres://x@localhost/db"}); !errors.Is(err, pg.ErrBadConfig) {
			t.Fatalf("empty credential: %v", err)
		}
	})
}

// TestShutdown: cancelling Serve's context closes open connections,
// including one whose statement is held, and Serve returns.
func TestShutdown(t *testing.T) {
	srv := pgtest.Start(t)
	srv.CreateUser(t, upUser, upPass)
	srv.CreateDB(t, upDB, upUser)
	held := make(chan struct{}, 1)
	h := &testHooks{inspect: func(ctx context.Context, q pg.Query) pg.Verdict {
		if strings.Contains(q.SQL, "hold") {
			held <- struct{}{}
			<-ctx.Done()
			return pg.Verdict{Action: pg.Refuse}
		}
		return pg.Verdict{Action: pg.Forward}
	}}
	p, err := pg.NewProxy(pg.Config{Upstream: srv.DSN(upUser, upPass, upDB), User: "u", Password: "p", Hooks: h})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Serve(ctx, ln) }()
	dsn := "postgres://u:p@" + ln.Addr().String() + "/" + upDB + "?sslmode=disable"
	c1, err := pgx.Connect(ctx10(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx10(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	go c2.Exec(context.Background(), "select 'hold'")
	<-held
	// and a client that connected but says nothing (handshake deadline 30s)
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	err = c1.Ping(ctx10(t))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
		t.Fatalf("after shutdown: want 57P01, got %v", err)
	}
	if len(h.closed) != 2 {
		t.Fatalf("hooks closed %d times", len(h.closed))
	}
}
