package tui

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"go.uber.org/goleak"

	"github.com/guardrun/guardrun/policy"
)

func approvalsRequests() []policy.ApprovalRequest {
	reqs := sampleRequests()
	reqs[1].Session, reqs[1].Agent = "01jd3m2x", "connect"
	return reqs
}

func TestApprovalsGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		w, h int
		reqs []policy.ApprovalRequest
		keys []string
	}{
		{"empty_80x24", 80, 24, nil, nil},
		{"two_80x24", 80, 24, approvalsRequests(), nil},
		{"two_second_80x24", 80, 24, approvalsRequests(), []string{"down"}},
		{"two_120x40", 120, 40, approvalsRequests(), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m tea.Model = NewApprovals(PromptOptions{Now: t0, Width: c.w, Height: c.h, NoTick: true})
			m, _ = m.Update(PendingMsg(c.reqs))
			for _, k := range c.keys {
				m, _ = m.Update(keyMsg(k))
			}
			v := m.View()
			checkFrame(t, v, c.w, c.h)
			golden(t, "approvals_"+c.name, v)
		})
	}
}

func TestApprovalsKeyFlows(t *testing.T) {
	rec := &recordingAnswers{}
	var m tea.Model = NewApprovals(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer})
	m, _ = m.Update(PendingMsg(approvalsRequests()))
	m = press(m, "down", "s")
	if len(rec.got) != 1 || rec.got[0].id != "r2" || rec.got[0].a.Verdict != policy.VerdictApproveSession || rec.got[0].a.Via != "approvals" {
		t.Fatalf("answers %+v, want r2 approve_session via approvals", rec.got)
	}
	// q inside the note is text, not quit.
	m = press(m, "m", "q", "enter")
	if len(rec.got) != 2 || rec.got[1].id != "r1" || rec.got[1].a != (policy.Answer{Verdict: policy.VerdictDeny, By: "jane@acme.dev", Via: "approvals", Message: "q"}) {
		t.Fatalf("answers %+v", rec.got)
	}
	_, cmd := m.Update(keyMsg("q"))
	if cmd == nil || cmd() != tea.Quit() {
		t.Fatal("q does not quit")
	}
}

func TestApprovalsLosesTheRace(t *testing.T) {
	rec := &recordingAnswers{err: fmt.Errorf("request r1: %w", ErrAlreadyAnswered)}
	var m tea.Model = NewApprovals(PromptOptions{Now: t0, Width: 80, Height: 24, NoTick: true, Answer: rec.answer})
	m, _ = m.Update(PendingMsg(approvalsRequests()[:1]))
	m = press(m, "a")
	if v := m.View(); !strings.Contains(v, "already answered") {
		t.Fatalf("want already answered:\n%s", v)
	}
}

func TestPrompterGolden(t *testing.T) {
	status := "app  postgres → 127.0.0.1:54012 · 12 statements · 0 held"
	var m tea.Model = newPrompterModel(PromptOptions{Now: t0, NoTick: true})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m, _ = m.Update(tickMsg{t: t0, status: status})
	golden(t, "prompter_idle_80x24", m.View())
	m, _ = m.Update(PendingMsg(sampleRequests()[:1]))
	golden(t, "prompter_held_80x24", m.View())
	// Keys do nothing while idle, answer while held.
	rec := &recordingAnswers{}
	var idle tea.Model = newPrompterModel(PromptOptions{Now: t0, NoTick: true, Answer: rec.answer})
	idle = press(idle, "a")
	idle, _ = idle.Update(PendingMsg(sampleRequests()[:1]))
	idle = press(idle, "d")
	if len(rec.got) != 1 || rec.got[0].a.Verdict != policy.VerdictDeny {
		t.Fatalf("answers %+v", rec.got)
	}
	if !strings.Contains(idle.View(), "") || strings.Contains(idle.View(), promptTitle) {
		t.Fatalf("after the answer the prompter is idle again:\n%s", idle.View())
	}
}

// TestRunApprovalsOnATerminal drives the real program on a PTY: a key
// answers, ctx ends it, the terminal is restored.
func TestRunApprovalsOnATerminal(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/guardrun/guardrun/tui.newPTYPair.func1"), goleak.IgnoreAnyFunction("os/signal.signal_recv"))
	p := newPTYPair(t, 100, 30)
	before := termios(t, p.tty)
	q := newFakeQueue()
	got := make(chan string, 4)
	q.onAnswer = func(id string, a policy.Answer) { got <- id + " " + string(a.Verdict) + " " + a.Via }
	q.add(testRequest("r1", "DELETE FROM public.orders", time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunApprovalsWith(ctx, ApprovalsOptions{In: p.tty, Out: p.tty, Queue: q, NoColor: true})
	}()
	p.waitFor(t, 0, "DELETE FROM public.orders")
	if _, err := p.master.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != "r1 approve_once approvals" {
			t.Fatalf("queue got %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer reached the queue")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunApprovals did not return when ctx ended")
	}
	if after := termios(t, p.tty); !reflect.DeepEqual(after, before) {
		t.Fatal("terminal not restored")
	}
}

// TestRunPrompterOnATerminal: the status line is drawn and refreshed, a
// held request is answered, Ctrl-C returns ErrInterrupted.
func TestRunPrompterOnATerminal(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/guardrun/guardrun/tui.newPTYPair.func1"), goleak.IgnoreAnyFunction("os/signal.signal_recv"))
	p := newPTYPair(t, 100, 30)
	q := newFakeQueue()
	got := make(chan string, 4)
	q.onAnswer = func(id string, a policy.Answer) { got <- id + " " + string(a.Verdict) }
	n := 0
	status := func() string { n++; return fmt.Sprintf("status tick %d", n) }
	log := make(chan string, 1)
	log <- "12:04:11  SELECT 1  allow"
	done := make(chan error, 1)
	go func() {
		done <- RunPrompter(context.Background(), PrompterOptions{In: p.tty, Out: p.tty, Queue: q, Status: status, Log: log, NoColor: true})
	}()
	off := p.waitFor(t, 0, "status tick 2")
	p.waitFor(t, 0, "12:04:11  SELECT 1  allow")
	q.add(testRequest("r1", "DROP TABLE tmp", time.Minute))
	p.waitFor(t, off, "DROP TABLE tmp")
	if _, err := p.master.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != "r1 deny" {
			t.Fatalf("queue got %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer reached the queue")
	}
	if _, err := p.master.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != ErrInterrupted {
			t.Fatalf("RunPrompter = %v, want ErrInterrupted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-C did not end RunPrompter")
	}
}
