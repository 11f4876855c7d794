package tui

// The rules of the terminal while guardrun hosts an agent (RunAgent):
//
//   - The agent owns the TTY. Every byte it writes goes, unchanged, to the
//     real terminal, to the session's cast and to a virtual terminal (the
//     mirror) that knows what the screen looks like; every byte the human
//     types goes to the agent, Ctrl-C included (raw mode: the agent's PTY, not
//     guardrun, turns it into SIGINT).
//   - guardrun itself writes nothing on the TTY except the approval prompt.
//     Its logs go to the injected slog.Logger (a file), never to stdout or
//     stderr while the agent runs; whatever the caller prints before or after
//     RunAgent is the caller's business.
//   - While a request waits for approval the agent's output is still read,
//     recorded and mirrored, but not drawn; the prompt takes the alternate
//     screen and, once armed, the keystrokes (keys typed in the first
//     ArmDelay still reach the agent: they were meant for it). The prompt
//     rings the bell and sends an OSC 9 notification.
//   - When nothing waits any more the prompt is erased entirely: the agent's
//     screen (main or alternate), cursor, cursor visibility and input modes
//     are drawn again from the mirror. Nothing of the prompt stays on screen
//     or in the scrollback.
//   - On every way out (the agent exits or crashes, a signal, ctx, a panic)
//     the terminal is restored: cooked mode, main screen, modes the agent
//     enabled switched off, cursor shown, colours reset.
//   - Without a TTY on both sides nothing of this happens: the agent gets
//     guardrun's own stdin, stdout and stderr, and nothing prompts.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/creack/pty"
	"github.com/muesli/cancelreader"
	"golang.org/x/term"

	"github.com/guardrun/guardrun/policy"
)

// HostOptions configure RunAgent.
type HostOptions struct {
	Argv []string // the agent and its arguments; Argv[0] is looked up in PATH
	Env  []string // the agent's whole environment; nil: guardrun's own
	Dir  string   // working directory; empty: guardrun's own

	In  *os.File // the real terminal's input; nil: os.Stdin
	Out *os.File // the real terminal's output; nil: os.Stdout
	Err *os.File // the agent's stderr when there is no TTY; nil: os.Stderr

	Cast  CastSink // the agent's terminal for the record; may be nil
	Queue Queue    // pending approvals to prompt for; may be nil

	Who     string // the agent's name as the prompt shows it ("claude")
	Session string // session id, for the prompt
	User    string // who answers at this terminal; empty: the request's User

	Logger *slog.Logger  // nil: discard
	Status func() string // optional one-line status shown in the prompt; read once a second from another goroutine

	NoColor  bool          // draw the prompt without colour
	Grace    time.Duration // SIGTERM to SIGKILL; 0: 5 s
	ArmDelay time.Duration // keys typed this soon after a prompt appears still go to the agent; 0: 250 ms, <0: none
}

// RunAgent runs the agent, on a PTY of its own when In and Out are
// terminals, and returns its exit code (128+n when signal n killed it). err
// is non-nil only when the agent could not be started or the terminal could
// not be set up; exitCode is then 127 (not found) or 126.
func RunAgent(ctx context.Context, opts HostOptions) (exitCode int, err error) {
	if len(opts.Argv) == 0 {
		return 126, errors.New("no command to run")
	}
	if opts.In == nil {
		opts.In = os.Stdin
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Err == nil {
		opts.Err = os.Stderr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.ArmDelay == 0 {
		opts.ArmDelay = 250 * time.Millisecond
	}
	if !term.IsTerminal(int(opts.In.Fd())) || !term.IsTerminal(int(opts.Out.Fd())) {
		return runPassthrough(ctx, opts)
	}
	h := &host{opts: opts, log: opts.Logger}
	return h.run(ctx)
}

func startErrCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}

// exitCodeOf turns a finished process into a shell-style exit code.
func exitCodeOf(ps *os.ProcessState) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// runPassthrough runs the agent on guardrun's own stdio: no PTY, no prompt.
func runPassthrough(ctx context.Context, opts HostOptions) (int, error) {
	cmd := exec.Command(opts.Argv[0], opts.Argv[1:]...)
	cmd.Env, cmd.Dir = opts.Env, opts.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.In, opts.Out, opts.Err
	sigs := make(chan os.Signal, 4)
	// SIGINT from a terminal reaches the agent directly (same process group);
	// guardrun only has to survive it and wait for the agent's verdict.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return startErrCode(err), fmt.Errorf("start %s: %w", opts.Argv[0], err)
	}
	opts.Logger.Debug("agent started without a terminal", "pid", cmd.Process.Pid)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var kill <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case <-waited:
			return exitCodeOf(cmd.ProcessState), nil
		case s := <-sigs:
			if s == syscall.SIGINT {
				continue
			}
			_ = cmd.Process.Signal(s)
			if kill == nil {
				kill = time.After(opts.Grace)
			}
		case <-done:
			done = nil
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if kill == nil {
				kill = time.After(opts.Grace)
			}
		case <-kill:
			_ = cmd.Process.Kill()
		}
	}
}

