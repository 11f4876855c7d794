package pg_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/guardrun/guardrun/tunnel/pg"
)

// direct connects to the upstream without the tunnel, to look at
// server-side state.
func (tu *tun) direct(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx10(t), tu.srv.DSN(upUser, upPass, upDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func count(t *testing.T, c *pgx.Conn, where string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(ctx10(t), "select count(*) from tk where "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantPgErr(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
	return pgErr
}

func usable(t *testing.T, c *pgx.Conn) {
	t.Helper()
	var n int
	if err := c.QueryRow(ctx10(t), "select 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("connection not usable: %d %v", n, err)
	}
}

// TestRefuse proves a refused statement never reaches the server (server
// state, not the client's error, is the proof), the client gets the
// verdict's error, the connection stays usable, and client and server agree
// on the transaction state, for the simple and extended protocols, batches
// and psql.
func TestRefuse(t *testing.T) {
	h := &testHooks{inspect: refuseIf("/*deny*/")}
	tu := startTunnel(t, h)
	d := tu.direct(t)
	if _, err := d.Exec(ctx10(t), "create table tk (id int)"); err != nil {
		t.Fatal(err)
	}
	c := tu.connect(t)
	ctx := ctx10(t)

	t.Run("simple", func(t *testing.T) {
		_, err := c.Exec(ctx, "insert into tk values (1) /*deny*/", pgx.QueryExecModeSimpleProtocol)
		e := wantPgErr(t, err, "42501")
		if !strings.Contains(e.Message, "denied by policy rule test") || e.Hint != "ask a human" || e.Where != "" {
			t.Fatalf("error %+v", e)
		}
		if count(t, d, "id = 1") != 0 {
			t.Fatal("refused statement reached the server")
		}
		usable(t, c)
	})
	t.Run("multi-statement", func(t *testing.T) {
		_, err := c.Exec(ctx, "insert into tk values (2); insert into tk values (3) /*deny*/", pgx.QueryExecModeSimpleProtocol)
		wantPgErr(t, err, "42501")
		if count(t, d, "id in (2, 3)") != 0 {
			t.Fatal("part of a refused query reached the server")
		}
		usable(t, c)
	})
	t.Run("extended", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
			_, err := c.Exec(ctx, "insert into tk values ($1) /*deny*/", mode, 4)
			wantPgErr(t, err, "42501")
			usable(t, c)
		}
		if count(t, d, "id = 4") != 0 {
			t.Fatal("refused statement reached the server")
		}
	})
	t.Run("transaction-simple", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			if _, err := c.Exec(ctx, "begin", mode); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "insert into tk values (5)", mode); err != nil {
				t.Fatal(err)
			}
			_, err := c.Exec(ctx, "insert into tk values (6) /*deny*/", mode)
			wantPgErr(t, err, "42501")
			if qs, _, _ := h.snapshot(); qs[len(qs)-1].TxStatus != 'T' {
				t.Fatalf("%v: the inspector saw transaction status %q, want T", mode, qs[len(qs)-1].TxStatus)
			}
			if st := c.PgConn().TxStatus(); st != 'E' {
				t.Fatalf("%v: client sees transaction status %c, want E", mode, st)
			}
			_, err = c.Exec(ctx, "select 1", mode)
			wantPgErr(t, err, "25P02")
			tag, err := c.Exec(ctx, "commit", mode)
			if err != nil || tag.String() != "ROLLBACK" {
				t.Fatalf("%v: commit of an aborted transaction: %q %v", mode, tag, err)
			}
			if count(t, d, "id in (5, 6)") != 0 {
				t.Fatal("the aborted transaction's insert reached the table")
			}
			usable(t, c)
		}
	})
	t.Run("batch", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
			b := &pgx.Batch{}
			b.Queue("insert into tk values (10)")
			b.Queue("insert into tk values (11) /*deny*/")
			b.Queue("insert into tk values (12)")
			bc := tu.connectMode(t, mode)
			br := bc.SendBatch(ctx, b)
			var errs []error
			for range 3 {
				_, err := br.Exec()
				errs = append(errs, err)
			}
			br.Close()
			found := false
			for _, err := range errs {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "42501" {
					found = true
				}
			}
			if !found {
				t.Fatalf("%v: batch errors %v", mode, errs)
			}
			if n := count(t, d, "id in (10, 11, 12)"); n != 0 {
				t.Fatalf("%v: %d rows of a refused batch reached the table", mode, n)
			}
			usable(t, bc)
		}
	})
	t.Run("refused-name-stays-refused", func(t *testing.T) {
		pc := c.PgConn()
		_, err := pc.Prepare(ctx, "s_deny", "insert into tk values (20) /*deny*/", nil)
		wantPgErr(t, err, "42501")
		res := pc.ExecPrepared(ctx, "s_deny", nil, nil, nil).Read()
		wantPgErr(t, res.Err, "42501")
		pc.Exec(ctx, "select 1").Close()
		// a Describe of it is refused the same way
		_, err = pc.Prepare(ctx, "s_deny", "select 1", nil) // re-Parse with allowed SQL clears it
		if err != nil {
			t.Fatal(err)
		}
		res = pc.ExecPrepared(ctx, "s_deny", nil, nil, nil).Read()
		if res.Err != nil || string(res.Rows[0][0]) != "1" {
			t.Fatalf("re-prepared statement: %v %v", res.Rows, res.Err)
		}
		if count(t, d, "id = 20") != 0 {
			t.Fatal("refused statement reached the server")
		}
		usable(t, c)
	})
	t.Run("function-call", func(t *testing.T) {
		fe, closeRaw := tu.raw(t)
		defer closeRaw()
		// FunctionCall of pg_backend_pid (oid 2026)
		fe.Send(&pgproto3.FunctionCall{Function: 2026, ResultFormatCode: 0})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		msgs := readUntilReady(t, fe)
		e, ok := msgs[0].(*pgproto3.ErrorResponse)
		if !ok || e.Code != "42501" || !strings.Contains(e.Message, "function call") {
			t.Fatalf("function call: %#v", msgs)
		}
	})
	t.Run("psql", func(t *testing.T) {
		cmd := exec.Command(tu.srv.Bin("psql"), "-X", "-v", "ON_ERROR_STOP=0", "-At", tu.dsn(),
			"-c", "select 'before'", "-c", "insert into tk values (30) /*deny*/", "-c", "select 'after'")
		out, err := cmd.CombinedOutput()
		s := string(out)
		if !strings.Contains(s, "before") || !strings.Contains(s, "after") || !strings.Contains(s, "denied by policy rule test") {
			t.Fatalf("psql: %v\n%s", err, s)
		}
		if count(t, d, "id = 30") != 0 {
			t.Fatal("refused statement reached the server")
		}
		// psql in a transaction block: the refused statement aborts it
		cmd = exec.Command(tu.srv.Bin("psql"), "-X", "-At", tu.dsn())
		cmd.Stdin = strings.NewReader("begin;\ninsert into tk values (31);\ninsert into tk values (32) /*deny*/;\nselect 'in aborted';\ncommit;\n")
		out, _ = cmd.CombinedOutput()
		s = string(out)
		if !strings.Contains(s, "current transaction is aborted") || !strings.Contains(s, "ROLLBACK") {
			t.Fatalf("psql transaction:\n%s", s)
		}
		if count(t, d, "id in (31, 32)") != 0 {
			t.Fatal("aborted transaction reached the table")
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		h.inspect = func(_ context.Context, q pg.Query) pg.Verdict {
			if strings.Contains(q.SQL, "'original'") {
				return pg.Verdict{Action: pg.Rewrite, SQL: strings.ReplaceAll(q.SQL, "'original'", "'rewritten'")}
			}
			return pg.Verdict{Action: pg.Forward}
		}
		defer func() { h.inspect = refuseIf("/*deny*/") }()
		c2 := tu.connect(t)
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
			var s string
			if err := c2.QueryRow(ctx, "select 'original'::text", mode).Scan(&s); err != nil || s != "rewritten" {
				t.Fatalf("%v: %q %v", mode, s, err)
			}
		}
	})
}

