package tui

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
)

func goldenLogin(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "login_"+name+".golden")
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
		t.Errorf("view differs from %s\n--- got ---\n%q\n--- want ---\n%q", path, got, want)
	}
}

func TestLoginViewGolden(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	expires := start.Add(4*time.Minute + 52*time.Second)
	m := NewLogin(expires, start, Styles{})
	goldenLogin(t, "start", m.View())

	var tm tea.Model = m
	tm, _ = tm.Update(loginTickMsg(start.Add(4*time.Minute + 30*time.Second)))
	tm, _ = tm.Update(spinner.TickMsg{ID: m.spin.ID()})
	goldenLogin(t, "urgent", tm.View())

	tm, _ = tm.Update(loginTickMsg(expires.Add(time.Second)))
	goldenLogin(t, "expired", tm.View())
}

func TestLoginViewOutcome(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	denied := errors.New("denied")
	tm, cmd := NewLogin(now.Add(time.Minute), now, Styles{}).Update(LoginDoneMsg{Err: denied})
	if cmd == nil || cmd() != tea.Quit() {
		t.Error("done does not quit")
	}
	lm := tm.(LoginModel)
	if lm.View() != "" || lm.Err() != denied || lm.Cancelled() {
		t.Errorf("after done: view %q err %v cancelled %v", lm.View(), lm.Err(), lm.Cancelled())
	}

	tm, cmd = NewLogin(now.Add(time.Minute), now, Styles{}).Update(tea.KeyMsg{Type: tea.KeyCtrlC})
	if cmd == nil || cmd() != tea.Quit() || !tm.(LoginModel).Cancelled() {
		t.Error("ctrl+c does not cancel")
	}
	tm, _ = NewLogin(now.Add(time.Minute), now, Styles{}).Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x")})
	if tm.(LoginModel).Cancelled() {
		t.Error("x cancels")
	}
}
