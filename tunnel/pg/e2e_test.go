package pg_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/pg"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

const (
	upUser = "owner"
	upPass = "owner-Secret-9"
	upDB   = "appdb"
)

// tun is a throwaway server with a database, and a tunnel to it.
type tun struct {
	srv   *pgtest.Server
	cred  tunnel.Credential
	addr  string
	proxy *pg.Proxy

	mu     sync.Mutex
	events []pg.Event
}

func startTunnel(t *testing.T, hooks pg.Hooks, opts ...pgtest.Option) *tun {
	t.Helper()
	srv := pgtest.Start(t, opts...)
	srv.CreateUser(t, upUser, upPass)
	srv.CreateDB(t, upDB, upUser)
	return startTunnelTo(t, srv, srv.DSN(upUser, upPass, upDB), hooks)
}

func startTunnelTo(t *testing.T, srv *pgtest.Server, upstream string, hooks pg.Hooks) *tun {
	t.Helper()
	tu := &tun{srv: srv, cred: tunnel.NewCredential()}
	p, err := pg.NewProxy(pg.Config{
		Upstream: upstream,
		User:     tu.cred.User,
		Password: tu.cred.Password,
		Hooks:    hooks,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnEvent: func(ev pg.Event) {
			tu.mu.Lock()
			tu.events = append(tu.events, ev)
			tu.mu.Unlock()
		},
		HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tu.proxy = p
	ln, err := tunnel.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tu.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return tu
}

func (tu *tun) dsn() string {
	host, port, _ := net.SplitHostPort(tu.addr)
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", tu.cred.User, tu.cred.Password, net.JoinHostPort(host, port), upDB)
}

func (tu *tun) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, tu.dsn())
	if err != nil {
		t.Fatalf("connect through the tunnel: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// connectCancelling connects a pgx client that answers a cancelled context
// with a CancelRequest (as libpq does), not by closing the socket.
func (tu *tun) connectCancelling(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(tu.dsn())
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the tunnel: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (tu *tun) eventsOf(kind pg.EventKind) []pg.Event {
	tu.mu.Lock()
	defer tu.mu.Unlock()
	var out []pg.Event
	for _, e := range tu.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSmoke(t *testing.T) {
	tu := startTunnel(t, nil)
	c := tu.connect(t)
	var n int
	if err := c.QueryRow(ctx10(t), "select 1+$1::int", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
}
