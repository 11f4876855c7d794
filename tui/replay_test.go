package tui

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/guardrun/guardrun/recorder"
)

// stepClock is a clock that moves by step at every reading. The record's
// writer goroutine reads it too.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *stepClock) wait(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var replayEpoch = time.Date(2026, 3, 4, 11, 58, 0, 0, time.UTC)

// recordAgentSession writes a session with a terminal: the agent prints,
// runs a SELECT, has a DELETE held and approved, and a DROP denied.
func recordAgentSession(t *testing.T, st *recorder.Store, clock *stepClock) string {
	t.Helper()
	s, err := st.Create(recorder.Start{Identity: recorder.Identity{Email: "jane@acme.dev", Method: "local"}, Command: []string{"claude"}, Agent: "claude"})
	if err != nil {
		t.Fatal(err)
	}
	cw := s.Cast(40, 8)
	// Sync after each event so checkpoints fall at the same lines every run.
	rec := func(ev recorder.Event) {
		if err := s.Record(ev); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	rec(recorder.TunnelOpen{Connection: "app", ConnType: "postgres", Listen: "127.0.0.1:54012", Upstream: "db:5432/app"})
	rec(recorder.ConnOpen{Connection: "app", ConnID: 1, Application: "node-postgres", Database: "app"})
	cw.WriteOutput([]byte("\x1b[1m> claude\x1b[0m\r\nLooking at the users table\r\n"))
	clock.wait(3 * time.Second)
	rec(recorder.Statement{Connection: "app", ConnID: 1, Seq: 1, SQL: "SELECT id, email FROM users LIMIT 10", Decision: "allow", Rule: "default"})
	rec(recorder.Result{Connection: "app", ConnID: 1, Seq: 1, Tag: "SELECT 10", Rows: 10, Duration: 3 * time.Millisecond, Masked: map[string]int{"email": 10}})
	cw.WriteOutput([]byte("Found 10 users\r\n"))
	clock.wait(40 * time.Second) // a long think: --idle-limit cuts it
	rec(recorder.Statement{Connection: "app", ConnID: 1, Seq: 2, SQL: "DELETE FROM orders\n  WHERE created_at < now() - interval '30 days'", Decision: "approve", Rule: "prod-writes", Reasons: []string{"DELETE on the app connection needs approval"}})
	rec(recorder.ApprovalRequested{ID: "a1", Connection: "app", ConnID: 1, Seq: 2, SQL: "DELETE FROM orders", Rule: "prod-writes"})
	clock.wait(6 * time.Second)
	rec(recorder.ApprovalAnswered{ID: "a1", Verdict: "approve_once", By: "jane@acme.dev", Via: "prompt", Waited: 6 * time.Second})
	rec(recorder.Result{Connection: "app", ConnID: 1, Seq: 2, Tag: "DELETE 42", Rows: 42, Duration: 12 * time.Millisecond})
	cw.WriteOutput([]byte("Deleted 42 old orders\r\n"))
	clock.wait(2 * time.Second)
	rec(recorder.Statement{Connection: "app", ConnID: 1, Seq: 3, SQL: "DROP TABLE tmp", Decision: "deny", Rule: "no-ddl", Reasons: []string{"DDL is not allowed"}})
	cw.WriteOutput([]byte("\x1b[31mdenied: DROP TABLE tmp\x1b[0m\r\n$ "))
	clock.wait(time.Second)
	if err := s.Close(0); err != nil {
		t.Fatal(err)
	}
	return s.ID()
}

// recordConnectSession writes a session without a terminal.
func recordConnectSession(t *testing.T, st *recorder.Store, clock *stepClock) string {
	t.Helper()
	s, err := st.Create(recorder.Start{Identity: recorder.Identity{Email: "jane@acme.dev"}, Command: []string{"connect", "app"}, Agent: "connect"})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(recorder.ConnOpen{Connection: "app", ConnID: 1, Application: "psql", Database: "app"})
	clock.wait(2 * time.Second)
	s.Record(recorder.Statement{Connection: "app", ConnID: 1, Seq: 1, SQL: "SELECT id, email FROM users LIMIT 10", Decision: "allow"})
	s.Record(recorder.Result{Connection: "app", ConnID: 1, Seq: 1, Tag: "SELECT 10", Rows: 10, Duration: 3 * time.Millisecond, Masked: map[string]int{"email": 10}})
	clock.wait(19 * time.Second)
	s.Record(recorder.Statement{Connection: "app", ConnID: 1, Seq: 2, SQL: "UPDATE users SET plan = 'pro'", Decision: "deny", Rule: "no-where", Reasons: []string{"UPDATE without WHERE"}})
	s.Record(recorder.Result{Connection: "app", ConnID: 1, Seq: 2, SQLState: "42501"})
	if err := s.Close(0); err != nil {
		t.Fatal(err)
	}
	return s.ID()
}

func replayStore(t *testing.T) (*recorder.Store, *stepClock) {
	// The clock moves only when the test says: the writer's own readings
	// (on its timer) must not change what the record says.
	clock := &stepClock{t: replayEpoch}
	st, err := recorder.OpenStore(t.TempDir(), recorder.StoreOptions{Now: clock.now, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return st, clock
}

func loadReplay(t *testing.T, st *recorder.Store, id string, opts ReplayOptions) *ReplayModel {
	t.Helper()
	rep, err := st.Verify(id)
	if err != nil {
		t.Fatal(err)
	}
	data, err := LoadReplay(st, id, rep)
	if err != nil {
		t.Fatal(err)
	}
	m := NewReplay(data, opts)
	t.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 16})
	return m
}

func goldenReplay(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "replay", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Fatalf("view differs from %s:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func replayPress(m *ReplayModel, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "left":
			msg = tea.KeyMsg{Type: tea.KeyLeft}
		case "right":
			msg = tea.KeyMsg{Type: tea.KeyRight}
		case " ":
			msg = tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd = m.Update(msg)
	}
	return cmd
}

func TestReplayViews(t *testing.T) {
	st, clock := replayStore(t)
	id := recordAgentSession(t, st, clock)
	m := loadReplay(t, st, id, ReplayOptions{Paused: true})
	goldenReplay(t, "agent_start", m.View())

	replayPress(m, "n") // the held DELETE
	goldenReplay(t, "agent_first_decision", m.View())

	replayPress(m, "G")
	goldenReplay(t, "agent_end", m.View())
}

func TestReplayTranscriptWithoutTerminal(t *testing.T) {
	st, clock := replayStore(t)
	id := recordConnectSession(t, st, clock)
	m := loadReplay(t, st, id, ReplayOptions{Paused: true})
	replayPress(m, "G")
	goldenReplay(t, "connect_end", m.View())
}

func TestReplayShowsTheBreak(t *testing.T) {
	st, clock := replayStore(t)
	id := recordAgentSession(t, st, clock)
	path := filepath.Join(st.Dir(), id, recorder.EventsFile)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), "DROP TABLE tmp", "SELECT 1      ", 1)), 0o600)
	m := loadReplay(t, st, id, ReplayOptions{Paused: true})
	replayPress(m, "G")
	goldenReplay(t, "agent_tampered", m.View())
}

