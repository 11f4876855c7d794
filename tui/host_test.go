package tui

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/term"

	"github.com/guardrun/guardrun/policy"
)

// ptyPair is a terminal for RunAgent whose other side the test holds: tty
// is what RunAgent gets as In and Out, everything it draws is collected from
// the master side.
type ptyPair struct {
	master, tty *os.File
	mu          sync.Mutex
	buf         bytes.Buffer
	changed     chan struct{}
	done        chan struct{}
}

func newPTYPair(t testing.TB, cols, rows int) *ptyPair {
	t.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := pty.Setsize(master, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		t.Fatal(err)
	}
	p := &ptyPair{master: master, tty: tty, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		b := make([]byte, 32*1024)
		for {
			n, err := master.Read(b)
			if n > 0 {
				p.mu.Lock()
				p.buf.Write(b[:n])
				p.mu.Unlock()
				select {
				case p.changed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = tty.Close()
		_ = master.Close()
		<-p.done
	})
	return p
}

func (p *ptyPair) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// waitFor waits until the output after offset contains s, and returns where
// it ends.
func (p *ptyPair) waitFor(t testing.TB, offset int, s string) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		out := p.output()
		if offset <= len(out) {
			if i := strings.Index(out[offset:], s); i >= 0 {
				return offset + i + len(s)
			}
		}
		select {
		case <-p.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %q; output: %q", s, out[min(offset, len(out)):])
		}
	}
}