func (tu *tun) connectMode(t *testing.T, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(tu.dsn())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(ctx10(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// raw authenticates a pgproto3 frontend through the tunnel.
func (tu *tun) raw(t *testing.T) (*pgproto3.Frontend, func()) {
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
	_ = hc.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	return hc.Frontend, func() { hc.Conn.Close() }
}

func readUntilReady(t *testing.T, fe *pgproto3.Frontend) []pgproto3.BackendMessage {
	t.Helper()
	var out []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, cloneMsg(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return out
		}
	}
}

func cloneMsg(m pgproto3.BackendMessage) pgproto3.BackendMessage {
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		c := *m
		return &c
	case *pgproto3.DataRow:
		c := &pgproto3.DataRow{}
		for _, v := range m.Values {
			c.Values = append(c.Values, append([]byte(nil), v...))
		}
		return c
	case *pgproto3.CommandComplete:
		return &pgproto3.CommandComplete{CommandTag: append([]byte(nil), m.CommandTag...)}
	case *pgproto3.ReadyForQuery:
		c := *m
		return &c
	}
	return m
}

// TestHold proves a held statement blocks only its connection: other
// connections carry on, messages the server sends meanwhile still reach the
// held client, the statement reaches the server only once released, and a
// client's cancel refuses a held statement at once.
func TestHold(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int32
	h := &testHooks{inspect: func(ctx context.Context, q pg.Query) pg.Verdict {
		if !strings.Contains(q.SQL, "/*hold*/") {
			return pg.Verdict{Action: pg.Forward}
		}
		held.Add(1)
		select {
		case <-release:
			return pg.Verdict{Action: pg.Forward}
		case <-ctx.Done():
			return pg.Verdict{Action: pg.Refuse, Code: "42501", Message: "guardrun: no answer"}
		}
	}}
	tu := startTunnel(t, h)
	d := tu.direct(t)
	ctx := ctx10(t)
	if _, err := d.Exec(ctx, "create table tk (id int)"); err != nil {
		t.Fatal(err)
	}

	notified := make(chan string, 4)
	cfg, _ := pgx.ParseConfig(tu.dsn())
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notified <- n.Payload }
	a, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if _, err := a.Exec(ctx, "listen hold_chan"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "insert into tk values (1) /*hold*/")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for held.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if held.Load() == 0 {
		t.Fatal("statement was never held")
	}
	b := tu.connect(t)
	start := time.Now()
	for range 20 {
		usable(t, b)
	}
	if _, err := b.Exec(ctx, "notify hold_chan, 'while held'"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("other connection slowed while one was held: %v", d)
	}
	select {
	case p := <-notified:
		if p != "while held" {
			t.Fatalf("notification %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server-to-client traffic stopped while the connection was held")
	}
	if count(t, d, "id = 1") != 0 {
		t.Fatal("held statement reached the server before release")
	}
	select {
	case err := <-done:
		t.Fatalf("held statement returned before release: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if count(t, d, "id = 1") != 1 {
		t.Fatal("released statement did not reach the server")
	}

	t.Run("cancel-while-held", func(t *testing.T) {
		c := tu.connectCancelling(t)
		h.inspect = func(ctx context.Context, q pg.Query) pg.Verdict {
			if strings.Contains(q.SQL, "/*hold*/") {
				<-ctx.Done()
				return pg.Verdict{Action: pg.Forward} // cancel wins anyway
			}
			return pg.Verdict{Action: pg.Forward}
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Exec(cctx, "insert into tk values (2) /*hold*/")
		wantPgErr(t, err, "57014")
		if time.Since(start) > 5*time.Second {
			t.Fatal("cancel of a held statement was slow")
		}
		usable(t, c)
		if count(t, d, "id = 2") != 0 {
			t.Fatal("cancelled held statement reached the server")
		}
	})
}

// TestResultHooks proves rows, COPY data, errors, notices and notifications
// can be rewritten, in text and binary formats, with the right fields.
func TestResultHooks(t *testing.T) {
	h := &testHooks{}
	h.start = func(r pg.ResultInfo) pg.RowFilter {
		return &replaceFilter{r: r, from: []byte("secret"), to: []byte("<masked-value>")}
	}
	h.serverErr = func(e *pg.ServerMessage, notice bool) {
		e.Message = strings.ReplaceAll(e.Message, "secret", "<m>")
		e.Detail = strings.ReplaceAll(e.Detail, "secret", "<m>")
	}
	h.notify = func(ch, p string) string { return strings.ReplaceAll(p, "secret", "<m>") }
	tu := startTunnel(t, h)
	d := tu.direct(t)
	ctx := ctx10(t)
	if _, err := d.Exec(ctx, `create table people (id int, email text unique, nulled int, note varchar);
		insert into people values (1, 'a-secret@x.org', 7, 'no'), (2, 'plain@x.org', 8, 'top secret'), (3, 'c@x.org', 9, null)`); err != nil {
		t.Fatal(err)
	}
	c := tu.connect(t)

	check := func(t *testing.T, rows [][]any) {
		t.Helper()
		want := "[[1 a-<masked-value>@x.org <nil> no] [2 plain@x.org <nil> top <masked-value>] [3 c@x.org <nil> <nil>]]"
		if got := fmt.Sprint(rows); got != want {
			t.Fatalf("rows\n got %s\nwant %s", got, want)
		}
	}
	collect := func(t *testing.T, r pgx.Rows) [][]any {
		t.Helper()
		var out [][]any
		for r.Next() {
			v, err := r.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		return out
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			h.reset()
			r, err := c.Query(ctx, "select id, email, nulled, note from people order by id", mode)
			if err != nil {
				t.Fatal(err)
			}
			check(t, collect(t, r))
			qs, results, ends := h.snapshot()
			if len(results) != 1 || len(results[0].Fields) != 4 || results[0].Fields[1].Name != "email" || results[0].Fields[1].TypeOID != 25 {
				t.Fatalf("results %+v", results)
			}
			if results[0].Seq != qs[len(qs)-1].Seq && mode != pgx.QueryExecModeCacheStatement && mode != pgx.QueryExecModeCacheDescribe {
				t.Fatalf("result seq %d, queries %+v", results[0].Seq, qs)
			}
			if len(ends) != 1 || ends[0] != "SELECT 3/" {
				t.Fatalf("ends %q", ends)
			}
		})
	}
	t.Run("binary-formats", func(t *testing.T) {
		h.reset()
		res := c.PgConn().ExecParams(ctx, "select id, email, nulled, note from people order by id", nil, nil, nil, []int16{1}).Read()
		if res.Err != nil || len(res.Rows) != 3 {
			t.Fatal(res.Err)
		}
		if string(res.Rows[0][1]) != "a-<masked-value>@x.org" || res.Rows[0][2] != nil || string(res.Rows[1][3]) != "top <masked-value>" {
			t.Fatalf("binary rows %q", res.Rows)
		}
		_, results, _ := h.snapshot()
		for _, f := range results[0].Fields {
			if f.Format != 1 {
				t.Fatalf("fields %+v", results[0].Fields)
			}
		}
	})
	t.Run("multi-statement-index", func(t *testing.T) {
		h.reset()
		res, err := c.PgConn().Exec(ctx, "select email from people where id = 1; update people set nulled = nulled where false; select note from people where id = 2").ReadAll()
		if err != nil || string(res[0].Rows[0][0]) != "a-<masked-value>@x.org" || string(res[2].Rows[0][0]) != "top <masked-value>" {
			t.Fatalf("%v %v", res, err)
		}
		_, results, ends := h.snapshot()
		if len(results) != 3 || results[0].Index != 0 || results[1].Index != 1 || results[2].Index != 2 || len(results[1].Fields) != 0 {
			t.Fatalf("results %+v", results)
		}
		if fmt.Sprint(ends) != "[SELECT 1/ UPDATE 0/ SELECT 1/]" {
			t.Fatalf("ends %q", ends)
		}
	})
	t.Run("suspended-portal", func(t *testing.T) {
		h.reset()
		fe, closeRaw := tu.raw(t)
		defer closeRaw()
		fe.SendParse(&pgproto3.Parse{Query: "select email from people order by id"})
		fe.SendBind(&pgproto3.Bind{})
		fe.SendExecute(&pgproto3.Execute{MaxRows: 2})
		fe.SendExecute(&pgproto3.Execute{MaxRows: 0})
		fe.SendSync(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var rows []string
		var kinds []string
		for _, m := range readUntilReady(t, fe) {
			kinds = append(kinds, fmt.Sprintf("%T", m)[len("*pgproto3."):])
			if dr, ok := m.(*pgproto3.DataRow); ok {
				rows = append(rows, string(dr.Values[0]))
			}
		}
		if fmt.Sprint(rows) != "[a-<masked-value>@x.org plain@x.org c@x.org]" {
			t.Fatalf("rows %q (%v)", rows, kinds)
		}
		_, results, ends := h.snapshot()
		if len(results) != 1 || fmt.Sprint(ends) != "[SELECT 1/]" {
			t.Fatalf("suspended portal: results %+v ends %q (messages %v)", results, ends, kinds)
		}
	})
	t.Run("statement-swapped-behind-the-protocol", func(t *testing.T) {
		// A statement described as harmless, then replaced by SQL
		// DEALLOCATE/PREPARE under the same name: its rows must be
		// attributed to the columns they really have.
		fe, closeRaw := tu.raw(t)
		defer closeRaw()
		fe.SendParse(&pgproto3.Parse{Name: "swap", Query: "select 'harmless' as innocent"})
		fe.SendDescribe(&pgproto3.Describe{ObjectType: 'S', Name: "swap"})
		fe.SendSync(&pgproto3.Sync{})
		fe.SendQuery(&pgproto3.Query{String: "deallocate swap; prepare swap as select 'leaked' as nulled"})
		fe.SendBind(&pgproto3.Bind{PreparedStatement: "swap"})
		fe.SendExecute(&pgproto3.Execute{})
		fe.SendSync(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		readUntilReady(t, fe)
		readUntilReady(t, fe)
		var vals [][]byte
		var kinds []string
		for _, m := range readUntilReady(t, fe) {
			kinds = append(kinds, fmt.Sprintf("%T", m))
			if dr, ok := m.(*pgproto3.DataRow); ok {
				vals = append(vals, dr.Values...)
			}
		}
		if len(vals) != 1 || vals[0] != nil {
			t.Fatalf("swapped statement's value reached the client as %q (%v)", vals, kinds)
		}
	})
	t.Run("copy-out", func(t *testing.T) {
		h.reset()
		var buf strings.Builder
		_, err := c.PgConn().CopyTo(ctx, &buf, "copy (select id, email from people order by id) to stdout with (format csv)")
		if err != nil || buf.String() != "1,a-<masked-value>@x.org\n2,plain@x.org\n3,c@x.org\n" {
			t.Fatalf("copy: %q %v", buf.String(), err)
		}
		_, results, ends := h.snapshot()
		if len(results) != 1 || !results[0].Copy || len(results[0].Fields) != 2 || fmt.Sprint(ends) != "[COPY 3/]" {
			t.Fatalf("copy results %+v %q", results, ends)
		}
	})
	t.Run("errors-notices-notifications", func(t *testing.T) {
		_, err := c.Exec(ctx, "insert into people (id, email) values (9, 'a-secret@x.org')")
		e := wantPgErr(t, err, "23505")
		if strings.Contains(e.Detail, "secret") || !strings.Contains(e.Detail, "a-<m>@x.org") {
			t.Fatalf("error detail %q", e.Detail)
		}
		var notices []string
		cfg, _ := pgx.ParseConfig(tu.dsn())
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
		notes := make(chan string, 1)
		cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notes <- n.Payload }
		nc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close(ctx)
		if _, err := nc.Exec(ctx, "do $$ begin raise notice 'my secret'; end $$"); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(notices) != "[my <m>]" {
			t.Fatalf("notices %q", notices)
		}
		if _, err := nc.Exec(ctx, "listen ch"); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Exec(ctx, "notify ch, 'the secret'"); err != nil {
			t.Fatal(err)
		}
		if p := <-notes; p != "the <m>" {
			t.Fatalf("notification %q", p)
		}
	})
}
