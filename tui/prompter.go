package tui

// The rules of the terminal for RunPrompter (`guardrun connect` on a TTY):
//
//   - Whatever the caller printed before (the DSN, the hint) stays where it
//     is. Below it RunPrompter owns the last lines of the terminal: one live
//     status line while nothing is held, the approval box above that line
//     while something is. Lines from Log are printed above the live area and
//     scroll like ordinary output.
//   - The live area is erased when RunPrompter returns; the log lines stay.
//   - Keys go to RunPrompter (raw mode, restored on return). Ctrl-C returns
//     ErrInterrupted so the caller can close the tunnel.
//   - Nothing goes to stderr.

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// ErrInterrupted is returned by RunPrompter and RunApprovals when the human
// pressed Ctrl-C.
var ErrInterrupted = errors.New("interrupted")

// PrompterOptions configure RunPrompter.
type PrompterOptions struct {
	In, Out *os.File      // the terminal; nil: os.Stdin, os.Stdout
	Queue   Queue         // pending approvals; may be nil (status only)
	Status  func() string // the idle line, read about once a second; may be nil
	Log     <-chan string // lines to print above the live area; may be nil
	User    string        // who answers; empty: the request's User
	NoColor bool
	Cast    CastSink // markers for requests and answers; may be nil
}

// RunPrompter shows a live status line and, when a request is held, the
// approval prompt, until ctx is done (nil) or Ctrl-C (ErrInterrupted).
func RunPrompter(ctx context.Context, opts PrompterOptions) error {
	if opts.In == nil {
		opts.In = os.Stdin
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	var mu sync.Mutex
	tr := &tracker{}
	m := newPrompterModel(PromptOptions{
		Answer: answerCmd(ctx, opts.Queue, opts.Cast, tr),
		Notify: notifyCmd(&mu, opts.Out, opts.Cast, tr),
		By:     opts.User,
		Via:    "prompt",
		Styles: NewStyles(opts.Out, !opts.NoColor),
		Now:    time.Now(),
		NoTick: true,
	})
	prog := tea.NewProgram(m, tea.WithInput(opts.In), tea.WithOutput(opts.Out), tea.WithoutSignalHandler())
	final, err := runProgram(prog, runOptions{Quit: ctx.Done(), Queue: opts.Queue, Log: opts.Log, Status: opts.Status, Tracker: tr})
	if err != nil {
		return err
	}
	if pm, ok := final.(prompterModel); ok && pm.interrupted {
		return ErrInterrupted
	}
	return nil
}

// runOptions say what runProgram feeds a program.
type runOptions struct {
	Quit    <-chan struct{} // quit the program when closed; nil: never
	Queue   Queue           // its lists become PendingMsg; nil: none
	Log     <-chan string   // printed above the program; nil: none
	Status  func() string   // read on every tick
	Tracker *tracker        // commands to wait for after the program ends
}

// runProgram runs prog, feeding it ticks (at once, then every second), the
// queue's lists and the log lines. Every goroutine it starts, and every
// command counted by the tracker, has ended when it returns.
func runProgram(prog *tea.Program, o runOptions) (tea.Model, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if o.Queue != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			updates := o.Queue.Updates()
			for {
				select {
				case l, ok := <-updates:
					if !ok {
						prog.Send(queueClosedMsg{})
						return
					}
					prog.Send(PendingMsg(l))
				case <-stop:
					return
				}
			}
		}()
	}
	if o.Log != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case l, ok := <-o.Log:
					if !ok {
						return
					}
					prog.Println(l)
				case <-stop:
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		now := time.Now()
		for {
			msg := tickMsg{t: now}
			if o.Status != nil {
				msg.status = o.Status()
			}
			prog.Send(msg)
			select {
			case now = <-t.C:
			case <-o.Quit:
				prog.Quit()
				return
			case <-stop:
				return
			}
		}
	}()
	final, err := prog.Run()
	close(stop)
	wg.Wait()
	if o.Tracker != nil {
		o.Tracker.wait()
	}
	return final, err
}

// tracker counts the commands (answers, notifications) a program started,
// so whoever ran the program can wait for them: Bubble Tea does not.
type tracker struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
}

// start counts one command in; false once the program is over.
func (t *tracker) start() bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *tracker) done() {
	if t != nil {
		t.wg.Done()
	}
}

// wait refuses new commands and waits for the running ones.
func (t *tracker) wait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

// queueClosedMsg: the source of approvals ended.
type queueClosedMsg struct{}

// prompterModel is the live status line with the prompt above it.
type prompterModel struct {
	prompt      Prompt
	line        string
	w, h        int
	interrupted bool
	quitting    bool
}

func newPrompterModel(po PromptOptions) prompterModel {
	return prompterModel{prompt: NewPrompt(po, nil)}
}

func (m prompterModel) Init() tea.Cmd { return m.prompt.Init() }

func (m prompterModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tickMsg:
		m.line = msg.status
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case queueClosedMsg:
		return m, nil
	case tea.KeyMsg:
		if msg.Type == tea.KeyCtrlC {
			m.interrupted, m.quitting = true, true
			return m, tea.Quit
		}
		if m.prompt.Waiting() == 0 {
			return m, nil
		}
	}
	pm, cmd := m.prompt.Update(msg)
	m.prompt = pm.(Prompt)
	return m, cmd
}

func (m prompterModel) View() string {
	if m.quitting {
		return ""
	}
	w := m.w
	if w <= 0 {
		w = 80
	}
	line := m.prompt.opts.Styles.paint(m.prompt.opts.Styles.Meta, ansi.Truncate(m.line, w, "…"))
	if m.prompt.Waiting() == 0 {
		return line
	}
	h := m.h
	if h <= 0 {
		h = 24
	}
	box := m.prompt.box(min(w, 100), max(6, h-2))
	out := ""
	for _, l := range box {
		out += l + "\n"
	}
	return out + line
}
