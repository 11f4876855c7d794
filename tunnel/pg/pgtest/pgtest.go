// Package pgtest starts throwaway PostgreSQL clusters for end-to-end tests
// and benchmarks: a real server on a free 127.0.0.1 port with password
// authentication (SCRAM-SHA-256, or md5 with WithMD5) over TCP, trust on a
// private unix socket for the superuser's setup work, and optionally TLS
// with a freshly generated CA (WithTLS) so clients can use sslmode=verify-full.
//
// Tests call Start, which skips when the PostgreSQL binaries are missing
// (and fails instead when CI=true) and stops the server when the test ends.
// Programs (the benchmark) call StartCluster and Close.
//
// Binaries are found in $GUARDRUN_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin, else PATH. PostgreSQL refuses to run as root: when
// the process is root, initdb and the server run as the "postgres" OS user and
// the cluster directory is handed to that user.
//
// initdb is slow, so it runs once per PostgreSQL installation: the resulting
// data directory is kept as a template in $GUARDRUN_PG_CACHE (default: the
// user's cache directory, guardrun/pgtest) and copied for every cluster, so a
// Start costs about 0.2s. On Linux a server dies with the process that
// started it, so a test binary killed by its timeout leaves none behind.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the name of the cluster's bootstrap superuser; its password is
// SuperuserPassword. They are fixed: the clusters are throwaway and loopback-only.
const (
	Superuser         = "postgres"
	SuperuserPassword = "pgtest-superuser"
)

// ErrNoPostgres means the PostgreSQL server binaries could not be found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries not found")

// ErrNoPostgresUser means the process runs as root and there is no
// "postgres" OS user to run the server as (PostgreSQL refuses root).
var ErrNoPostgresUser = errors.New("pgtest: running as root but there is no postgres OS user")

// installHint says how to make the binaries available.
const installHint = "install PostgreSQL (e.g. apt-get install postgresql-15) or set GUARDRUN_PG_BIN to the directory holding initdb, postgres, psql and pgbench"

// Option configures a cluster.
type Option func(*options)

type options struct {
	md5  bool
	tls  bool
	conf []string
}

// WithMD5 makes the server store new passwords as md5 and ask TCP clients for
// md5 authentication.
func WithMD5() Option { return func(o *options) { o.md5 = true } }

// WithTLS turns on TLS with a certificate for 127.0.0.1 and localhost signed
// by a CA generated for this cluster (Server.CAFile). TCP connections without
// TLS are then rejected, so a client that gets in proved it used TLS.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithConf adds one postgresql.conf line ("key = value").
func WithConf(line string) Option { return func(o *options) { o.conf = append(o.conf, line) } }

// Server is one running throwaway cluster.
type Server struct {
	Host      string // always 127.0.0.1
	Port      int
	SocketDir string // unix socket directory (trust auth, superuser setup)
	DataDir   string
	Dir       string // cluster directory: data, socket, log, CA
	BinDir    string
	CAFile    string // PEM of the CA that signed the server certificate; "" without TLS
	TLS       bool
	MD5       bool

	proc *process
	once sync.Once
}

// Require skips the test when the PostgreSQL binaries are missing, with a
// message saying how to install them; when CI=true it fails the test instead.
// It returns the directory holding the binaries.
func Require(t testing.TB) string {
	t.Helper()
	dir, err := BinDir()
	if err != nil {
		missing(t, err)
	}
	return dir
}