// host runs one agent on a PTY.
type host struct {
	opts HostOptions
	log  *slog.Logger
	cmd  *exec.Cmd
	ptmx *os.File

	readBytes atomic.Int64 // how much the agent has written, for the final drain

	// The mirror is fed by its own goroutine from work, in the order the
	// agent wrote, so a slow virtual terminal never holds up the agent's
	// output on the real one. The main goroutine reaches it via onMirror.
	mir       *mirror
	work      chan mirrorWork
	mirDone   chan struct{}
	mirDirect bool // main goroutine only: no feeder, use mir directly

	outMu  sync.Mutex // paused, writes to Out, sends on work
	paused bool       // a prompt hides the agent's output

	inMu     sync.Mutex     // promptIn, armedAt
	promptIn *io.PipeWriter // the prompt's keystrokes, while it has them
	armedAt  time.Time      // keys before this go to the agent

	cols, rows int // main goroutine only
}

// mirrorWork is one item for the mirror's feeder: bytes the agent wrote
// (paused: the real terminal did not see them), or a function to run on the
// mirror in order with them.
type mirrorWork struct {
	data   []byte
	paused bool
	fn     func(*mirror)
}

// onMirror runs fn on the mirror after everything the agent wrote so far.
// Main goroutine only.
func (h *host) onMirror(fn func(*mirror)) {
	if h.mirDirect {
		fn(h.mir)
		return
	}
	done := make(chan struct{})
	h.work <- mirrorWork{fn: func(m *mirror) {
		defer close(done)
		fn(m)
	}}
	<-done
}

// feedMirror is the mirror's goroutine; it ends when work is closed. After
// a panic it keeps taking work (running functions, dropping bytes), so no
// one blocks on a dead mirror, and reports the panic.
func (h *host) feedMirror(panicked chan<- any) {
	defer close(h.mirDone)
	defer func() {
		if r := recover(); r != nil {
			panicked <- r
			for w := range h.work {
				if w.fn != nil {
					func() {
						defer func() { _ = recover() }()
						w.fn(h.mir)
					}()
				}
			}
		}
	}()
	for w := range h.work {
		if w.fn != nil {
			w.fn(h.mir)
			continue
		}
		h.mir.toAgent.Store(w.paused)
		h.mir.write(w.data)
	}
}

// episode is one prompt on screen: from the first pending request to an
// empty queue.
type episode struct {
	prog *tea.Program
	in   *io.PipeWriter
	done chan struct{}
}

func (h *host) size() (int, int) {
	w, ht, err := term.GetSize(int(h.opts.Out.Fd()))
	if err != nil || w <= 0 || ht <= 0 {
		return 80, 24
	}
	return w, ht
}

