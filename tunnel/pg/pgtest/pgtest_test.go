package pgtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

func connect(t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

func scalar(t *testing.T, c *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := c.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestSCRAMByDefault(t *testing.T) {
	s := pgtest.Start(t)
	s.CreateUser(t, "alice", "s3cret")
	s.CreateDB(t, "app", "alice")
	c, err := connect(t, s.DSN("alice", "s3cret", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if got := scalar(t, c, "select current_user || '@' || current_database()"); got != "alice@app" {
		t.Fatalf("connected as %q", got)
	}
	s.Exec(t, "create table app_check(x int)") // superuser, postgres db
	var pw string
	su, err := connect(t, s.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	pw = scalar(t, su, "select rolpassword from pg_authid where rolname = 'alice'")
	if !strings.HasPrefix(pw, "SCRAM-SHA-256$") {
		t.Fatalf("password stored as %.10q..., want SCRAM", pw)
	}

	_, err = connect(t, s.DSN("alice", "wrong", "app"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("wrong password: got %v, want 28P01", err)
	}
}

func TestMD5(t *testing.T) {
	s := pgtest.Start(t, pgtest.WithMD5())
	s.CreateUser(t, "bob", "pw-bob")
	su, err := connect(t, s.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	if pw := scalar(t, su, "select rolpassword from pg_authid where rolname = 'bob'"); !strings.HasPrefix(pw, "md5") {
		t.Fatalf("password stored as %.6q..., want md5", pw)
	}
	if m := scalar(t, su, "select auth_method from pg_hba_file_rules where type = 'host' limit 1"); m != "md5" {
		t.Fatalf("pg_hba method %q, want md5", m)
	}
	c, err := connect(t, s.DSN("bob", "pw-bob", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
}

func TestTLSVerifyFull(t *testing.T) {
	s := pgtest.Start(t, pgtest.WithTLS())
	if s.CAFile == "" {
		t.Fatal("no CA file")
	}
	s.CreateUser(t, "carol", "pw-carol")
	dsn := s.DSN("carol", "pw-carol", "postgres")
	if !strings.Contains(dsn, "sslmode=verify-full") {
		t.Fatalf("DSN %q does not ask for verify-full", dsn)
	}
	c, err := connect(t, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if got := scalar(t, c, "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()"); got != "true" {
		t.Fatalf("pg_stat_ssl.ssl = %s", got)
	}
	// The CA is really checked: localhost is in the certificate too, and a
	// client that does not trust the CA is refused.
	if c2, err := connect(t, strings.Replace(dsn, "127.0.0.1", "localhost", 1)); err != nil {
		t.Fatalf("verify-full to localhost: %v", err)
	} else {
		c2.Close(context.Background())
	}
	noCA := strings.Replace(dsn, "sslrootcert=", "sslrootcert=/nonexistent", 1)
	if c3, err := connect(t, noCA); err == nil {
		c3.Close(context.Background())
		t.Fatal("verify-full without the CA connected")
	}
	// Non-TLS TCP is rejected.
	plain := strings.Replace(dsn, "sslmode=verify-full", "sslmode=disable", 1)
	if c4, err := connect(t, plain); err == nil {
		c4.Close(context.Background())
		t.Fatal("sslmode=disable connected to a TLS-only cluster")
	}
}

func TestKillAndWithConf(t *testing.T) {
	s := pgtest.Start(t, pgtest.WithConf("application_name = 'from_conf'"))
	c, err := connect(t, s.SuperDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if got := scalar(t, c, "select current_setting('work_mem')"); got == "" {
		t.Fatal("no work_mem")
	}
	if got := scalar(t, c, "select setting from pg_settings where name = 'application_name' and source = 'configuration file'"); got != "from_conf" {
		t.Fatalf("WithConf not applied: %q", got)
	}
	start := time.Now()
	s.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, "select 1"); err == nil {
		t.Fatal("query succeeded after Kill")
	}
	if _, err := connect(t, s.SuperDSN()); err == nil {
		t.Fatal("connected after Kill")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("kill took %v", d)
	}
}

func TestStartIsQuick(t *testing.T) {
	pgtest.Start(t) // warms the template
	start := time.Now()
	pgtest.Start(t)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Start took %v", d)
	}
	t.Logf("Start with a warm template: %v", time.Since(start))
}