func missing(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("PostgreSQL end-to-end test needs a server: %v; %s", err, installHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Start starts a throwaway cluster for the test and stops and removes it when
// the test ends. It skips (or fails when CI=true) when PostgreSQL is missing.
// When the test failed, the tail of the server log is logged.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	Require(t)
	s, err := StartCluster(opts...)
	if errors.Is(err, ErrNoPostgres) || errors.Is(err, ErrNoPostgresUser) {
		missing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: server log (tail):\n%s", s.LogTail(40))
		}
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// StartCluster starts a throwaway cluster; the caller must Close it.
func StartCluster(opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverOwner()
	if err != nil {
		return nil, err
	}
	tmpl, err := template(bin, owner)
	if err != nil {
		return nil, err
	}
	// A short path under the temp dir: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{
		Host:      "127.0.0.1",
		Dir:       dir,
		DataDir:   filepath.Join(dir, "data"),
		SocketDir: filepath.Join(dir, "sock"),
		BinDir:    bin,
		TLS:       o.tls,
		MD5:       o.md5,
	}
	if err := s.prepare(tmpl, owner, &o); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The free port is found by binding and releasing it, so another process
	// may take it before the server binds: retry on a fresh port.
	for attempt := 0; ; attempt++ {
		err = s.start(owner)
		if err == nil {
			return s, nil
		}
		if attempt == 4 || !strings.Contains(s.LogTail(20), "could not bind") {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// BinDir returns the directory holding the PostgreSQL server binaries.
func BinDir() (string, error) {
	if d := os.Getenv("GUARDRUN_PG_BIN"); d != "" {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", fmt.Errorf("%w in GUARDRUN_PG_BIN=%s", ErrNoPostgres, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil || v <= bestVer || !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "postgres")) {
			continue
		}
		best, bestVer = d, v
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Bin returns the path of a PostgreSQL client program (psql, pgbench, ...):
// the one next to the server binaries, else the one on PATH.
func (s *Server) Bin(name string) string {
	p := filepath.Join(s.BinDir, name)
	if isExec(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// Addr is host:port of the server's TCP listener.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN returns a URL connection string for user over TCP. With TLS it asks for
// sslmode=verify-full against CAFile, otherwise sslmode=disable.
func (s *Server) DSN(user, password, db string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(user, password),
		Host:   s.Addr(),
		Path:   "/" + db,
	}
	q := url.Values{}
	if s.TLS {
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", s.CAFile)
	} else {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// SuperDSN is the DSN of the superuser over TCP to the postgres database.
func (s *Server) SuperDSN() string { return s.DSN(Superuser, SuperuserPassword, "postgres") }

// Env returns libpq environment variables (PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT) for user over TCP, to
// append to a client program's environment.
func (s *Server) Env(user, password, db string) []string {
	env := []string{
		"PGHOST=" + s.Host,
		"PGPORT=" + strconv.Itoa(s.Port),
		"PGUSER=" + user,
		"PGPASSWORD=" + password,
		"PGDATABASE=" + db,
	}
	if s.TLS {
		env = append(env, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+s.CAFile)
	} else {
		env = append(env, "PGSSLMODE=disable")
	}
	return env
}

// ExecContext runs sql (one or several statements, simple protocol) as the
// superuser over the unix socket, in the postgres database.
func (s *Server) ExecContext(ctx context.Context, sql string) error {
	return s.ExecIn(ctx, "postgres", sql)
}

// ExecIn runs sql as the superuser in database db.
func (s *Server) ExecIn(ctx context.Context, db, sql string) error {
	conn, err := s.superConn(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return fmt.Errorf("pgtest: exec %q: %w", abbrev(sql), err)
	}
	return nil
}

func (s *Server) superConn(ctx context.Context, db string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cfg.Host = s.SocketDir
	cfg.Port = uint16(s.Port)
	cfg.User = Superuser
	cfg.Password = ""
	cfg.Database = db
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.RuntimeParams = map[string]string{}
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect as superuser: %w", err)
	}
	return conn, nil
}

// Exec runs sql as the superuser and fails the test on error.
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.ExecContext(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// CreateUserContext creates a login role with password (stored with the
// cluster's password_encryption).
func (s *Server) CreateUserContext(ctx context.Context, name, password string) error {
	return s.ExecContext(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", quoteIdent(name), quoteLiteral(password)))
}

// CreateUser creates a login role with password.
func (s *Server) CreateUser(t testing.TB, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.CreateUserContext(ctx, name, password); err != nil {
		t.Fatal(err)
	}
}

// CreateDBContext creates a database owned by owner ("" = the superuser).
func (s *Server) CreateDBContext(ctx context.Context, name, owner string) error {
	sql := "CREATE DATABASE " + quoteIdent(name)
	if owner != "" {
		sql += " OWNER " + quoteIdent(owner)
	}
	return s.ExecContext(ctx, sql)
}

// CreateDB creates a database owned by owner ("" = the superuser).
func (s *Server) CreateDB(t testing.TB, name, owner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.CreateDBContext(ctx, name, owner); err != nil {
		t.Fatal(err)
	}
}

// Kill SIGKILLs the postmaster and every backend at once, as if the host
// died: open connections see a reset, new ones are refused. The directory
// stays until Close.
func (s *Server) Kill() {
	if s.proc != nil {
		s.proc.kill()
	}
}

// Stop shuts the server down (fast shutdown: open sessions are terminated)
// and waits for it to exit. The directory stays until Close.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.stop(10 * time.Second)
	}
}

// Close stops the server and removes its directory. Safe to call twice.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.Stop()
		if rerr := os.RemoveAll(s.Dir); rerr != nil {
			err = fmt.Errorf("pgtest: remove cluster directory: %w", rerr)
		}
	})
	return err
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
