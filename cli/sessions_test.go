package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tui"
)

// sessionsFactory is a Factory with a session store holding a sealed agent
// session and a sealed connect session.
func sessionsFactory(t *testing.T) (f *Factory, st *recorder.Store, agent, connect string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	f, _ = testFactory(t, map[string]string{"XDG_DATA_HOME": data})
	f.Config = func() (*Config, error) { return &Config{}, nil }
	st, err := recorder.OpenStore(filepath.Join(data, "guardrun", "sessions"), recorder.StoreOptions{
		Signer: recorder.KeySigner(testSigningKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	agent = recordTestSession(t, st, "claude", true)
	connect = recordTestSession(t, st, "connect", false)
	return f, st, agent, connect
}

func testSigningKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
}

func recordTestSession(t *testing.T, st *recorder.Store, agent string, terminal bool) string {
	t.Helper()
	s, err := st.Create(recorder.Start{Identity: recorder.Identity{Email: "jane@acme.dev", Method: "local"}, Command: []string{agent}, Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	var cw recorder.CastWriter
	if terminal {
		cw = s.Cast(80, 24)
		cw.WriteOutput([]byte("working on it\r\n"))
	}
	for i, ev := range []recorder.Event{
		recorder.ConnOpen{Connection: "app", ConnID: 1, Application: "psql", Database: "app"},
		recorder.Statement{Connection: "app", ConnID: 1, Seq: 1, SQL: "SELECT id, email FROM users", Decision: "allow"},
		recorder.Result{Connection: "app", ConnID: 1, Seq: 1, Tag: "SELECT 3", Rows: 3, Masked: map[string]int{"email": 3}},
		recorder.Statement{Connection: "app", ConnID: 1, Seq: 2, SQL: "DELETE FROM orders", Decision: "approve", Rule: "prod-writes"},
		recorder.ApprovalRequested{ID: "a1", Connection: "app", ConnID: 1, Seq: 2, SQL: "DELETE FROM orders"},
		recorder.ApprovalAnswered{ID: "a1", Verdict: "approve_once", By: "jane@acme.dev", Via: "prompt", Waited: 4 * time.Second},
		recorder.Statement{Connection: "app", ConnID: 1, Seq: 3, SQL: "DROP TABLE tmp", Decision: "deny", Rule: "no-ddl"},
	} {
		if err := s.Record(ev); err != nil {
			t.Fatal(err)
		}
		if cw != nil && i == 3 {
			cw.WriteOutput([]byte("asking for approval\r\n"))
		}
	}
	if err := s.Close(0); err != nil {
		t.Fatal(err)
	}
	return s.ID()
}

// runCLI runs guardrun with args and returns the exit code, stdout, stderr.
func runCLI(t *testing.T, f *Factory, args ...string) (int, string, string) {
	t.Helper()
	out, errOut := &strings.Builder{}, &strings.Builder{}
	f.IO.Out, f.IO.ErrOut = out, errOut
	code := run(context.Background(), f, args)
	return code, out.String(), errOut.String()
}

// flipLine changes the SQL of the line holding old, keeping its hash.
func flipLine(t *testing.T, st *recorder.Store, id, old, new string) int {
	t.Helper()
	path := filepath.Join(st.Dir(), id, recorder.EventsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		if strings.Contains(l, old) {
			lines[i] = strings.Replace(l, old, new, 1)
			if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			return i + 1
		}
	}
	t.Fatalf("no line holds %q", old)
	return 0
}

func TestSessionsListAndVerify(t *testing.T) {
	f, st, agent, connect := sessionsFactory(t)
	code, out, errOut := runCLI(t, f, "sessions", "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, errOut)
	}
	for _, want := range []string{"ID", "STATE", recorder.ShortID(agent), recorder.ShortID(connect), "jane@acme.dev", "claude", "connect", "sealed ✓"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	// Newest first; STMTS DENIED APPROVED MASKED = 3 1 1 3.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], connect[:8]) || !strings.Contains(lines[1], "3       1         1       3") {
		t.Fatalf("list:\n%s", out)
	}

	if code, out, _ := runCLI(t, f, "sessions", "verify", agent[:12]); code != 0 || !strings.Contains(out, "sealed ✓ · signed by device key") {
		t.Fatalf("verify: %d %s", code, out)
	}

	line := flipLine(t, st, agent, "DROP TABLE tmp", "DROP TABLE tmq")
	code, _, errOut = runCLI(t, f, "sessions", "verify", agent[:12])
	want := "guardrun: error: session " + shortIDs([]string{agent, connect})[agent] + " does not verify: events.jsonl line " + strconv.Itoa(line) + " was changed after it was written\n" +
		"guardrun: hint: compare with an exported bundle or the team's evidence store\n"
	if code != 1 || errOut != want {
		t.Fatalf("verify tampered: %d\n%s\nwant\n%s", code, errOut, want)
	}
	code, out, _ = runCLI(t, f, "sessions", "list")
	if code != 0 || !strings.Contains(out, "TAMPERED ✗ line "+strconv.Itoa(line)) {
		t.Fatalf("list after tampering:\n%s", out)
	}
	if code, _, _ := runCLI(t, f, "sessions", "verify", "--all"); code != 1 {
		t.Fatal("verify --all passes with a tampered session")
	}
	if code, out, _ := runCLI(t, f, "sessions", "verify", connect); code != 0 || !strings.Contains(out, "sealed") {
		t.Fatalf("verify the intact session: %d %s", code, out)
	}

	code, out, _ = runCLI(t, f, "sessions", "list", "--output", "json")
	var list []recorder.Summary
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].State != recorder.StateTampered || list[1].State != recorder.StateSealed {
		t.Fatalf("list json: %d %s", code, out)
	}
}

func TestSessionsShow(t *testing.T) {
	f, _, agent, _ := sessionsFactory(t)
	code, out, errOut := runCLI(t, f, "sessions", "show", agent[:10])
	if code != 0 {
		t.Fatalf("show: %s", errOut)
	}
	for _, want := range []string{
		"who          jane@acme.dev (local identity, not verified)",
		"statements   3 · 1 denied · 1 approved · 3 values masked",
		"app=> SELECT id, email FROM users   allow · 3 rows · 3 masked (email)",
		"app=> DELETE FROM orders   approved",
		"↳ approved by jane@acme.dev via prompt (4.0s)",
		"app=> DROP TABLE tmp   deny · rule no-ddl",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI(t, f, "sessions", "show", "zzzzzzzz"); code != 1 || !strings.Contains(errOut, "guardrun: hint: guardrun sessions list") {
		t.Fatalf("show missing: %d %s", code, errOut)
	}
}

func TestSessionsExportAndVerifyBundle(t *testing.T) {
	f, _, agent, _ := sessionsFactory(t)
	bundle := filepath.Join(t.TempDir(), "evidence.tar.gz")
	code, _, errOut := runCLI(t, f, "sessions", "export", agent[:12], "-o", bundle)
	if code != 0 || !strings.Contains(errOut, "guardrun sessions verify --bundle") {
		t.Fatalf("export: %d %s", code, errOut)
	}
	if fi, err := os.Stat(bundle); err != nil || fi.Size() == 0 {
		t.Fatal("no bundle written")
	}
	code, out, errOut := runCLI(t, f, "sessions", "verify", "--bundle", bundle)
	if code != 0 || !strings.Contains(out, "sealed ✓") || !strings.Contains(out, "signing key") {
		t.Fatalf("verify --bundle: %d %s %s", code, out, errOut)
	}
	// A bundle that is not one.
	os.WriteFile(bundle, []byte("hello"), 0o600)
	if code, _, errOut := runCLI(t, f, "sessions", "verify", "--bundle", bundle); code != 1 || !strings.Contains(errOut, "hint:") {
		t.Fatalf("verify --bundle garbage: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, f, "sessions", "export", agent[:12]); code != 1 || !strings.Contains(errOut, "-o session-") {
		t.Fatalf("export without -o: %d %s", code, errOut)
	}
}

func TestSessionsPrune(t *testing.T) {
	f, st, agent, _ := sessionsFactory(t)
	old, err := recorder.OpenStore(st.Dir(), recorder.StoreOptions{Now: func() time.Time { return time.Now().Add(-45 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ancient := recordTestSession(t, old, "codex", false)
	if code, _, errOut := runCLI(t, f, "sessions", "prune"); code != 1 || !strings.Contains(errOut, "--older-than 30d") {
		t.Fatalf("prune without an age: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, f, "sessions", "prune", "--older-than", "30d")
	if code != 0 || out != "removed "+ancient+"\n" {
		t.Fatalf("prune: %d %q %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, f, "sessions", "verify", "--all"); code != 0 || !strings.Contains(out, "1 sessions pruned") || !strings.Contains(out, agent[:8]) {
		t.Fatalf("verify --all after prune: %d %s", code, out)
	}
}

func TestReplayPrintsTheTimelineWithoutATerminal(t *testing.T) {
	f, st, agent, connect := sessionsFactory(t)
	code, out, errOut := runCLI(t, f, "replay", connect[:12])
	if code != 0 || !strings.Contains(out, "app=> SELECT id, email FROM users   allow · 3 rows · 3 masked (email)") {
		t.Fatalf("replay: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, f, "replay", agent[:12], "--output", "json")
	var doc struct {
		Verified bool                `json:"verified"`
		Timeline []tui.TimelineEntry `json:"timeline"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !doc.Verified || len(doc.Timeline) < 5 {
		t.Fatalf("replay json: %d %s", code, out)
	}

	line := flipLine(t, st, agent, "DROP TABLE tmp", "DROP TABLE tmq")
	code, _, errOut = runCLI(t, f, "replay", agent[:12])
	if code != 1 || !strings.Contains(errOut, "does not verify: events.jsonl line "+strconv.Itoa(line)) || !strings.Contains(errOut, "--force") {
		t.Fatalf("replay tampered: %d %s", code, errOut)
	}
	code, out, errOut = runCLI(t, f, "replay", agent[:12], "--force")
	if code != 0 || !strings.Contains(out, "✗ TAMPERED") || !strings.Contains(errOut, "warning") {
		t.Fatalf("replay --force: %d %s %s", code, out, errOut)
	}
}

// On a terminal, replay starts the player (here a stand-in that checks it
// got the session and quits).
func TestReplayPlaysOnATerminal(t *testing.T) {
	f, _, agent, _ := sessionsFactory(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var played *tui.ReplayModel
	opts := &replayOptions{
		IO: &IOStreams{In: tty, Out: &strings.Builder{}, ErrOut: tty}, Config: f.Config, Paths: f.Paths,
		Getenv: func(string) string { return "" }, Loc: time.UTC, ID: agent, Speed: 2, IdleLimit: time.Second,
		Play: func(m *tui.ReplayModel, in io.Reader, out io.Writer) error {
			played = m
			if out != tty {
				return errors.New("the player does not draw on the terminal")
			}
			return nil
		},
	}
	if err := replayRun(opts); err != nil {
		t.Fatal(err)
	}
	if played == nil {
		t.Fatal("no player on a terminal")
	}
	if _, total := played.Position(); total <= 0 {
		t.Fatal("player has nothing to play")
	}
}