func (h *host) run(ctx context.Context) (exitCode int, err error) {
	o := h.opts
	h.cols, h.rows = h.size()
	cmd := exec.Command(o.Argv[0], o.Argv[1:]...)
	cmd.Env, cmd.Dir = o.Env, o.Dir
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(h.cols), Rows: uint16(h.rows)})
	if err != nil {
		return startErrCode(err), fmt.Errorf("start %s: %w", o.Argv[0], err)
	}
	h.cmd, h.ptmx = cmd, ptmx
	h.log.Debug("agent started on a pty", "pid", cmd.Process.Pid, "cols", h.cols, "rows", h.rows)
	if o.Cast != nil {
		o.Cast.WriteResize(h.cols, h.rows)
	}
	h.mir = newMirror(h.cols, h.rows, ptmx)
	h.mirDirect = true

	waited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(waited)
	}()

	oldState, err := term.MakeRaw(int(o.In.Fd()))
	if err != nil {
		_ = cmd.Process.Kill()
		<-waited
		_ = ptmx.Close()
		h.mir.close()
		return 126, fmt.Errorf("raw mode on the terminal: %w", err)
	}
	var (
		ep      *episode
		cr      cancelreader.CancelReader
		outDone = make(chan struct{})
		inDone  = make(chan struct{})
		stopped bool
	)
	// stop ends the agent's side and waits for every goroutine of it: the
	// agent, the output pump (given drain to show the agent's last words; a
	// child it left behind may hold the PTY open), the input pump.
	stop := func(kill bool, drain time.Duration) {
		if stopped {
			return
		}
		stopped = true
		if kill {
			h.signalAgent(syscall.SIGKILL)
		}
		<-waited
		// Drain until the PTY closes or stays quiet for drain: a busy pump
		// is still reading the agent's last output, a quiet one is waiting
		// on a PTY that a leftover child keeps open.
		for drained := false; !drained; {
			seen := h.readBytes.Load()
			select {
			case <-outDone:
				drained = true
			case <-time.After(drain):
				drained = h.readBytes.Load() == seen
			}
		}
		_ = ptmx.Close()
		<-outDone
		if !h.mirDirect {
			close(h.work)
			<-h.mirDone
			h.mirDirect = true
		}
		if cr != nil {
			cr.Cancel()
			<-inDone
			_ = cr.Close()
		}
	}
	// restore gives the terminal back; only after stop.
	restore := func() {
		if ep != nil {
			h.endPrompt(ep)
			ep = nil
		}
		h.outMu.Lock()
		_, _ = o.Out.Write(h.mir.reset())
		h.outMu.Unlock()
		_ = term.Restore(int(o.In.Fd()), oldState)
		h.mir.close()
	}
	defer func() {
		if r := recover(); r != nil {
			stop(true, 50*time.Millisecond)
			restore()
			panic(r)
		}
	}()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	// A panic in a pump (the cast is someone else's code) is carried to this
	// goroutine, whose deferred restore then leaves the terminal usable.
	panicked := make(chan any, 3)
	carry := func() {
		if r := recover(); r != nil {
			panicked <- r
		}
	}
	h.work = make(chan mirrorWork, 16)
	h.mirDone = make(chan struct{})
	h.mirDirect = false
	go h.feedMirror(panicked)
	go func() {
		defer close(outDone)
		defer carry()
		h.pumpOutput()
	}()
	cr, err = cancelreader.NewReader(o.In)
	if err != nil {
		cr = nil
		stop(true, 50*time.Millisecond)
		restore()
		return 126, fmt.Errorf("reading the terminal: %w", err)
	}
	go func() {
		defer close(inDone)
		defer carry()
		h.pumpInput(cr)
	}()

	var updates <-chan []policy.ApprovalRequest
	if o.Queue != nil {
		updates = o.Queue.Updates()
	}
	var epDone <-chan struct{}
	var kill <-chan time.Time
	ctxDone := ctx.Done()
	terminate := func(s os.Signal) {
		h.signalAgent(s)
		if kill == nil {
			kill = time.After(o.Grace)
		}
	}
