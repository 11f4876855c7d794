package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/guardrun/guardrun/cli"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// The CLI is tested as a black box: one script per feature under
// testdata/script, with the guardrun binary mapped into each script.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"guardrun": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			work := env.WorkDir
			for k, v := range map[string]string{
				"HOME":             filepath.Join(work, "home"),
				"XDG_CONFIG_HOME":  filepath.Join(work, ".config"),
				"XDG_DATA_HOME":    filepath.Join(work, ".data"),
				"XDG_STATE_HOME":   filepath.Join(work, ".state"),
				"XDG_RUNTIME_DIR":  filepath.Join(work, ".run"),
				"GUARDRUN_KEYRING": "file",
				"NO_COLOR":         "1",
			} {
				env.Setenv(k, v)
			}
			return os.MkdirAll(filepath.Join(work, "home"), 0o700)
		},
		// [postgres] is true when PostgreSQL server binaries are installed;
		// under CI=true their absence fails instead of skipping.
		Condition: func(cond string) (bool, error) {
			if cond != "postgres" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, err := pgtest.BinDir(); err != nil {
				if os.Getenv("CI") == "true" {
					return false, fmt.Errorf("PostgreSQL server binaries are required under CI=true (apt-get install postgresql): %v", err)
				}
				return false, nil
			}
			return true, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// pgstart starts a throwaway PostgreSQL for the script and sets
			// DATABASE_URL to it (user app, password app-secret, db app).
			"pgstart": func(ts *testscript.TestScript, neg bool, args []string) {
				srv, err := pgtest.StartCluster()
				ts.Check(err)
				ts.Defer(func() { srv.Close() })
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ts.Check(srv.CreateUserContext(ctx, "app", "app-secret"))
				ts.Check(srv.CreateDBContext(ctx, "app", "app"))
				ts.Setenv("DATABASE_URL", srv.DSN("app", "app-secret", "app"))
				ts.Setenv("PG_SUPER_URL", srv.DSN(pgtest.Superuser, pgtest.SuperuserPassword, "app"))
			},
			// pgexec runs SQL on the script's server as the superuser,
			// straight to the server (not through guardrun).
			"pgexec": func(ts *testscript.TestScript, neg bool, args []string) {
				err := ts.Exec("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-Atc", strings.Join(args, " "), ts.Getenv("PG_SUPER_URL"))
				if (err != nil) != neg {
					ts.Fatalf("pgexec: %v", err)
				}
			},
		},
	})
}
