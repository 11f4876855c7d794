package pg_test

// End-to-end tests with the real PostgreSQL command-line clients (psql,
// pgbench) talking to a real server through the tunnel. They prove that the
// tunnel is transparent to what people and tools actually run: a script's
// output is byte-identical to the same script run directly, \copy works both
// ways, Ctrl-C cancels a running statement, pgbench completes in every query
// mode, and the client-side failures (wrong password, sslmode=require) are
// clear. Without PostgreSQL installed they skip (fail when CI=true).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/pg"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// clientEnv is a server with an application database, and a tunnel to it.
type clientEnv struct {
	srv  *pgtest.Server
	db   string // database behind the tunnel, owned by the upstream user
	cred tunnel.Credential
	port int

	mu     sync.Mutex
	events []pg.Event
}

const (
	clientUpUser = "app_owner"
	clientUpPass = "upstream-Secret-1"
	clientDB     = "app"
)

// newClientEnv starts a server (with opts), creates the upstream user and
// database, and serves a tunnel to it until the test ends.
func newClientEnv(t testing.TB, opts ...pgtest.Option) *clientEnv {
	t.Helper()
	srv := pgtest.Start(t, opts...)
	srv.CreateUser(t, clientUpUser, clientUpPass)
	srv.CreateDB(t, clientDB, clientUpUser)
	e := &clientEnv{srv: srv, db: clientDB}
	e.serve(t, srv.DSN(clientUpUser, clientUpPass, clientDB))
	return e
}

// serve starts a tunnel to upstream and stops it (waiting for Serve to
// return) when the test ends.
func (e *clientEnv) serve(t testing.TB, upstream string) {
	t.Helper()
	e.serveWith(t, upstream, nil)
}

func (e *clientEnv) serveWith(t testing.TB, upstream string, hooks pg.Hooks) {
	t.Helper()
	e.cred = tunnel.NewCredential()
	p, err := pg.NewProxy(pg.Config{
		Upstream: upstream,
		User:     e.cred.User,
		Password: e.cred.Password,
		Hooks:    hooks,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnEvent: func(ev pg.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tunnel.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
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
			t.Error("Serve did not return 10s after its context was cancelled")
		}
	})
}

// waitEvents waits up to 5s for n events of kind (events are reported from
// the connection's goroutine, possibly after the client saw the outcome) and
// returns how many there were.
func (e *clientEnv) waitEvents(kind pg.EventKind, n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.eventCount(kind)
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *clientEnv) eventCount(kind pg.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// tunnelEnv is the environment a client program gets to use the tunnel:
// libpq variables only, none inherited from the test's environment, and no
// sslmode so the client's default (prefer: SSLRequest, answered N) is used.
func (e *clientEnv) tunnelEnv(extra ...string) []string {
	env := clientCleanEnv()
	env = append(env,
		"PGHOST=127.0.0.1",
		"PGPORT="+strconv.Itoa(e.port),
		"PGUSER="+e.cred.User,
		"PGPASSWORD="+e.cred.Password,
		"PGDATABASE="+e.db,
		"PGCONNECT_TIMEOUT=10",
	)
	return append(env, extra...)
}

// directEnv points a client straight at the server, as the upstream user.
func (e *clientEnv) directEnv(db string) []string {
	return append(clientCleanEnv(), append(e.srv.Env(clientUpUser, clientUpPass, db), "PGCONNECT_TIMEOUT=10")...)
}

func clientCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "PSQL") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C", "PAGER=", "PSQL_PAGER=")
}

// run runs a client program and returns its combined output and exit code.
func runClient(t *testing.T, env []string, dir string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v timed out; output:\n%s", name, args, out)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
		return "", -1
	}
}

func (e *clientEnv) psql(t *testing.T, env []string, dir string, args ...string) (string, int) {
	t.Helper()
	return runClient(t, env, dir, e.srv.Bin("psql"), append([]string{"-X", "--no-password"}, args...)...)
}