loop:
	for {
		select {
		case <-waited:
			break loop
		case r := <-panicked:
			panic(r)
		case list, ok := <-updates:
			if !ok {
				updates, list = nil, nil
			}
			list = h.fill(list)
			switch {
			case len(list) > 0 && ep == nil:
				ep = h.startPrompt(ctx, list)
				epDone = ep.done
			case len(list) > 0:
				ep.prog.Send(PendingMsg(list))
			case ep != nil:
				h.endPrompt(ep)
				ep, epDone = nil, nil
			}
		case <-epDone:
			// The prompt ended on its own (it failed): give the agent its
			// screen back; the requests time out or are answered elsewhere.
			h.log.Warn("approval prompt ended while requests were pending")
			h.endPrompt(ep)
			ep, epDone = nil, nil
		case s := <-sigs:
			switch s {
			case syscall.SIGWINCH:
				h.resize()
			case syscall.SIGTERM, syscall.SIGHUP:
				terminate(s)
			default:
				h.signalAgent(s)
			}
		case <-ctxDone:
			ctxDone = nil
			terminate(syscall.SIGTERM)
		case <-kill:
			h.log.Warn("agent did not exit in time; killing it", "grace", o.Grace)
			h.signalAgent(syscall.SIGKILL)
		}
	}
	exitCode = exitCodeOf(cmd.ProcessState)
	h.log.Debug("agent exited", "code", exitCode)
	stop(false, 250*time.Millisecond)
	restore()
	return exitCode, nil
}

// fill names the session and the agent on requests that do not.
func (h *host) fill(list []policy.ApprovalRequest) []policy.ApprovalRequest {
	if h.opts.Who == "" && h.opts.Session == "" {
		return list
	}
	out := make([]policy.ApprovalRequest, len(list))
	for i, r := range list {
		if r.Agent == "" {
			r.Agent = h.opts.Who
		}
		if r.Session == "" {
			r.Session = h.opts.Session
		}
		out[i] = r
	}
	return out
}

// signalAgent sends s to the agent's process group (it leads one: the PTY
// made it a session leader), falling back to the process.
func (h *host) signalAgent(s os.Signal) {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return
	}
	if err := syscall.Kill(-h.cmd.Process.Pid, sig); err != nil {
		_ = h.cmd.Process.Signal(s)
	}
}

func (h *host) resize() {
	cols, rows := h.size()
	if err := pty.Setsize(h.ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		h.log.Debug("resize pty", "err", err)
	}
	h.cols, h.rows = cols, rows
	h.onMirror(func(m *mirror) { m.resize(cols, rows) })
	if h.opts.Cast != nil {
		h.opts.Cast.WriteResize(cols, rows)
	}
}

// pumpOutput copies the agent's output to the cast, the mirror and (unless
// a prompt is up) the terminal, until the PTY closes.
func (h *host) pumpOutput() {
	buf := make([]byte, 32*1024)
	for {
		n, err := h.ptmx.Read(buf)
		if n > 0 {
			h.readBytes.Add(int64(n))
			p := buf[:n]
			if h.opts.Cast != nil {
				h.opts.Cast.WriteOutput(p)
			}
			h.show(p)
		}
		if err != nil {
			return
		}
	}
}

// show draws p unless a prompt is up, and queues it for the mirror. Both
// happen under outMu, so the mirror knows exactly which bytes the real
// terminal saw.
func (h *host) show(p []byte) {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	if !h.paused {
		_, _ = h.opts.Out.Write(p)
	}
	h.work <- mirrorWork{data: bytes.Clone(p), paused: h.paused}
}

// pumpInput routes the human's keystrokes: to the prompt while it is armed,
// to the agent otherwise.
func (h *host) pumpInput(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			h.inMu.Lock()
			w := h.promptIn
			toPrompt := w != nil && !time.Now().Before(h.armedAt)
			h.inMu.Unlock()
			if toPrompt {
				// A closed pipe means the prompt just ended: the key was
				// typed at the prompt, so it is dropped, not given to the agent.
				_, _ = w.Write(buf[:n])
			} else if _, werr := h.ptmx.Write(buf[:n]); werr != nil && err == nil {
				h.log.Debug("write to agent", "err", werr)
			}
		}
		if err != nil {
			return
		}
	}
}

