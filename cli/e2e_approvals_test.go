package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApprovalsFromAnotherTerminalE2E is the unattended flow: a session
// without a terminal holds a statement, and a person answers it with
// `guardrun approvals` from another process, through the control socket.
func TestApprovalsFromAnotherTerminalE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dsn, conn := appDB(t, "create table t (id int); insert into t select generate_series(1, 4)")
	bin := filepath.Join(guardrunBin(t), "guardrun")
	work := t.TempDir()
	env := isolatedEnv(work, "DATABASE_URL="+dsn)
	command := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Env, c.Dir = env, work
		return c
	}

	// Someone watches for held statements before the session starts.
	watch := command("approvals", "--watch", "--output", "json")
	var watchOut bytes.Buffer
	watch.Stdout = &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { watch.Process.Signal(os.Interrupt); watch.Wait() }()
	time.Sleep(300 * time.Millisecond)

	session := command("connect", "postgres", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "delete from t")
	var sessOut bytes.Buffer
	session.Stdout, session.Stderr = &sessOut, &sessOut
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()

	// Find the held request's id, as a person would, with the list.
	var id string
	deadline := time.Now().Add(20 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		out, _ := command("approvals", "--output", "json").Output()
		var snap struct {
			Pending []struct {
				ID  string `json:"id"`
				SQL string `json:"sql"`
			} `json:"pending"`
		}
		if json.Unmarshal(out, &snap) == nil {
			for _, r := range snap.Pending {
				if strings.Contains(strings.ToLower(r.SQL), "delete from t") {
					id = r.ID
				}
			}
		}
		if id == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if id == "" {
		session.Process.Kill()
		t.Fatalf("the held statement never showed in guardrun approvals; session said:\n%s", sessOut.String())
	}
	if n := countRows(t, conn, "t"); n != 4 {
		t.Fatalf("before the answer: %d rows", n)
	}
	if out, err := command("approvals", "approve", id).CombinedOutput(); err != nil {
		t.Fatalf("approvals approve %s: %v\n%s", id, err, out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("session: %v\n%s", err, sessOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the approved statement never finished")
	}
	if !strings.Contains(sessOut.String(), "DELETE 4") {
		t.Errorf("psql did not run the delete:\n%s", sessOut.String())
	}
	if n := countRows(t, conn, "t"); n != 0 {
		t.Fatalf("after the approval: %d rows", n)
	}
}
