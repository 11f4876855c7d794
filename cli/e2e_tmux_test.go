package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type tmux struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, cols, rows int, env []string, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tmux is required under CI=true: %v", err)
		}
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	tm := &tmux{t: t, socket: fmt.Sprintf("guardrun-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	args := []string{"-L", tm.socket, "-f", "/dev/null", "new-session", "-d", "-s", "g", "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows), "env"}
	args = append(args, env...)
	args = append(args, "sh", "-c", command+`; echo "guardrun-exit=$?"; sleep 30`)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) send(keys ...string) {
	tm.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", tm.socket, "send-keys", "-t", "g"}, keys...)...).CombinedOutput(); err != nil {
		tm.t.Fatalf("send-keys: %v\n%s", err, out)
	}
}

func (tm *tmux) screen() string {
	out, _ := exec.Command("tmux", "-L", tm.socket, "capture-pane", "-p", "-t", "g").Output()
	return string(out)
}

// waitFor polls the screen until it contains want.
func (tm *tmux) waitFor(want string, d time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := tm.screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("screen never showed %q; it shows:\n%s", want, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgentInlineApprovalE2E runs `guardrun -- bash` in a real terminal
// (tmux), sends statements with real psql from inside it, and answers the
// approval prompt with keystrokes, as a person would.
func TestAgentInlineApprovalE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dsn, conn := appDB(t, `create table orders (id int); insert into orders select generate_series(1, 3); create table audit (id int); insert into audit values (1)`)
	count := func(table string) int { return countRows(t, conn, table) }

	bin := guardrunBin(t)
	work := t.TempDir()
	env := []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + work, "XDG_CONFIG_HOME=" + work + "/config", "XDG_DATA_HOME=" + work + "/data",
		"XDG_STATE_HOME=" + work + "/state", "XDG_RUNTIME_DIR=" + work + "/run", "GUARDRUN_KEYRING=file", "NO_COLOR=1",
		"DATABASE_URL=" + dsn, "PS1=agent$ ", "TERM=xterm-256color",
	}
	tm := newTmux(t, 110, 32, env, "cd "+work+" && guardrun -- bash --norc --noprofile")
	tm.waitFor("agent$", 20*time.Second)
	tm.send("echo before-the-prompt", "Enter")
	tm.waitFor("before-the-prompt", 5*time.Second)

	// A DELETE without WHERE is held: the prompt is drawn over the agent.
	tm.send("psql -X -c 'delete from orders'", "Enter")
	s := tm.waitFor("approval needed", 15*time.Second)
	for _, want := range []string{"delete from orders", "[a]", "[d]"} {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(want)) {
			t.Errorf("prompt lacks %q:\n%s", want, s)
		}
	}
	if n := count("orders"); n != 3 {
		t.Fatalf("held statement reached the server: %d rows left", n)
	}
	time.Sleep(400 * time.Millisecond) // keys typed right as a prompt appears still go to the agent
	tm.send("a")
	s = tm.waitFor("DELETE 3", 15*time.Second)
	if strings.Contains(s, "approval needed") {
		t.Errorf("the prompt was left on screen:\n%s", s)
	}
	if !strings.Contains(s, "before-the-prompt") {
		t.Errorf("the agent's screen was not restored:\n%s", s)
	}
	if n := count("orders"); n != 0 {
		t.Fatalf("approved delete did not run: %d rows left", n)
	}

	// Deny with a note: the note reaches the client in the error.
	tm.send("clear; psql -X -c 'truncate audit'", "Enter")
	tm.waitFor("approval needed", 15*time.Second)
	time.Sleep(400 * time.Millisecond)
	tm.send("m")
	time.Sleep(300 * time.Millisecond)
	tm.send("-l", "archive it first")
	tm.send("Enter")
	s = tm.waitFor("archive it first", 15*time.Second)
	if !strings.Contains(s, "guardrun: denied by") {
		t.Errorf("deny message not shown:\n%s", s)
	}
	if n := count("audit"); n != 1 {
		t.Fatalf("denied truncate ran: %d rows", n)
	}

	// The agent's exit code becomes guardrun's.
	tm.send("exit 3", "Enter")
	tm.waitFor("guardrun-exit=3", 15*time.Second)

	verify := exec.Command(filepath.Join(bin, "guardrun"), "sessions", "verify", "--all")
	verify.Env = env
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Errorf("sessions verify: %v\n%s", err, out)
	}
}