func (h *host) startPrompt(ctx context.Context, list []policy.ApprovalRequest) *episode {
	o := h.opts
	pr, pw := io.Pipe()
	backdrop := h.pause()
	cols, rows := h.cols, h.rows
	h.inMu.Lock()
	h.promptIn = pw
	h.armedAt = time.Now().Add(max(0, o.ArmDelay))
	h.inMu.Unlock()

	tr := &tracker{}
	m := NewPrompt(PromptOptions{
		NoTick:   true,
		Answer:   answerCmd(ctx, o.Queue, o.Cast, tr),
		Notify:   notifyCmd(&h.outMu, o.Out, o.Cast, tr),
		By:       o.User,
		Via:      "prompt",
		Styles:   NewStyles(o.Out, !o.NoColor),
		Now:      time.Now(),
		Width:    cols,
		Height:   rows,
		Backdrop: backdrop,
		Status:   o.Status,
	}, list)
	prog := tea.NewProgram(m,
		tea.WithInput(pr), tea.WithOutput(o.Out), tea.WithAltScreen(),
		tea.WithoutSignalHandler(), tea.WithoutBracketedPaste(), tea.WithFPS(120))
	ep := &episode{prog: prog, in: pw, done: make(chan struct{})}
	go func() {
		defer close(ep.done)
		if _, err := runProgram(prog, runOptions{Status: o.Status, Tracker: tr}); err != nil {
			h.log.Error("approval prompt", "err", err)
		}
		_ = pr.Close()
	}()
	return ep
}

// endPrompt takes the keys back, closes the prompt and redraws the agent.
func (h *host) endPrompt(ep *episode) {
	h.inMu.Lock()
	h.promptIn = nil
	h.inMu.Unlock()
	_ = ep.in.Close()
	ep.prog.Quit()
	<-ep.done
	h.unpause()
}

// pause stops drawing the agent's output and returns its screen as text.
// From here the mirror keeps what scrolls away, for unpause.
func (h *host) pause() []string {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	h.paused = true
	var backdrop []string
	h.onMirror(func(m *mirror) {
		m.hold()
		backdrop = m.lines()
	})
	return backdrop
}

// unpause draws the agent's screen again, as the mirror has it after every
// byte the agent wrote, and goes back to drawing its output live.
func (h *host) unpause() {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	var b []byte
	h.onMirror(func(m *mirror) { b = m.repaint() })
	_, _ = h.opts.Out.Write(b)
	h.paused = false
}

// answerCmd sends an answer to the queue from a Bubble Tea command and, when
// it wins, marks the cast so a replay shows where the human answered.
func answerCmd(ctx context.Context, q Queue, cast CastSink, tr *tracker) func(string, policy.Answer) tea.Cmd {
	return func(id string, a policy.Answer) tea.Cmd {
		return func() tea.Msg {
			if !tr.start() {
				return nil
			}
			defer tr.done()
			if q == nil {
				return AnsweredMsg{ID: id, Answer: a, Err: errors.New("no approval queue")}
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			err := q.Answer(actx, id, a)
			if err == nil && cast != nil {
				cast.WriteMarker(fmt.Sprintf("approval %s: %s by %s", id, a.Verdict, a.By))
			}
			return AnsweredMsg{ID: id, Answer: a, Err: err}
		}
	}
}

// notifyCmd rings the bell and sends an OSC 9 desktop notification for a
// new request. The text is the connection and the start of the statement,
// with control characters removed so it cannot end the sequence early.
func notifyCmd(mu *sync.Mutex, out io.Writer, cast CastSink, tr *tracker) func(policy.ApprovalRequest) tea.Cmd {
	return func(r policy.ApprovalRequest) tea.Cmd {
		return func() tea.Msg {
			if !tr.start() {
				return nil
			}
			defer tr.done()
			if cast != nil {
				cast.WriteMarker(fmt.Sprintf("approval %s needed: %s", r.ID, oneLine(r.SQL, 60)))
			}
			msg := "guardrun: approval needed"
			if r.Connection != "" {
				msg += " on " + r.Connection
			}
			if sql := oneLine(r.SQL, 60); sql != "" {
				msg += ": " + sql
			}
			mu.Lock()
			_, _ = io.WriteString(out, "\a\x1b]9;"+msg+"\x07")
			mu.Unlock()
			return nil
		}
	}
}

// oneLine squeezes s onto one line of at most n runes, without control
// characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if rs := []rune(s); len(rs) > n {
		s = string(rs[:n-1]) + "…"
	}
	return s
}
