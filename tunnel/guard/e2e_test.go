package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/guard"
	"github.com/guardrun/guardrun/tunnel/pg"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// Secrets planted in the table; none may ever reach a client or the record.
var planted = []string{
	"bob@example.com", "alice.smith@corp.example.org",
	"4242424242424242", "5555-5555-5555-4444",
	"ghp_0123456789abcdefghijABCDEFGHIJ012345",
	"AKIAIOSFODNN7EXAMPLE",
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
	"123-45-6789",
	"hunter2-Very-Secret",
}

type memRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *memRecorder) Record(ev recorder.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.lines = append(r.lines, ev.EventType()+" "+string(b))
	r.mu.Unlock()
	return nil
}

func (r *memRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// approver answers from a channel; nil channel = deny at once.
type chanApprover struct {
	answers chan policy.Answer
	asked   chan policy.ApprovalRequest
}

func (a *chanApprover) Approve(ctx context.Context, req policy.ApprovalRequest) (policy.Answer, error) {
	if a.asked != nil {
		a.asked <- req
	}
	if a.answers == nil {
		return policy.Answer{Verdict: policy.VerdictDeny, By: "test", Via: "test", Message: "not now"}, nil
	}
	select {
	case ans := <-a.answers:
		return ans, nil
	case <-ctx.Done():
		return policy.Answer{Verdict: policy.VerdictDeny, Via: "cancelled"}, ctx.Err()
	}
}

type stack struct {
	srv    *pgtest.Server
	dsn    string // through the tunnel
	direct string // straight to the server, as the owner
	rec    *memRecorder
}

func startStack(t *testing.T, ap tunnel.Approver) *stack {
	t.Helper()
	return startStackWith(t, policy.Baseline(), ap)
}

// startStackWith is startStack with its own policy.
func startStackWith(t *testing.T, judge guard.Judge, ap tunnel.Approver) *stack {
	t.Helper()
	srv := pgtest.Start(t)
	srv.CreateUser(t, "owner", "owner-pw")
	srv.CreateDB(t, "app", "owner")
	direct := srv.DSN("owner", "owner-pw", "app")
	m, err := mask.New(mask.DefaultConfig(), []byte("session-key"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	cat := guard.NewCatalog(direct)
	t.Cleanup(cat.Close)
	g := guard.New(guard.Options{
		Connection: "app", Session: "test", Agent: "test", Identity: policy.Identity{Email: "jane@example.com"},
		Judge: judge, Classifier: sql.NewClassifier(256), Approver: ap, Timeout: time.Hour,
		Masker: guard.PolicyMasker(m.ForConnection("app")), Recorder: rec, Catalog: cat,
	})
	cred := tunnel.NewCredential()
	p, err := pg.NewProxy(pg.Config{Upstream: direct, User: cred.User, Password: cred.Password, Hooks: g})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tunnel.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &stack{srv: srv, rec: rec, direct: direct,
		dsn: fmt.Sprintf("postgres://%s:%s@%s/app?sslmode=disable", cred.User, cred.Password, ln.Addr().(*net.TCPAddr))}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, c *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), "select count(*) from "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func assertNoSecret(t *testing.T, where, got string) {
	t.Helper()
	for _, s := range planted {
		if strings.Contains(got, s) {
			t.Errorf("%s: secret %q reached it:\n%s", where, s, got)
		}
	}
}

func TestMaskingOnEveryProtocolPath(t *testing.T) {
	s := startStack(t, &chanApprover{})
	owner := connect(t, s.direct)
	exec(t, owner, `create table people (id int primary key, email text unique, card text, token text, note jsonb, remark varchar(200), ssn text, password text)`)
	exec(t, owner, `insert into people values
		(1, 'bob@example.com', '4242424242424242', 'ghp_0123456789abcdefghijABCDEFGHIJ012345', '{"aws":"AKIAIOSFODNN7EXAMPLE"}', 'card 5555-5555-5555-4444 on file', '123-45-6789', 'hunter2-Very-Secret'),
		(2, 'alice.smith@corp.example.org', null, 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', null, 'call me', null, 'x')`)

	ctx := context.Background()
	var seen strings.Builder
	read := func(mode pgx.QueryExecMode, label string) {
		c := connect(t, s.dsn)
		rows, err := c.Query(ctx, "select * from people order by id", mode)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		n := 0
		for rows.Next() {
			n++
			vals := rows.RawValues()
			for i, v := range vals {
				fmt.Fprintf(&seen, "%s col%d %q\n", label, i, v)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if n != 2 {
			t.Errorf("%s: %d rows", label, n)
		}
	}
	read(pgx.QueryExecModeSimpleProtocol, "simple(text)")
	read(pgx.QueryExecModeCacheStatement, "prepared(binary)")
	read(pgx.QueryExecModeDescribeExec, "describe-exec")
	read(pgx.QueryExecModeExec, "exec")

	// Values still decode into Go types after masking.
	c := connect(t, s.dsn)
	var email string
	var id int
	if err := c.QueryRow(ctx, "select id, email from people where id = $1", 1).Scan(&id, &email); err != nil {
		t.Fatal(err)
	}
	if id != 1 || !strings.HasSuffix(email, "@example.com") || email == "bob@example.com" {
		t.Errorf("prepared binary scan: id %d email %q", id, email)
	}
	fmt.Fprintln(&seen, email)

	// COPY TO STDOUT, text and CSV.
	for _, q := range []string{"copy people to stdout", "copy (select * from people) to stdout with (format csv, header)", "COPY people (id, password) TO STDOUT"} {
		var buf strings.Builder
		if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if strings.Count(buf.String(), "\n") < 2 {
			t.Errorf("%s: short output %q", q, buf.String())
		}
		seen.WriteString(buf.String())
	}

	// A unique violation quotes the value in its detail.
	_, err := c.Exec(ctx, "insert into people (id, email) values (3, 'bob@example.com')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("want a unique violation, got %v", err)
	}
	fmt.Fprintf(&seen, "%s %s %s\n", pgErr.Message, pgErr.Detail, pgErr.Hint)
	if !strings.Contains(pgErr.Detail, "already exists") {
		t.Errorf("detail lost: %q", pgErr.Detail)
	}

	// NOTIFY payloads are masked too.
	l := connect(t, s.dsn)
	exec(t, l, "listen news")
	exec(t, c, "select pg_notify('news', 'token ghp_0123456789abcdefghijABCDEFGHIJ012345')")
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := l.WaitForNotification(nctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&seen, n.Payload)

	assertNoSecret(t, "what clients received", seen.String())
	if !strings.Contains(seen.String(), "***@example.com") {
		t.Errorf("masked email not seen at all:\n%s", seen.String())
	}
	// The record never holds a planted value: not in statement text (the
	// INSERT carried one), not in errors, not in counts.
	assertNoSecret(t, "the record", s.rec.all())
	if !strings.Contains(s.rec.all(), `"masked":{`) {
		t.Errorf("no masked counts recorded:\n%s", s.rec.all())
	}
}

func TestDeniedStatementNeverReachesTheServer(t *testing.T) {
	s := startStack(t, &chanApprover{}) // held statements are denied
	owner := connect(t, s.direct)
	exec(t, owner, "create table t (id int)")
	exec(t, owner, "insert into t select generate_series(1, 5)")
	c := connect(t, s.dsn)
	ctx := context.Background()

	// Denied by the baseline (server I/O), simple and extended protocol.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		_, err := c.Exec(ctx, "select pg_read_file('/etc/hostname')", mode)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "denied by policy rule server-io") {
			t.Fatalf("mode %v: want 42501 from server-io, got %v", mode, err)
		}
	}
	// Held and denied by the human: the DELETE never ran.
	_, err := c.Exec(ctx, "delete from t")
	if err == nil || !strings.Contains(err.Error(), "denied by test: not now") {
		t.Fatalf("want a human deny, got %v", err)
	}
	if n := count(t, owner, "t"); n != 5 {
		t.Fatalf("denied delete reached the server: %d rows left", n)
	}
	// A multi-statement text with one denied statement runs none of it.
	_, err = c.Exec(ctx, "insert into t values (100); select pg_read_file('/etc/hostname')", pgx.QueryExecModeSimpleProtocol)
	if err == nil {
		t.Fatal("multi-statement with a denied statement succeeded")
	}
	if n := count(t, owner, "t"); n != 5 {
		t.Fatalf("part of a refused multi-statement ran: %d rows", n)
	}
	// The connection stays usable.
	if n := count(t, c, "t"); n != 5 {
		t.Fatalf("after refusals the tunnel counts %d", n)
	}

	// pgx batch (pipeline) with a refusal in the middle stays in step:
	// pgx prepares every statement first, so the refused Parse fails the
	// batch the way a server error would, and the connection goes on.
	b := &pgx.Batch{}
	b.Queue("select 1")
	b.Queue("select pg_ls_dir('.')")
	b.Queue("select 3")
	br := c.SendBatch(ctx, b)
	var one int
	err = br.QueryRow().Scan(&one)
	if err == nil || !strings.Contains(err.Error(), "42501") {
		t.Fatalf("batch: want 42501, got %v", err)
	}
	br.Close()
	// The same in the plain extended protocol, statement by statement.
	b = &pgx.Batch{}
	b.Queue("insert into t values (7)")
	b.Queue("select pg_ls_dir('.')")
	br = c.SendBatch(ctx, b)
	_, err1 := br.Exec()
	_, err2 := br.Exec()
	br.Close()
	if err1 == nil && err2 == nil {
		t.Fatalf("batch with a denied statement succeeded")
	}
	if n := count(t, owner, "t"); n != 5 {
		t.Fatalf("part of a refused batch ran: %d rows", n)
	}
	if n := count(t, c, "t"); n != 5 {
		t.Fatalf("after the batch the connection is out of step: %d", n)
	}

	// Inside a transaction block: client and server agree it is aborted.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "insert into t values (42)"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select pg_read_file('/etc/hostname')"); err == nil {
		t.Fatal("denied statement in a transaction succeeded")
	}
	_, err = tx.Exec(ctx, "select 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
		t.Fatalf("after a deny in a transaction want 25P02, got %v", err)
	}
	if err := tx.Commit(ctx); err == nil || !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("COMMIT of an aborted transaction: want rollback, got %v", err)
	}
	if n := count(t, owner, "t"); n != 5 {
		t.Fatalf("the aborted transaction's insert persisted: %d rows", n)
	}
}

func TestApprovalHoldsOnlyItsConnection(t *testing.T) {
	ap := &chanApprover{answers: make(chan policy.Answer), asked: make(chan policy.ApprovalRequest, 1)}
	s := startStack(t, ap)
	owner := connect(t, s.direct)
	exec(t, owner, "create table t (id int)")
	exec(t, owner, "insert into t select generate_series(1, 5)")
	held := connect(t, s.dsn)
	other := connect(t, s.dsn)

	done := make(chan error, 1)
	go func() {
		_, err := held.Exec(context.Background(), "delete from t")
		done <- err
	}()
	var req policy.ApprovalRequest
	select {
	case req = <-ap.asked:
	case <-time.After(20 * time.Second):
		t.Fatal("no approval was asked for")
	}
	if req.Rule != "no-where" || !strings.Contains(strings.ToLower(req.SQL), "delete from t") {
		t.Errorf("request = %+v", req)
	}
	// While it waits, other connections work and the delete has not run.
	for i := 0; i < 3; i++ {
		if n := count(t, other, "t"); n != 5 {
			t.Fatalf("while held: %d rows", n)
		}
	}
	ap.answers <- policy.Answer{Verdict: policy.VerdictApproveOnce, By: "jane@example.com", Via: "test"}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("approved delete failed: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("approved statement never finished")
	}
	if n := count(t, owner, "t"); n != 0 {
		t.Fatalf("approved delete did not run: %d rows", n)
	}
}

func TestApprovalTimeoutDenies(t *testing.T) {
	b := tunnel.NewBroker(tunnel.BrokerOptions{})
	sub := b.Subscribe() // someone could answer, but nobody does
	defer sub.Close()
	defer b.Close()
	pol, err := policy.LoadFile("guardrun.yaml", []byte("policy:\n  approval_timeout: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := startStackWith(t, pol, b)
	owner := connect(t, s.direct)
	exec(t, owner, "create table t (id int); insert into t values (1)")
	c := connect(t, s.dsn)
	start := time.Now()
	_, err = c.Exec(context.Background(), "truncate t")
	if err == nil || !strings.Contains(err.Error(), "no one approved within") {
		t.Fatalf("want a timeout deny, got %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("timeout took %v", time.Since(start))
	}
	if n := count(t, owner, "t"); n != 1 {
		t.Fatalf("timed-out truncate ran: %d rows", n)
	}
}
