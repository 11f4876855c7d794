package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// BenchmarkAgentStartup measures what `guardrun -- true` costs with two
// configured connections (identity, policy, record, two checked tunnels,
// the agent, the seal), against running `true` alone. Target: under 150 ms.
//
//	go test ./cli -run '^$' -bench AgentStartup -benchtime 20x
func BenchmarkAgentStartup(b *testing.B) {
	srv := pgtest.Start(b)
	srv.CreateUser(b, "app", "app-secret")
	srv.CreateDB(b, "app", "app")
	srv.CreateDB(b, "analytics", "app")
	bin := guardrunBin(b)
	work := b.TempDir()
	yml := "connections:\n  - name: app\n    upstream: env:APP_URL\n  - name: analytics\n    upstream: env:ANALYTICS_URL\n"
	if err := os.WriteFile(filepath.Join(work, "guardrun.yaml"), []byte(yml), 0o600); err != nil {
		b.Fatal(err)
	}
	env := isolatedEnv(work,
		"APP_URL="+srv.DSN("app", "app-secret", "app"), "ANALYTICS_URL="+srv.DSN("app", "app-secret", "analytics"))
	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Dir = env, work
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(start)
	}
	run(filepath.Join(bin, "guardrun"), "--", "true") // first run creates the device key
	var guarded, plain time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		guarded += run(filepath.Join(bin, "guardrun"), "--", "true")
		plain += run("true")
	}
	b.StopTimer()
	b.ReportMetric(float64(guarded.Milliseconds())/float64(b.N), "guardrun-ms/op")
	b.ReportMetric(float64(plain.Microseconds())/1000/float64(b.N), "true-ms/op")
	fmt.Fprintf(os.Stderr, "guardrun -- true: %.1f ms, true: %.2f ms (over %d runs)\n",
		float64(guarded.Microseconds())/1000/float64(b.N), float64(plain.Microseconds())/1000/float64(b.N), b.N)
}
