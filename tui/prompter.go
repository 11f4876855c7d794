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
	"log/slog"
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
	Logger  *slog.Logger
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var mu sync.Mutex
	m := newPrompterModel(PromptOptions{
		Answer: answerCmd(ctx, opts.Queue, opts.Cast),
		Notify: notifyCmd(&mu, opts.Out, opts.Cast),
		By:     opts.User,
		Via:    "prompt",
		Styles: NewStyles(opts.Out, !opts.NoColor),
		Now:    time.Now(),
	}, opts.Status)
	prog := tea.NewProgram(m, tea.WithInput(opts.In), tea.WithOutput(opts.Out), tea.WithoutSignalHandler())
	final, err := runProgram(ctx, prog, opts.Queue, opts.Log)
	if err != nil {
		return err
	}
	if pm, ok := final.(prompterModel); ok && pm.interrupted {
		return ErrInterrupted
	}
	return nil
}

// runProgram runs prog, feeding it the queue's lists and the log lines, and
// quits it when ctx is done. Every goroutine it starts has ended when it
// returns.
func runProgram(ctx context.Context, prog *tea.Program, q Queue, log <-chan string) (tea.Model, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if q != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			updates := q.Updates()
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
	if log != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case l, ok := <-log:
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
		select {
		case <-ctx.Done():
			prog.Quit()
		case <-stop:
		}
	}()
	final, err := prog.Run()
	close(stop)
	wg.Wait()
	return final, err
}

// queueClosedMsg: the source of approvals ended.
type queueClosedMsg struct{}

// statusMsg carries a fresh status line.
type statusMsg string

// prompterModel is the live status line with the prompt above it.
type prompterModel struct {
	prompt      Prompt
	status      func() string
	line        string
	w, h        int
	interrupted bool
	quitting    bool
}

func newPrompterModel(po PromptOptions, status func() string) prompterModel {
	return prompterModel{prompt: NewPrompt(po, nil), status: status}
}

func (m prompterModel) Init() tea.Cmd { return tea.Batch(m.prompt.Init(), m.refresh(0)) }

func (m prompterModel) refresh(after time.Duration) tea.Cmd {
	if m.status == nil {
		return nil
	}
	status := m.status
	if after == 0 {
		return func() tea.Msg { return statusMsg(status()) }
	}
	return tea.Tick(after, func(time.Time) tea.Msg { return statusMsg(status()) })
}

func (m prompterModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case statusMsg:
		m.line = string(msg)
		return m, m.refresh(time.Second)
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
