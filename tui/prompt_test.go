package tui

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/guardrun/guardrun/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files of the views")

var t0 = time.Date(2026, 11, 26, 12, 1, 13, 0, time.UTC)

func sampleRequests() []policy.ApprovalRequest {
	return []policy.ApprovalRequest{
		{
			ID: "r1", Session: "01jd3k8v", Agent: "claude", Connection: "app", ConnType: "postgres", User: "jane@acme.dev",
			SQL:      "DELETE FROM public.orders\nWHERE created_at < now() - interval '30 days'",
			Summary:  []string{"writes public.orders"},
			Rule:     "prod-writes",
			Reasons:  []string{"DELETE on the app connection needs approval"},
			Shape:    "delete public.orders where",
			Asked:    t0,
			Deadline: t0.Add(114 * time.Second),
		},
		{
			ID: "r2", Session: "01jd3k8v", Agent: "claude", Connection: "app", ConnType: "postgres", User: "jane@acme.dev",
			SQL:      "UPDATE users SET plan = 'pro' -- upgrade everyone\nWHERE id IN (SELECT user_id FROM trials WHERE ends_at < now())",
			Summary:  []string{"writes public.users", "reads public.trials"},
			Rule:     "no-mass-updates",
			Reasons:  []string{"UPDATE of users", "touches more than one table"},
			Asked:    t0,
			Deadline: t0.Add(10 * time.Second),
		},
	}
}

func longRequest() policy.ApprovalRequest {
	var cols []string
	for i := range 40 {
		cols = append(cols, fmt.Sprintf("column_number_%02d", i))
	}
	return policy.ApprovalRequest{
		ID: "long", Session: "01jd3k8v", Agent: "claude", Connection: "warehouse", ConnType: "postgres",
		SQL:      "INSERT INTO archive.orders (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(cols, ", ") + " FROM public.orders WHERE created_at < '2020-01-01'",
		Summary:  []string{"writes archive.orders", "reads public.orders"},
		Rule:     "warehouse-writes",
		Reasons:  []string{"INSERT on warehouse needs approval"},
		Deadline: t0.Add(2 * time.Minute),
	}
}

func backdrop(w, h int) []string {
	lines := make([]string, h)
	for i := range lines {
		lines[i] = strings.Repeat(fmt.Sprintf("agent line %02d ", i), w/14+1)[:w]
	}
	return lines
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "prompt_"+name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
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
		t.Errorf("view differs from %s (rerun with -update if the change is intended)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func checkFrame(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Errorf("view has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if got := ansi.StringWidth(l); got > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i, got, w, l)
		}
	}
}

func TestPromptGolden(t *testing.T) {
	reqs := sampleRequests()
	cases := []struct {
		name     string
		w, h     int
		reqs     []policy.ApprovalRequest
		backdrop bool
		keys     []string
	}{
		{name: "one_80x24", w: 80, h: 24, reqs: reqs[:1]},
		{name: "two_80x24", w: 80, h: 24, reqs: reqs, backdrop: true},
		{name: "two_120x40", w: 120, h: 40, reqs: reqs, backdrop: true},
		{name: "second_80x24", w: 80, h: 24, reqs: reqs, keys: []string{"tab"}},
		{name: "note_80x24", w: 80, h: 24, reqs: reqs[:1], keys: []string{"m", "a", "r", "c", "h", "i", "v", "e"}},
		{name: "long_80x24", w: 80, h: 24, reqs: []policy.ApprovalRequest{longRequest()}},
		{name: "long_scrolled_80x24", w: 80, h: 24, reqs: []policy.ApprovalRequest{longRequest()}, keys: []string{"down", "down", "down"}},
		{name: "long_120x40", w: 120, h: 40, reqs: []policy.ApprovalRequest{longRequest()}, backdrop: true},
		{name: "tiny_40x10", w: 40, h: 10, reqs: []policy.ApprovalRequest{longRequest()}},
		{name: "micro_20x6", w: 20, h: 6, reqs: reqs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := PromptOptions{Now: t0, Width: c.w, Height: c.h, NoTick: true}
			if c.backdrop {
				opts.Backdrop = backdrop(c.w, c.h)
			}
			var m tea.Model = NewPrompt(opts, c.reqs)
			for _, k := range c.keys {
				m, _ = m.Update(keyMsg(k))
			}
			v := m.View()
			checkFrame(t, v, c.w, c.h)
			golden(t, c.name, v)
		})
	}
}