// TestPsqlScript runs one script directly against the server and through
// the tunnel, into two identical databases: the outputs must be identical,
// so every result, notice, error and transaction state the script provokes
// crossed the tunnel unchanged.
func TestPsqlScript(t *testing.T) {
	e := newClientEnv(t)
	e.srv.CreateDB(t, "direct", clientUpUser)
	script, err := filepath.Abs("testdata/psql_script.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(script)
	direct, dcode := e.psql(t, e.directEnv("direct"), dir, "-f", script)
	through, tcode := e.psql(t, e.tunnelEnv(), dir, "-f", script)
	if dcode != 0 || tcode != 0 {
		t.Fatalf("exit codes: direct %d, tunnel %d\ntunnel output:\n%s", dcode, tcode, through)
	}
	if through != direct {
		t.Fatalf("output through the tunnel differs from direct\n--- direct\n%s\n--- tunnel\n%s", direct, through)
	}
	// And the script did what it says (so identical is not identically empty).
	for _, want := range []string{
		"NOTICE:  hello from plpgsql 42",
		"ERROR:  division by zero",
		"ERROR:  current transaction is aborted",
		"ERROR:  relation \"no_such_table\" does not exist",
		"5000050000",   // sum(1..100000)
		"multi_second", // second statement of a multi-statement Query
		"héllo wörld ✓",
		"(3 rows)",
	} {
		if !strings.Contains(through, want) {
			t.Errorf("tunnel output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("tunnel output:\n%s", through)
	}
	if e.waitEvents(pg.ConnOpened, 1) == 0 {
		t.Error("no ConnOpened event")
	}
}

// TestPsqlCopy moves a table out with \copy ... to, and back in with \copy
// ... from, through the tunnel; the server then holds the same rows twice.
func TestPsqlCopy(t *testing.T) {
	e := newClientEnv(t)
	dir := t.TempDir()
	setup := `
create table src(id int primary key, name text, note text, amount numeric(12,2));
insert into src select g, 'name-' || g, case when g % 7 = 0 then null else E'tab\there, "quoted", comma,' || md5(g::text) end, g * 1.25
  from generate_series(1, 20000) g;
create table dst (like src);
create table dst_text (like src);`
	if out, code := e.psql(t, e.tunnelEnv(), dir, "-v", "ON_ERROR_STOP=1", "-c", setup); code != 0 {
		t.Fatalf("setup: %s", out)
	}
	steps := []string{
		`\copy src to 'src.csv' with (format csv, header)`,
		`\copy src to 'src.txt'`,
		`\copy dst from 'src.csv' with (format csv, header)`,
		`\copy dst_text from 'src.txt'`,
		`\copy (select id from src where id <= 3 order by id) to stdout`,
	}
	var args []string
	for _, s := range steps {
		args = append(args, "-c", s)
	}
	out, code := e.psql(t, e.tunnelEnv(), dir, append([]string{"-v", "ON_ERROR_STOP=1"}, args...)...)
	if code != 0 {
		t.Fatalf("\\copy through the tunnel: exit %d\n%s", code, out)
	}
	for _, want := range []string{"COPY 20000\nCOPY 20000\nCOPY 20000\nCOPY 20000\n1\n2\n3\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "src.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(csv, []byte("\n")); n != 20001 {
		t.Fatalf("src.csv has %d lines, want 20001", n)
	}
	// Compare the tables on the server, not through the tunnel.
	c, err := pgx.Connect(context.Background(), e.srv.DSN(clientUpUser, clientUpPass, clientDB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	digest := func(table string) string {
		var s string
		q := fmt.Sprintf("select count(*) || ':' || md5(string_agg(t::text, '|' order by id)) from %s t", table)
		if err := c.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	src := digest("src")
	if !strings.HasPrefix(src, "20000:") {
		t.Fatalf("src digest %s", src)
	}
	for _, table := range []string{"dst", "dst_text"} {
		if got := digest(table); got != src {
			t.Errorf("%s = %s, src = %s", table, got, src)
		}
	}
}

// TestPsqlCancel: Ctrl-C in psql sends a CancelRequest to the tunnel, which
// must reach the right upstream backend.
func TestPsqlCancel(t *testing.T) {
	e := newClientEnv(t)
	var out bytes.Buffer
	cmd := exec.Command(e.srv.Bin("psql"), "-X", "--no-password", "-c", "select pg_sleep(30) as cancel_me")
	cmd.Env = e.tunnelEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	waited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(waited) }()
	defer func() {
		select {
		case <-waited:
		default:
			_ = cmd.Process.Kill()
			<-waited
		}
	}()

	// Wait until the statement runs upstream, so the cancel is not a race
	// with the query's arrival.
	c, err := pgx.Connect(context.Background(), e.srv.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		err := c.QueryRow(context.Background(),
			"select count(*) from pg_stat_activity where state = 'active' and query like '%cancel_me%' and pid <> pg_backend_pid()").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query never became active upstream; psql output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
		var exit *exec.ExitError
		if !errors.As(waitErr, &exit) || exit.ExitCode() != 1 {
			t.Errorf("psql ended with %v, want exit status 1", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("psql still running 10s after Ctrl-C; output:\n%s", out.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Fatalf("psql output lacks the cancel error:\n%s", out.String())
	}
}

// TestPsqlWrongPassword: the client learns its password is wrong (28P01),
// the tunnel reports it, and the right password still works afterwards.
func TestPsqlWrongPassword(t *testing.T) {
	e := newClientEnv(t)
	out, code := e.psql(t, e.tunnelEnv("PGPASSWORD=wrong-"+e.cred.Password), "", "-c", "select 1")
	if code != 2 {
		t.Errorf("psql exit %d, want 2 (connection failed)", code)
	}
	if !strings.Contains(out, `FATAL:  password authentication failed for user "`+e.cred.User+`"`) {
		t.Errorf("psql output lacks the authentication failure:\n%s", out)
	}
	if strings.Contains(out, clientUpPass) || strings.Contains(out, e.cred.Password) {
		t.Errorf("a password leaked into the client's error:\n%s", out)
	}
	// The SQLSTATE, as a driver sees it.
	_, err := pgconn.Connect(context.Background(), fmt.Sprintf("postgres://%s:wrong@127.0.0.1:%d/%s?sslmode=disable", e.cred.User, e.port, e.db))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" || pgErr.Severity != "FATAL" {
		t.Errorf("wrong password: got %v, want FATAL 28P01", err)
	}
	if n := e.waitEvents(pg.AuthFailed, 2); n != 2 {
		t.Errorf("%d AuthFailed events, want 2", n)
	}
	if out, code := e.psql(t, e.tunnelEnv(), "", "-At", "-c", "select 40 + 2"); code != 0 || strings.TrimSpace(out) != "42" {
		t.Errorf("right password after wrong ones: exit %d, %q", code, out)
	}
}

// TestPsqlSSLRequire: the tunnel is plain TCP on loopback and says so (N to
// SSLRequest); a client that insists on TLS fails clearly instead of hanging
// or silently downgrading.
func TestPsqlSSLRequire(t *testing.T) {
	e := newClientEnv(t)
	start := time.Now()
	out, code := e.psql(t, e.tunnelEnv("PGSSLMODE=require"), "", "-c", "select 1")
	if code != 2 {
		t.Errorf("psql exit %d, want 2", code)
	}
	if !strings.Contains(out, "server does not support SSL, but SSL was required") {
		t.Errorf("psql output:\n%s", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %v", d)
	}
	// sslmode=prefer (the default) falls back to plain TCP and works.
	if out, code := e.psql(t, e.tunnelEnv("PGSSLMODE=prefer"), "", "-At", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"); code != 0 || strings.TrimSpace(out) != "f" {
		t.Errorf("sslmode=prefer: exit %d, %q", code, out)
	}
}

// TestTunnelToTLSUpstream: the upstream leg uses TLS with verify-full
// against the server's CA (the server refuses plain TCP), while the client
// talks plain TCP on loopback to the tunnel.
func TestTunnelToTLSUpstream(t *testing.T) {
	e := newClientEnv(t, pgtest.WithTLS())
	out, code := e.psql(t, e.tunnelEnv(), "", "-At", "-c",
		"select ssl, current_user, current_database() from pg_stat_ssl where pid = pg_backend_pid()")
	if code != 0 {
		t.Fatalf("psql through a tunnel with a TLS upstream: exit %d\n%s", code, out)
	}
	if got, want := strings.TrimSpace(out), "t|"+clientUpUser+"|"+clientDB; got != want {
		t.Fatalf("got %q, want %q (TLS upstream as the upstream user)", got, want)
	}

	// An upstream whose certificate cannot be verified (another cluster's CA
	// as the root): the client gets an error, not a connection and not a hang.
	other := pgtest.Start(t, pgtest.WithTLS())
	bad := newClientEnvOn(t, e.srv, strings.Replace(e.srv.DSN(clientUpUser, clientUpPass, clientDB),
		url.QueryEscape(e.srv.CAFile), url.QueryEscape(other.CAFile), 1))
	out, code = bad.psql(t, bad.tunnelEnv(), "", "-c", "select 1")
	if code == 0 {
		t.Fatalf("tunnel to an upstream whose name is not in its certificate connected:\n%s", out)
	}
	if n := bad.waitEvents(pg.UpstreamFailed, 1); n != 1 {
		t.Errorf("UpstreamFailed events: %d, want 1", n)
	}
	t.Logf("client saw: %s", strings.TrimSpace(out))
}

// newClientEnvOn serves a second tunnel to an existing server.
func newClientEnvOn(t *testing.T, srv *pgtest.Server, upstream string) *clientEnv {
	t.Helper()
	e := &clientEnv{srv: srv, db: clientDB}
	e.serve(t, upstream)
	return e
}

var pgbenchProcessed = regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)

// TestPgbench initialises pgbench's tables through the tunnel, then runs its
// default (TPC-B-like, read-write) script in each query mode.
func TestPgbench(t *testing.T) {
	e := newClientEnv(t)
	pgbench := e.srv.Bin("pgbench")
	if out, code := runClient(t, e.tunnelEnv(), "", pgbench, "-i", "-s", "1", "-q"); code != 0 {
		t.Fatalf("pgbench -i through the tunnel: exit %d\n%s", code, out)
	}
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			out, code := runClient(t, e.tunnelEnv(), "", pgbench, "-M", mode, "-c", "2", "-j", "2", "-t", "150", "-n")
			if code != 0 {
				t.Fatalf("pgbench -M %s: exit %d\n%s", mode, code, out)
			}
			m := pgbenchProcessed.FindStringSubmatch(out)
			if m == nil || m[1] != "300" || m[2] != "300" {
				t.Fatalf("pgbench -M %s did not process 300/300:\n%s", mode, out)
			}
			if strings.Contains(out, "error") || !strings.Contains(out, "number of failed transactions: 0") {
				t.Fatalf("pgbench -M %s reported errors:\n%s", mode, out)
			}
		})
	}
	// The work really reached the server: 900 history rows.
	c, err := pgx.Connect(context.Background(), e.srv.DSN(clientUpUser, clientUpPass, clientDB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "select count(*) from pgbench_history").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 900 {
		t.Fatalf("pgbench_history has %d rows, want 900", n)
	}
}

// maskColumnHooks replaces every value of one column with a fixed mask, as
// the masker will: the row-rewriting path of the proxy.
type maskColumnHooks struct{ column int }

func (h maskColumnHooks) Open(context.Context, pg.ConnInfo) pg.ConnHooks { return h }
func (maskColumnHooks) Inspect(context.Context, pg.Query) pg.Verdict     { return pg.Verdict{} }
func (h maskColumnHooks) StartResult(r pg.ResultInfo) pg.RowFilter {
	if len(r.Fields) <= h.column {
		return nil
	}
	return h
}
func (maskColumnHooks) ServerError(*pg.ServerMessage, bool)   {}
func (maskColumnHooks) Notification(_, payload string) string { return payload }
func (maskColumnHooks) Close(error)                           {}
func (h maskColumnHooks) Row(values [][]byte)                 { values[h.column] = maskedValue }
func (maskColumnHooks) CopyData(data []byte) []byte           { return data }
func (maskColumnHooks) End(string, string)                    {}

var maskedValue = []byte("[masked:email]")

// TestStreamMemoryFlat streams a result several times larger than any
// buffer the proxy may keep, passed through and with every row rewritten,
// and checks the heap of this process (tunnel and client) stays flat.
func TestStreamMemoryFlat(t *testing.T) {
	const rows = 400_000 // ~45 MB of values
	srv := pgtest.Start(t)
	srv.CreateUser(t, clientUpUser, clientUpPass)
	srv.CreateDB(t, clientDB, clientUpUser)
	q := fmt.Sprintf("select g, 'user' || g || '@example.com', md5(g::text) || md5((g+1)::text) from generate_series(1, %d) g", rows)
	for _, tc := range []struct {
		name  string
		hooks pg.Hooks
	}{
		{"pass-through", nil},
		{"row-filter", maskColumnHooks{column: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &clientEnv{srv: srv, db: clientDB}
			e.serveWith(t, srv.DSN(clientUpUser, clientUpPass, clientDB), tc.hooks)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", e.cred.User, e.cred.Password, e.port, e.db))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())

			runtime.GC()
			before := clientHeapObjects()
			stop := make(chan struct{})
			var peak uint64
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						peak = max(peak, clientHeapObjects())
					}
				}
			})
			var n, size int
			masked := 0
			rr := c.ExecParams(ctx, q, nil, nil, nil, nil)
			for rr.NextRow() {
				v := rr.Values()
				n++
				size += len(v[0]) + len(v[1]) + len(v[2])
				if bytes.Equal(v[1], maskedValue) {
					masked++
				}
			}
			_, err = rr.Close()
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if n != rows {
				t.Fatalf("%d rows, want %d", n, rows)
			}
			if want := map[bool]int{true: 0, false: rows}[tc.hooks == nil]; masked != want {
				t.Fatalf("%d rows masked, want %d", masked, want)
			}
			runtime.GC()
			after := clientHeapObjects()
			growth := int64(peak) - int64(before)
			t.Logf("%d rows, %.1f MB of values; heap before %.1f MiB, peak %.1f MiB, after %.1f MiB",
				n, float64(size)/1e6, clientMiB(before), clientMiB(peak), clientMiB(after))
			if growth > 16<<20 {
				t.Errorf("heap grew by %.1f MiB while %.1f MB streamed: the tunnel buffers results", float64(growth)/(1<<20), float64(size)/1e6)
			}
			if int64(after)-int64(before) > 4<<20 {
				t.Errorf("heap kept %.1f MiB after the stream", float64(int64(after)-int64(before))/(1<<20))
			}
		})
	}
}

func clientHeapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func clientMiB(b uint64) float64 { return float64(b) / (1 << 20) }
