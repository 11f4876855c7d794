package pg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// panicHooks panics in Inspect for SQL containing "inspect-panic", returns
// an unknown Action for "odd-action", and panics in the row filter for SQL
// containing "row-panic".
type panicHooks struct{}

func (panicHooks) Open(context.Context, ConnInfo) ConnHooks { return &panicConn{} }

type panicConn struct{ rowPanic bool }

func (c *panicConn) Inspect(_ context.Context, q Query) Verdict {
	switch {
	case strings.Contains(q.SQL, "inspect-panic"):
		panic("inspector bug")
	case strings.Contains(q.SQL, "odd-action"):
		return Verdict{Action: Action(99)}
	case strings.Contains(q.SQL, "nul-rewrite"):
		return Verdict{Action: Rewrite, SQL: "select 1\x00; drop table x"}
	}
	c.rowPanic = strings.Contains(q.SQL, "row-panic")
	return Verdict{Action: Forward}
}

func (c *panicConn) StartResult(ResultInfo) RowFilter {
	if c.rowPanic {
		return panicFilter{}
	}
	return nil
}
func (*panicConn) ServerError(*ServerMessage, bool) {}
func (*panicConn) Notification(_, p string) string  { return p }
func (*panicConn) Close(error)                      {}

type panicFilter struct{}

func (panicFilter) Row([][]byte)             { panic("filter bug") }
func (panicFilter) CopyData(d []byte) []byte { return d }
func (panicFilter) End(string, string)       {}

// TestFailClosed: a confused or crashing hook refuses (inspector) or ends
// only its own connection (result hook); nothing it was judging is sent.
func TestFailClosed(t *testing.T) {
	_, f, addr := serveFake(t, panicHooks{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func() *pgconn.PgConn {
		pc, err := pgconn.Connect(ctx, "postgres://guardrun:pw@"+addr+"/db?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close(context.Background()) })
		return pc
	}
	pc := connect()
	for _, sql := range []string{"select 'inspect-panic'", "select 'odd-action'", "select 'nul-rewrite'"} {
		_, err := pc.Exec(ctx, sql).ReadAll()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("%s: %v", sql, err)
		}
		if _, err := pc.Exec(ctx, "select 1").ReadAll(); err != nil {
			t.Fatalf("after %s: %v", sql, err)
		}
	}
	for _, s := range f.seen() {
		if strings.Contains(s, "panic") || strings.Contains(s, "odd") || strings.Contains(s, "nul") {
			t.Fatalf("upstream saw %q", s)
		}
	}
	other := connect()
	_, err := pc.Exec(ctx, "select 'row-panic'").ReadAll()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
		t.Fatalf("row filter panic: %v", err)
	}
	if _, err := other.Exec(ctx, "select 1").ReadAll(); err != nil {
		t.Fatalf("other connection: %v", err)
	}
}