// TestPromptCountdown pins the countdown's format and its urgency.
func TestPromptCountdown(t *testing.T) {
	for _, c := range []struct {
		left   time.Duration
		want   string
		urgent bool
	}{
		{114 * time.Second, "1:54", false},
		{1500 * time.Millisecond, "0:02", true},
		{0, "timing out", true},
		{-time.Second, "timing out", true},
	} {
		got, urgent := countdown(t0.Add(c.left), t0)
		if got != c.want || urgent != c.urgent {
			t.Errorf("countdown(%v) = %q, %v; want %q, %v", c.left, got, urgent, c.want, c.urgent)
		}
	}
	var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Status: func() string { return "unused: the runner reads it" }}, sampleRequests()[:1])
	if !strings.Contains(m.View(), "1:54") {
		t.Fatal("countdown 1:54 not drawn")
	}
	m, _ = m.Update(tickMsg{t: t0.Add(60 * time.Second), status: "app: 3 statements · 1 held"})
	if !strings.Contains(m.View(), "0:54") {
		t.Fatalf("after a tick the countdown should read 0:54:\n%s", m.View())
	}
	if !strings.Contains(m.View(), "app: 3 statements · 1 held") {
		t.Fatalf("the status line is not drawn:\n%s", m.View())
	}
}

func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case " ":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// recordingAnswers counts the answers a model sends, by running its commands.
type recordingAnswers struct {
	got []struct {
		id string
		a  policy.Answer
	}
	err error
}

func (r *recordingAnswers) answer(id string, a policy.Answer) tea.Cmd {
	return func() tea.Msg {
		r.got = append(r.got, struct {
			id string
			a  policy.Answer
		}{id, a})
		return AnsweredMsg{ID: id, Answer: a, Err: r.err}
	}
}

// run executes cmd and, recursively, the commands of the messages it yields
// back into the model, ignoring ticks and blinks. It returns the model.
func run(m tea.Model, cmd tea.Cmd) tea.Model {
	for _, msg := range execCmd(cmd) {
		if _, ok := msg.(AnsweredMsg); !ok {
			continue
		}
		var next tea.Cmd
		m, next = m.Update(msg)
		m = run(m, next)
	}
	return m
}

func execCmd(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if batch, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range batch {
			out = append(out, execCmd(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

func press(m tea.Model, keys ...string) tea.Model {
	for _, k := range keys {
		var cmd tea.Cmd
		m, cmd = m.Update(keyMsg(k))
		m = run(m, cmd)
	}
	return m
}

func TestPromptKeyFlows(t *testing.T) {
	cases := []struct {
		name    string
		keys    []string
		verdict policy.Verdict
		message string
	}{
		{"approve once", []string{"a"}, policy.VerdictApproveOnce, ""},
		{"approve session", []string{"s"}, policy.VerdictApproveSession, ""},
		{"deny", []string{"d"}, policy.VerdictDeny, ""},
		{"deny with note", []string{"m", "u", "s", "e", " ", "a", "r", "c", "h", "i", "v", "e", "enter"}, policy.VerdictDeny, "use archive"},
		{"note cancelled then approve", []string{"m", "x", "esc", "a"}, policy.VerdictApproveOnce, ""},
		{"keys before the answer do nothing", []string{"x", "q", "ctrl+c", "down", "a"}, policy.VerdictApproveOnce, ""},
		{"twice is once", []string{"a", "a", "s", "d"}, policy.VerdictApproveOnce, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recordingAnswers{}
			var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer, By: "jane@acme.dev"}, sampleRequests()[:1])
			m = press(m, c.keys...)
			if len(rec.got) != 1 {
				t.Fatalf("%d answers sent, want exactly 1: %+v", len(rec.got), rec.got)
			}
			want := policy.Answer{Verdict: c.verdict, By: "jane@acme.dev", Via: "prompt", Message: c.message}
			if rec.got[0].id != "r1" || rec.got[0].a != want {
				t.Fatalf("sent %q %+v, want r1 %+v", rec.got[0].id, rec.got[0].a, want)
			}
			if m.(Prompt).Waiting() != 0 {
				t.Fatal("the answered request is still shown")
			}
		})
	}
}

func TestPromptQueueOfTwo(t *testing.T) {
	rec := &recordingAnswers{}
	reqs := sampleRequests()
	var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer}, reqs)
	if !strings.Contains(m.View(), "1 of 2") {
		t.Fatalf("want 1 of 2:\n%s", m.View())
	}
	m = press(m, "d")
	// The queue has not caught up yet: the second request is shown, alone.
	if v := m.View(); !strings.Contains(v, "UPDATE") || strings.Contains(v, "of 2") {
		t.Fatalf("after answering the first, the second should be shown alone:\n%s", v)
	}
	// A third arrives while the queue still lists the first.
	third := reqs[0]
	third.ID, third.SQL = "r3", "DROP TABLE tmp"
	var cmd tea.Cmd
	m, cmd = m.Update(PendingMsg{reqs[0], reqs[1], third})
	_ = cmd
	if v := m.View(); !strings.Contains(v, "1 of 2") || !strings.Contains(v, "UPDATE") {
		t.Fatalf("want the second as 1 of 2:\n%s", v)
	}
	m = press(m, "s", "a")
	if len(rec.got) != 3 {
		t.Fatalf("answers %+v", rec.got)
	}
	for i, w := range []struct {
		id string
		v  policy.Verdict
	}{{"r1", policy.VerdictDeny}, {"r2", policy.VerdictApproveSession}, {"r3", policy.VerdictApproveOnce}} {
		if rec.got[i].id != w.id || rec.got[i].a.Verdict != w.v {
			t.Errorf("answer %d = %s %s, want %s %s", i, rec.got[i].id, rec.got[i].a.Verdict, w.id, w.v)
		}
		if rec.got[i].a.By != "jane@acme.dev" {
			t.Errorf("By defaults to the request's user, got %q", rec.got[i].a.By)
		}
	}
}