func TestReplayKeysAndClock(t *testing.T) {
	st, clock := replayStore(t)
	id := recordAgentSession(t, st, clock)
	m := loadReplay(t, st, id, ReplayOptions{IdleLimit: 2 * time.Second})
	_, total := m.Position()
	// Gaps of 40 s and 6 s are cut to 2 s: the whole session is short.
	if total > 12*time.Second || total < 4*time.Second {
		t.Fatalf("total %v with --idle-limit 2s", total)
	}
	if m.Init() == nil {
		t.Fatal("playing model does not tick")
	}
	t0 := time.Unix(1000, 0)
	tick := func(d time.Duration) {
		t0 = t0.Add(d)
		m.Update(replayTickMsg(t0))
	}
	tick(0)
	tick(time.Second)
	if pos, _ := m.Position(); pos != time.Second {
		t.Fatalf("after 1s at 1x: %v", pos)
	}
	replayPress(m, "+") // 2x
	tick(time.Second)
	if pos, _ := m.Position(); pos != 3*time.Second {
		t.Fatalf("after 1s at 2x: %v", pos)
	}
	replayPress(m, "-", "-") // 0.5x
	tick(2 * time.Second)
	if pos, _ := m.Position(); pos != 4*time.Second {
		t.Fatalf("after 2s at 0.5x: %v", pos)
	}
	if cmd := replayPress(m, " "); cmd != nil {
		t.Fatal("pause still ticks")
	}
	tick(10 * time.Second)
	if pos, _ := m.Position(); pos != 4*time.Second {
		t.Fatalf("paused, yet moved to %v", pos)
	}
	replayPress(m, "left")
	if pos, _ := m.Position(); pos != 0 {
		t.Fatalf("← from 4s: %v", pos)
	}
	replayPress(m, "right")
	if pos, _ := m.Position(); pos != 5*time.Second {
		t.Fatalf("→ from 0: %v", pos)
	}
	// n and N walk the decisions: held DELETE, its approval, denied DROP.
	replayPress(m, "g")
	var stops []string
	for range 4 {
		replayPress(m, "n")
		stops = append(stops, m.data.Timeline[m.current()].Decision)
	}
	if got := strings.Join(stops, " "); got != "approved approved deny deny" {
		t.Fatalf("n stops: %s", got)
	}
	replayPress(m, "N")
	if got := m.data.Timeline[m.current()].Kind; got != EntryApproval {
		t.Fatalf("N from the DROP went to %s", got)
	}
	// Playing to the end stops the clock; space then starts over.
	replayPress(m, " ")
	tick(0)
	tick(time.Hour)
	if pos, total := m.Position(); pos != total || m.playing {
		t.Fatalf("at the end: %v/%v playing %v", pos, total, m.playing)
	}
	if cmd := replayPress(m, " "); cmd == nil {
		t.Fatal("space at the end does not restart")
	}
	if pos, _ := m.Position(); pos != 0 {
		t.Fatalf("restart at %v", pos)
	}
	if cmd := replayPress(m, "q"); cmd == nil || cmd() != tea.Quit() {
		t.Fatal("q does not quit")
	}
	if m.View() != "" {
		t.Fatal("view after quit is not empty")
	}
}
