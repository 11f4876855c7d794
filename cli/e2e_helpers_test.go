package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// guardrunBin links the test binary as "guardrun" (TestMain dispatches on
// the name) and returns the directory to put on PATH.
func guardrunBin(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "guardrun")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// appDB starts a throwaway server with user app (password app-secret) owning
// database app, runs setup there as app, and returns its DSN and a direct
// connection (not through guardrun) for checking server-side state.
func appDB(t testing.TB, setup string) (string, *pgx.Conn) {
	t.Helper()
	srv := pgtest.Start(t)
	srv.CreateUser(t, "app", "app-secret")
	srv.CreateDB(t, "app", "app")
	dsn := srv.DSN("app", "app-secret", "app")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if setup != "" {
		if _, err := conn.Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, conn
}

// countRows counts a table's rows, straight from the server.
func countRows(t testing.TB, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "select count(*) from "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// isolatedEnv is the environment guardrun runs with in a test: its own
// home, XDG directories and file-backed secrets under work.
func isolatedEnv(work string, extra ...string) []string {
	return append(append(os.Environ(),
		"HOME="+work, "XDG_CONFIG_HOME="+work+"/config", "XDG_DATA_HOME="+work+"/data",
		"XDG_STATE_HOME="+work+"/state", "XDG_RUNTIME_DIR="+work+"/run", "GUARDRUN_KEYRING=file"), extra...)
}
