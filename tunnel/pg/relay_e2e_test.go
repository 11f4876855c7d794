package pg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/tunnel/pg"
)

// TestRelay runs what real pgx programs do through the tunnel, three ways:
// with no hooks (pure relay), with hooks that pass everything (the proxy
// tracks statements and portals but forwards rows as they are), and with a
// row filter that changes nothing (every row decoded and re-encoded). The
// answers must be the same as PostgreSQL's own.
func TestRelay(t *testing.T) {
	srvTun := startTunnel(t, nil)
	variants := []struct {
		name  string
		hooks pg.Hooks
	}{
		{"nohooks", nil},
		{"passhooks", &testHooks{}},
		{"rewrite-rows", &testHooks{start: func(pg.ResultInfo) pg.RowFilter { return passFilter{} }}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			tu := startTunnelTo(t, srvTun.srv, srvTun.srv.DSN(upUser, upPass, upDB), v.hooks)
			relaySuite(t, tu)
		})
	}
}

func relaySuite(t *testing.T, tu *tun) {
	ctx := ctx10(t)
	c := tu.connect(t)
	tbl := fmt.Sprintf("t_%d", time.Now().UnixNano())
	if _, err := c.Exec(ctx, "create table "+tbl+" (id int primary key, name text, data bytea, at timestamptz default now())"); err != nil {
		t.Fatal(err)
	}

	t.Run("simple", func(t *testing.T) {
		rr := c.PgConn().Exec(ctx, "insert into "+tbl+" (id, name) values (1, 'one'), (2, 'two'); select name from "+tbl+" order by id; select 1 where false")
		res, err := rr.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 3 || res[0].CommandTag.String() != "INSERT 0 2" || len(res[1].Rows) != 2 ||
			string(res[1].Rows[1][0]) != "two" || res[2].CommandTag.String() != "SELECT 0" {
			t.Fatalf("unexpected results: %+v", res)
		}
	})
	t.Run("extended", func(t *testing.T) {
		var name string
		var id int
		err := c.QueryRow(ctx, "select id, name from "+tbl+" where id = $1", pgx.QueryExecModeExec, 2).Scan(&id, &name)
		if err != nil || id != 2 || name != "two" {
			t.Fatalf("got %d %q %v", id, name, err)
		}
		if _, err := c.Exec(ctx, "insert into "+tbl+" (id, name, data) values ($1, $2, $3)", 3, "three", []byte{0, 1, 2, 255}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("prepared-binary", func(t *testing.T) {
		if _, err := c.Prepare(ctx, "getrow", "select id, name, data, at from "+tbl+" where id = $1"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			var id int
			var name string
			var data []byte
			var at time.Time
			if err := c.QueryRow(ctx, "getrow", 3).Scan(&id, &name, &data, &at); err != nil {
				t.Fatal(err)
			}
			if id != 3 || name != "three" || !bytes.Equal(data, []byte{0, 1, 2, 255}) || time.Since(at) > time.Hour {
				t.Fatalf("got %d %q %x %v", id, name, data, at)
			}
		}
		// binary result formats on the raw protocol
		rr := c.PgConn().ExecParams(ctx, "select id, name from "+tbl+" where id = $1", [][]byte{[]byte("3")}, nil, nil, []int16{1, 0})
		res := rr.Read()
		if res.Err != nil || len(res.Rows) != 1 || !bytes.Equal(res.Rows[0][0], []byte{0, 0, 0, 3}) || string(res.Rows[0][1]) != "three" {
			t.Fatalf("binary: %+v %v", res.Rows, res.Err)
		}
	})
	t.Run("batch", func(t *testing.T) {
		b := &pgx.Batch{}
		b.Queue("select count(*) from " + tbl)
		b.Queue("insert into "+tbl+" (id, name) values ($1, $2)", 10, "ten")
		b.Queue("select name from "+tbl+" where id = $1", 10)
		b.Queue("select generate_series(1, 100)")
		br := c.SendBatch(ctx, b)
		defer br.Close()
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 3 {
			t.Fatalf("count %d %v", n, err)
		}
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
		var name string
		if err := br.QueryRow().Scan(&name); err != nil || name != "ten" {
			t.Fatalf("name %q %v", name, err)
		}
		rows, _ := br.Query()
		cnt := 0
		for rows.Next() {
			cnt++
		}
		if rows.Err() != nil || cnt != 100 {
			t.Fatalf("series %d %v", cnt, rows.Err())
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		// a pipeline with an error in the middle stays in step
		b = &pgx.Batch{}
		b.Queue("select 1")
		b.Queue("select 1/0")
		b.Queue("select 2")
		br = c.SendBatch(ctx, b)
		_, err1 := br.Exec()
		_, err2 := br.Exec()
		br.Close()
		if err1 != nil || err2 == nil {
			t.Fatalf("batch with error: %v %v", err1, err2)
		}
		if err := c.QueryRow(ctx, "select 5").Scan(&n); err != nil || n != 5 {
			t.Fatalf("after batch error: %d %v", n, err)
		}
	})
	t.Run("copy", func(t *testing.T) {
		rows := [][]any{}
		for i := 100; i < 1100; i++ {
			rows = append(rows, []any{i, fmt.Sprintf("row %d", i)})
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{tbl}, []string{"id", "name"}, pgx.CopyFromRows(rows))
		if err != nil || n != 1000 {
			t.Fatalf("copy from: %d %v", n, err)
		}
		var buf bytes.Buffer
		tag, err := c.PgConn().CopyTo(ctx, &buf, "copy (select id, name from "+tbl+" where id >= 100 order by id) to stdout")
		if err != nil || tag.RowsAffected() != 1000 || !strings.HasPrefix(buf.String(), "100\trow 100\n") {
			t.Fatalf("copy to: %v %v %q", tag, err, buf.String()[:min(40, buf.Len())])
		}
		tag, err = c.PgConn().CopyFrom(ctx, strings.NewReader("5000\tfive\n5001\tsix\n"), "copy "+tbl+" (id, name) from stdin")
		if err != nil || tag.RowsAffected() != 2 {
			t.Fatalf("copy from stdin: %v %v", tag, err)
		}
		// a failing COPY leaves the connection usable
		_, err = c.PgConn().CopyFrom(ctx, strings.NewReader("notanumber\tx\n"), "copy "+tbl+" (id, name) from stdin")
		if err == nil {
			t.Fatal("bad copy succeeded")
		}
		var n2 int
		if err := c.QueryRow(ctx, "select 7").Scan(&n2); err != nil || n2 != 7 {
			t.Fatal(n2, err)
		}
	})
	t.Run("listen-notify", func(t *testing.T) {
		l := tu.connect(t)
		if _, err := l.Exec(ctx, "listen chan1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "select pg_notify('chan1', 'hello')"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := l.WaitForNotification(wctx)
		if err != nil || n.Channel != "chan1" || n.Payload != "hello" {
			t.Fatalf("notification %+v %v", n, err)
		}
		// self-notification carries the pid the client was given
		if _, err := l.Exec(ctx, "notify chan1, 'self'"); err != nil {
			t.Fatal(err)
		}
		n, err = l.WaitForNotification(wctx)
		if err != nil || n.PID != l.PgConn().PID() || n.Payload != "self" {
			t.Fatalf("self notification %+v (pid %d) %v", n, l.PgConn().PID(), err)
		}
	})
	t.Run("notices-and-errors", func(t *testing.T) {
		var notices []string
		cfg, _ := pgx.ParseConfig(tu.dsn())
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
		nc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close(ctx)
		if _, err := nc.Exec(ctx, "do $$ begin raise notice 'hi there'; end $$"); err != nil {
			t.Fatal(err)
		}
		if len(notices) != 1 || notices[0] != "hi there" {
			t.Fatalf("notices %q", notices)
		}
		_, err = nc.Exec(ctx, "insert into "+tbl+" (id) values (1)")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" || !strings.Contains(pgErr.Detail, "(id)=(1)") {
			t.Fatalf("unique violation: %v", err)
		}
	})
	t.Run("startup-params-and-keys", func(t *testing.T) {
		cfg, _ := pgx.ParseConfig(tu.dsn())
		cfg.RuntimeParams["application_name"] = "relay-test"
		cfg.RuntimeParams["search_path"] = "pg_catalog"
		cfg.RuntimeParams["DateStyle"] = "German"
		nc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close(ctx)
		var app, sp, ds string
		var pid uint32
		if err := nc.QueryRow(ctx, "select current_setting('application_name'), current_setting('search_path'), current_setting('DateStyle'), pg_backend_pid()").Scan(&app, &sp, &ds, &pid); err != nil {
			t.Fatal(err)
		}
		if app != "relay-test" || sp != "pg_catalog" || !strings.HasPrefix(ds, "German") {
			t.Fatalf("startup parameters did not reach the server: %q %q %q", app, sp, ds)
		}
		if pid == nc.PgConn().PID() {
			t.Fatal("the client was given the upstream backend pid")
		}
		if nc.PgConn().ParameterStatus("server_version") == "" {
			t.Fatal("no server_version parameter status")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		c := tu.connectCancelling(t)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Exec(cctx, "select pg_sleep(20)")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("cancel: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancel took %v", d)
		}
		var n int
		if err := c.QueryRow(ctx, "select 8").Scan(&n); err != nil || n != 8 {
			t.Fatalf("after cancel: %d %v", n, err)
		}
	})
	t.Run("transaction", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "insert into "+tbl+" (id, name) values (9000, 'tx')"); err != nil {
			t.Fatal(err)
		}
		if c.PgConn().TxStatus() != 'T' {
			t.Fatalf("tx status %c", c.PgConn().TxStatus())
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "select count(*) from "+tbl+" where id = 9000").Scan(&n); err != nil || n != 0 {
			t.Fatalf("rollback: %d %v", n, err)
		}
	})
}