func TestPromptAnswerRace(t *testing.T) {
	t.Run("already answered", func(t *testing.T) {
		rec := &recordingAnswers{err: fmt.Errorf("request r1: %w", ErrAlreadyAnswered)}
		var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer}, sampleRequests()[:1])
		m = press(m, "a")
		if v := m.View(); !strings.Contains(v, "already answered") {
			t.Fatalf("want already answered:\n%s", v)
		}
		m = press(m, "a")
		if len(rec.got) != 1 {
			t.Fatalf("answered %d times", len(rec.got))
		}
	})
	t.Run("answered elsewhere before the key", func(t *testing.T) {
		rec := &recordingAnswers{}
		reqs := sampleRequests()
		var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer}, reqs)
		m, _ = m.Update(keyMsg("m"))
		m, _ = m.Update(PendingMsg(reqs[1:]))
		if v := m.View(); !strings.Contains(v, "answered elsewhere") || !strings.Contains(v, "UPDATE") {
			t.Fatalf("want a notice and the next request:\n%s", v)
		}
		// The note being typed belonged to the vanished request; keys now
		// answer the one on screen.
		m = press(m, "d")
		if len(rec.got) != 1 || rec.got[0].id != "r2" {
			t.Fatalf("answers %+v", rec.got)
		}
	})
	t.Run("send failed shows the request again", func(t *testing.T) {
		rec := &recordingAnswers{err: errors.New("control socket closed")}
		var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer}, sampleRequests()[:1])
		m = press(m, "a")
		if v := m.View(); !strings.Contains(v, "could not send") || !strings.Contains(v, "DELETE") {
			t.Fatalf("want the error and the request again:\n%s", v)
		}
		rec.err = nil
		m = press(m, "a")
		if len(rec.got) != 2 {
			t.Fatalf("retry: %d answers", len(rec.got))
		}
	})
}

type answeredErr bool

func (e answeredErr) Error() string         { return "lost" }
func (e answeredErr) AlreadyAnswered() bool { return bool(e) }

func TestIsAlreadyAnswered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("r1: %w", ErrAlreadyAnswered), true},
		{fmt.Errorf("r1: %w", answeredErr(true)), true},
		{answeredErr(false), false},
		{fmt.Errorf("%w: r1", errors.New("approval request already answered")), true},
		{errors.New("control socket closed"), false},
	} {
		if got := IsAlreadyAnswered(c.err); got != c.want {
			t.Errorf("IsAlreadyAnswered(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestPromptNotifiesNewRequestsOnce(t *testing.T) {
	var announced []string
	notify := func(r policy.ApprovalRequest) tea.Cmd {
		return func() tea.Msg { announced = append(announced, r.ID); return nil }
	}
	reqs := sampleRequests()
	var m tea.Model = NewPrompt(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Notify: notify}, reqs[:1])
	execCmd(m.Init())
	m, cmd := m.Update(PendingMsg(reqs))
	execCmd(cmd)
	_, cmd = m.Update(PendingMsg(reqs))
	execCmd(cmd)
	if strings.Join(announced, ",") != "r1,r2" {
		t.Fatalf("announced %v, want r1,r2", announced)
	}
}

func TestSQLHighlight(t *testing.T) {
	st := NewStyles(nil, true)
	got := strings.Join(wrapSQL(st, "select 'it''s' as x /* c */ from t -- done", 80), "\n")
	if ansi.Strip(got) != "select 'it''s' as x /* c */ from t -- done" {
		t.Fatalf("text changed: %q", ansi.Strip(got))
	}
	if !strings.Contains(got, st.Keyword.Render("select")) || !strings.Contains(got, st.Keyword.Render("from")) {
		t.Fatalf("keywords not painted: %q", got)
	}
	if strings.Contains(got, st.Keyword.Render("as x")) || strings.Contains(got, st.Keyword.Render("t")) {
		t.Fatalf("painted too much: %q", got)
	}
	if !isKeyword("where") || isKeyword("wher") || isKeyword("orders") || isKeyword("ON_") {
		t.Fatal("isKeyword")
	}
}