// termState is the terminal's mode (raw or cooked, echo, ...), comparable
// with reflect.DeepEqual.
func termios(t testing.TB, f *os.File) *term.State {
	t.Helper()
	st, err := term.GetState(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRunAgentExitCodes(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		code int
	}{
		{"exit status", []string{"sh", "-c", "exit 5"}, 5},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"crash", []string{"sh", "-c", "kill -SEGV $$"}, 128 + 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/guardrun/guardrun/tui.newPTYPair.func1"), goleak.IgnoreAnyFunction("os/signal.signal_recv"))
			p := newPTYPair(t, 80, 24)
			before := termios(t, p.tty)
			code, err := RunAgent(context.Background(), HostOptions{Argv: c.argv, In: p.tty, Out: p.tty})
			if err != nil || code != c.code {
				t.Fatalf("RunAgent = %d, %v; want %d", code, err, c.code)
			}
			if after := termios(t, p.tty); !reflect.DeepEqual(after, before) {
				t.Fatalf("terminal not restored:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestRunAgentNotFound(t *testing.T) {
	p := newPTYPair(t, 80, 24)
	code, err := RunAgent(context.Background(), HostOptions{Argv: []string{"guardrun-no-such-agent"}, In: p.tty, Out: p.tty})
	if err == nil || code != 127 {
		t.Fatalf("RunAgent = %d, %v; want 127 and an error", code, err)
	}
}

// TestRunAgentContextEnds: the agent gets SIGTERM and its own exit code
// comes back; one that ignores SIGTERM is killed after the grace period.
func TestRunAgentContextEnds(t *testing.T) {
	t.Run("agent exits on SIGTERM", func(t *testing.T) {
		p := newPTYPair(t, 80, 24)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			p.waitFor(t, 0, "ready")
			cancel()
		}()
		code, err := RunAgent(ctx, HostOptions{Argv: []string{"sh", "-c", "trap 'echo bye; exit 9' TERM; echo ready; while :; do sleep 0.05; done"}, In: p.tty, Out: p.tty})
		if err != nil || code != 9 {
			t.Fatalf("RunAgent = %d, %v; want 9 from the agent's TERM trap", code, err)
		}
		p.waitFor(t, 0, "bye")
	})
	t.Run("agent ignores SIGTERM", func(t *testing.T) {
		p := newPTYPair(t, 80, 24)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			p.waitFor(t, 0, "ready")
			cancel()
		}()
		start := time.Now()
		code, err := RunAgent(ctx, HostOptions{Argv: []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, In: p.tty, Out: p.tty, Grace: 300 * time.Millisecond})
		if err != nil || code != 128+9 {
			t.Fatalf("RunAgent = %d, %v; want 137 (SIGKILL)", code, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

// TestRunAgentWithoutTTY: pipes in and out, no PTY, no prompt; stdio and the
// exit code pass through.
func TestRunAgentWithoutTTY(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer outR.Close()
	q := newFakeQueue()
	q.add(testRequest("r1", "DELETE FROM t", time.Minute))
	go func() {
		_, _ = io.WriteString(inW, "hi\n")
		_ = inW.Close()
	}()
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&got, outR)
		close(copied)
	}()
	code, err := RunAgent(context.Background(), HostOptions{
		Argv: []string{"sh", "-c", `read x; echo "got $x"; test -t 0 && echo tty; exit 4`},
		In:   inR, Out: outW, Err: outW, Queue: q,
	})
	_ = outW.Close()
	<-copied
	if err != nil || code != 4 {
		t.Fatalf("RunAgent = %d, %v; want 4", code, err)
	}
	if got.String() != "got hi\n" {
		t.Fatalf("output %q, want %q (no prompt, no tty)", got.String(), "got hi\n")
	}
}

// TestRunAgentCast: everything the agent writes reaches the cast, the size
// first.
func TestRunAgentCast(t *testing.T) {
	p := newPTYPair(t, 90, 20)
	c := &castRecorder{}
	code, err := RunAgent(context.Background(), HostOptions{Argv: []string{"sh", "-c", "printf 'one\\ntwo\\n'"}, In: p.tty, Out: p.tty, Cast: c})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.String() != "one\r\ntwo\r\n" {
		t.Fatalf("cast output %q", c.out.String())
	}
	if len(c.sizes) == 0 || c.sizes[0] != [2]int{90, 20} {
		t.Fatalf("cast sizes %v", c.sizes)
	}
}

type castRecorder struct {
	mu    sync.Mutex
	out   bytes.Buffer
	sizes [][2]int
	marks []string
}

func (c *castRecorder) WriteOutput(p []byte) { c.mu.Lock(); c.out.Write(p); c.mu.Unlock() }
func (c *castRecorder) WriteResize(cols, rows int) {
	c.mu.Lock()
	c.sizes = append(c.sizes, [2]int{cols, rows})
	c.mu.Unlock()
}
func (c *castRecorder) WriteMarker(label string) {
	c.mu.Lock()
	c.marks = append(c.marks, label)
	c.mu.Unlock()
}

// TestPromptKeepsDrainingTheAgent: an agent that writes a lot while a
// prompt is up is not blocked (the statement waiting for approval would
// deadlock otherwise), and its output is recorded.
func TestPromptKeepsDrainingTheAgent(t *testing.T) {
	p := newPTYPair(t, 80, 24)
	q := newFakeQueue()
	c := &castRecorder{}
	q.add(testRequest("r1", "DELETE FROM t", time.Minute))
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = RunAgent(context.Background(), HostOptions{
			Argv: []string{"sh", "-c", "sleep 0.3; i=0; while [ $i -lt 3000 ]; do echo \"filler line $i of the agent's output\"; i=$((i+1)); done; echo finished"},
			In:   p.tty, Out: p.tty, Queue: q, Cast: c, NoColor: true,
		})
	}()
	p.waitFor(t, 0, promptTitle)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent blocked while the prompt was up")
	}
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !strings.Contains(c.out.String(), "filler line 2999") || !strings.Contains(c.out.String(), "finished") {
		t.Fatal("output written during the prompt is missing from the cast")
	}
}

// BenchmarkRunAgentTrue is RunAgent's cost around `true` on a terminal;
// compare with BenchmarkExecTrue.
func BenchmarkRunAgentTrue(b *testing.B) {
	p := newPTYPair(b, 80, 24)
	for b.Loop() {
		if code, err := RunAgent(context.Background(), HostOptions{Argv: []string{"true"}, In: p.tty, Out: p.tty}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

func BenchmarkExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPromptLatency is the time from a request appearing on the queue
// to the prompt's title being written to the terminal.
func BenchmarkPromptLatency(b *testing.B) {
	p := newPTYPair(b, 100, 30)
	q := newFakeQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = RunAgent(ctx, HostOptions{Argv: []string{"sh", "-c", "echo ready; exec sleep 600"}, In: p.tty, Out: p.tty, Queue: q, NoColor: true, Grace: time.Second})
	}()
	off := p.waitFor(b, 0, "ready")
	var total time.Duration
	i := 0
	for b.Loop() {
		i++
		id := "r" + strings.Repeat("x", i%5) + time.Now().Format("150405.000000000")
		start := time.Now()
		q.add(testRequest(id, "DELETE FROM public.orders", time.Minute))
		off = p.waitFor(b, off, promptTitle)
		total += time.Since(start)
		if err := q.Answer(ctx, id, policy.Answer{Verdict: policy.VerdictDeny, By: "bench"}); err != nil {
			b.Fatal(err)
		}
		// The prompt is gone when the agent's screen is drawn again.
		off = p.waitFor(b, off, "\x1b[?1049l")
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(i)/1000, "ms-to-prompt")
	cancel()
	<-done
}

// panickyCast panics on the agent's first output.
type panickyCast struct{ castRecorder }

func (c *panickyCast) WriteOutput([]byte) { panic("cast broke") }

// TestRunAgentPanicRestoresTheTerminal: a panic (here in the cast, on the
// output goroutine) reaches the caller, and the terminal is restored first.
func TestRunAgentPanicRestoresTheTerminal(t *testing.T) {
	p := newPTYPair(t, 80, 24)
	before := termios(t, p.tty)
	func() {
		defer func() {
			if r := recover(); r != "cast broke" {
				t.Fatalf("recovered %v, want the cast's panic", r)
			}
		}()
		_, _ = RunAgent(context.Background(), HostOptions{Argv: []string{"sh", "-c", "printf '\\033[?1049h\\033[?2004hfull screen'; sleep 5"}, In: p.tty, Out: p.tty, Cast: &panickyCast{}})
		t.Fatal("RunAgent returned instead of panicking")
	}()
	if after := termios(t, p.tty); !reflect.DeepEqual(after, before) {
		t.Fatal("terminal left in raw mode after a panic")
	}
}

// TestPromptOnAPTY: the announcement (bell, OSC 9), the cast markers, keys
// typed during the arm delay reaching the agent, the answering key not
// reaching it, and the agent's output during the prompt drawn afterwards.
func TestPromptOnAPTY(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/guardrun/guardrun/tui.newPTYPair.func1"), goleak.IgnoreAnyFunction("os/signal.signal_recv"))
	p := newPTYPair(t, 100, 30)
	q := newFakeQueue()
	c := &castRecorder{}
	answers := make(chan string, 4)
	q.onAnswer = func(id string, a policy.Answer) { answers <- id + " " + string(a.Verdict) + " " + a.By }
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = RunAgent(context.Background(), HostOptions{
			Argv: []string{"sh", "-c", `echo ready; read x; echo "early $x"; read y; echo "got $y"; exit 0`},
			In:   p.tty, Out: p.tty, Queue: q, Cast: c, NoColor: true, ArmDelay: time.Second, User: "jane@acme.dev", Who: "claude",
		})
	}()
	off := p.waitFor(t, 0, "ready")
	r := testRequest("r1", "DELETE FROM t", time.Minute)
	r.Agent = ""
	q.add(r)
	off = p.waitFor(t, off, "\a\x1b]9;guardrun: approval needed on app: DELETE FROM t\x07")
	off = p.waitFor(t, off, promptTitle)
	if !strings.Contains(p.output(), "· claude ·") {
		t.Error("the prompt does not name the agent from HostOptions.Who")
	}
	// Typed right after the prompt appeared: meant for the agent.
	if _, err := p.master.Write([]byte("typed\r")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if _, err := p.master.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answers:
		if a != "r1 approve_once jane@acme.dev" {
			t.Fatalf("queue got %q", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	off = p.waitFor(t, off, "early typed")
	if _, err := p.master.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, off, "got hello")
	<-done
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.Join(c.marks, "|") != "approval r1 needed: DELETE FROM t|approval r1: approve_once by jane@acme.dev" {
		t.Fatalf("cast markers %q", c.marks)
	}
	if strings.Contains(c.out.String(), "got ahello") {
		t.Fatal("the answering key leaked to the agent")
	}
}

// BenchmarkAgentOutput is RunAgent around an agent that prints 20000 lines
// (about 1 MB) to a 120x40 terminal: the cost of the host's output path.
func BenchmarkAgentOutput(b *testing.B) {
	p := newPTYPair(b, 120, 40)
	for b.Loop() {
		if code, err := RunAgent(context.Background(), HostOptions{Argv: []string{"sh", "-c", "seq 1 20000 | sed 's/$/ some output of the agent, with a path and more text/'"}, In: p.tty, Out: p.tty}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
	b.SetBytes(20000 * 55)
}
