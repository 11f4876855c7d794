package tui

// The rules of the terminal for RunApprovals (`guardrun approvals`):
//
//   - It takes the whole terminal (alternate screen) and gives it back as it
//     was when it returns; nothing is left on screen and nothing goes to
//     stdout, so the command's own output stays scriptable.
//   - Keys go to the view (raw mode, restored on return). q or Ctrl-C quit.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/guardrun/guardrun/policy"
)

// ApprovalsOptions configure RunApprovalsWith.
type ApprovalsOptions struct {
	In, Out *os.File // the terminal; nil: os.Stdin, os.Stdout
	Queue   Queue
	User    string // who answers; empty: each request's User
	NoColor bool
}

// RunApprovals lists the requests q holds (from every session it covers) and
// answers the selected one with the prompt's keys. It returns nil when the
// human quits, ctx is done or the queue ends, ErrInterrupted on Ctrl-C.
func RunApprovals(ctx context.Context, in, out *os.File, q Queue) error {
	return RunApprovalsWith(ctx, ApprovalsOptions{In: in, Out: out, Queue: q})
}

// RunApprovalsWith is RunApprovals with options.
func RunApprovalsWith(ctx context.Context, opts ApprovalsOptions) error {
	if opts.In == nil {
		opts.In = os.Stdin
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	tr := &tracker{}
	m := NewApprovals(PromptOptions{
		Answer: answerCmd(ctx, opts.Queue, nil, tr),
		NoTick: true,
		By:     opts.User,
		Via:    "approvals",
		Styles: NewStyles(opts.Out, !opts.NoColor),
		Now:    time.Now(),
	})
	prog := tea.NewProgram(m, tea.WithInput(opts.In), tea.WithOutput(opts.Out), tea.WithAltScreen(), tea.WithoutSignalHandler())
	final, err := runProgram(prog, runOptions{Quit: ctx.Done(), Queue: opts.Queue, Tracker: tr})
	if err != nil {
		return err
	}
	if am, ok := final.(Approvals); ok && am.interrupted {
		return ErrInterrupted
	}
	return nil
}

// ApprovalsKeys are the list's own keys; the prompt's keys answer.
type ApprovalsKeys struct {
	Up, Down, Quit key.Binding
}

// DefaultApprovalsKeys: arrows (or j/k) select, q quits.
func DefaultApprovalsKeys() ApprovalsKeys {
	return ApprovalsKeys{
		Up:   key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "select")),
		Down: key.NewBinding(key.WithKeys("down", "j")),
		Quit: key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
	}
}

// Approvals is the `guardrun approvals` view: the pending requests, one per
// line with its session and agent, and the selected one in the prompt's box.
type Approvals struct {
	prompt      Prompt
	keys        ApprovalsKeys
	w, h        int
	ended       bool
	interrupted bool
	quitting    bool
}

// NewApprovals returns the view; po is the prompt's configuration (its
// scroll keys become PgUp/PgDn, the arrows select).
func NewApprovals(po PromptOptions) Approvals {
	if len(po.Keys.Approve.Keys()) == 0 {
		po.Keys = DefaultPromptKeys()
	}
	po.Keys.Up = key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup/pgdn", "scroll"))
	po.Keys.Down = key.NewBinding(key.WithKeys("pgdown"))
	if po.Via == "" {
		po.Via = "approvals"
	}
	return Approvals{prompt: NewPrompt(po, nil), keys: DefaultApprovalsKeys(), w: po.Width, h: po.Height}
}

func (m Approvals) Init() tea.Cmd { return m.prompt.Init() }

func (m Approvals) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case queueClosedMsg:
		m.ended, m.quitting = true, true
		return m, tea.Quit
	case tea.KeyMsg:
		if msg.Type == tea.KeyCtrlC {
			m.interrupted, m.quitting = true, true
			return m, tea.Quit
		}
		if !m.prompt.Noting() {
			switch {
			case key.Matches(msg, m.keys.Quit):
				m.quitting = true
				return m, tea.Quit
			case key.Matches(msg, m.keys.Up), key.Matches(msg, m.keys.Down):
				vis := m.prompt.Visible()
				if len(vis) == 0 {
					return m, nil
				}
				i := 0
				if r, ok := m.prompt.Current(); ok {
					for j, v := range vis {
						if v.ID == r.ID {
							i = j
						}
					}
				}
				if key.Matches(msg, m.keys.Up) {
					i = max(0, i-1)
				} else {
					i = min(len(vis)-1, i+1)
				}
				m.prompt = m.prompt.Select(vis[i].ID)
				return m, nil
			}
		}
	}
	pm, cmd := m.prompt.Update(msg)
	m.prompt = pm.(Prompt)
	return m, cmd
}

func (m Approvals) View() string {
	if m.quitting {
		return ""
	}
	w, h := m.w, m.h
	if w <= 0 || h <= 0 {
		return ""
	}
	st := m.prompt.opts.Styles
	vis := m.prompt.Visible()
	var lines []string
	head := "guardrun · approvals"
	switch len(vis) {
	case 0:
		head += " · nothing pending"
	case 1:
		head += " · 1 pending"
	default:
		head += fmt.Sprintf(" · %d pending", len(vis))
	}
	lines = append(lines, st.paint(st.Title, head), "")
	cur, _ := m.prompt.Current()
	// The list gets up to a third of the screen; the box the rest.
	listRows := max(1, min(len(vis), h/3))
	first := 0
	for i, r := range vis {
		if r.ID == cur.ID && i >= listRows {
			first = i - listRows + 1
		}
	}
	for i := first; i < len(vis) && i < first+listRows; i++ {
		lines = append(lines, m.row(vis[i], vis[i].ID == cur.ID, w))
	}
	if len(vis) == 0 {
		lines = append(lines, st.paint(st.Meta, "Nothing is waiting for approval. New requests appear here as they are held."))
		if m.prompt.notice != "" {
			lines = append(lines, st.paint(st.Notice, m.prompt.notice))
		}
	}
	lines = append(lines, "")
	help := []key.Binding{m.keys.Up, m.prompt.keys.Up, m.keys.Quit}
	footer := m.prompt.helpLine(help, w)
	if len(vis) > 0 {
		box := m.prompt.box(min(w, 100), max(6, h-len(lines)-len(footer)))
		lines = append(lines, box...)
	}
	for len(lines) < h-len(footer) {
		lines = append(lines, "")
	}
	lines = append(lines[:min(len(lines), h-len(footer))], footer...)
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, w, "")
	}
	return strings.Join(lines, "\n")
}

// row is one request in the list: session, agent, connection, statement,
// time left.
func (m Approvals) row(r policy.ApprovalRequest, selected bool, w int) string {
	st := m.prompt.opts.Styles
	cd, _ := countdown(r.Deadline, m.prompt.now)
	left := fmt.Sprintf("%-10s %-8s %-10s ", ansi.Truncate(r.Session, 10, "…"), ansi.Truncate(r.Agent, 8, "…"), ansi.Truncate(r.Connection, 10, "…"))
	sqlW := max(10, w-2-ansi.StringWidth(left)-11)
	text := fmt.Sprintf("%s%-*s %9s", left, sqlW, ansi.Truncate(oneLine(r.SQL, 200), sqlW, "…"), cd)
	if selected {
		return st.paint(st.Key, "▸ ") + st.paint(st.Selected, text)
	}
	return "  " + text
}
