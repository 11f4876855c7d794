package tui

// The login view: one line, drawn on stderr (the cli hands the writer in)
// while `guardrun login` waits for the user to approve the one-time code:
//
//	⣾ Waiting for approval · code expires in 4:52 · ctrl+c cancels
//
// The code and the URL are printed by the cli as plain lines before this view
// starts, so they stay in the scrollback; this line is erased when the view
// ends and the cli prints the outcome in its place. Update does no I/O: time
// comes in as messages (loginTickMsg), the outcome as LoginDoneMsg.

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
)

// LoginDoneMsg tells the login view that polling ended (Err nil: signed in).
type LoginDoneMsg struct{ Err error }

type loginTickMsg time.Time

// LoginKeys are the login view's key bindings.
type LoginKeys struct {
	Cancel key.Binding
}

// DefaultLoginKeys: ctrl+c or esc cancels the sign-in.
func DefaultLoginKeys() LoginKeys {
	return LoginKeys{
		Cancel: key.NewBinding(key.WithKeys("ctrl+c", "esc"), key.WithHelp("ctrl+c", "cancels")),
	}
}

// LoginModel is the waiting line of `guardrun login`.
type LoginModel struct {
	expires   time.Time
	now       time.Time
	spin      spinner.Model
	keys      LoginKeys
	styles    Styles
	done      bool
	err       error
	cancelled bool
}

// NewLogin builds the view for a code that expires at expires; now is the
// time it starts at (later times arrive as ticks).
func NewLogin(expires, now time.Time, st Styles) LoginModel {
	return LoginModel{
		expires: expires,
		now:     now,
		spin:    spinner.New(spinner.WithSpinner(loginSpinner())),
		keys:    DefaultLoginKeys(),
		styles:  st,
	}
}

// loginSpinner is bubbles' Dot without the trailing space of its frames.
func loginSpinner() spinner.Spinner {
	var frames []string
	for _, f := range spinner.Dot.Frames {
		frames = append(frames, strings.TrimSpace(f))
	}
	return spinner.Spinner{Frames: frames, FPS: spinner.Dot.FPS}
}

func loginTick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return loginTickMsg(t) })
}

// Init starts the spinner and the countdown.
func (m LoginModel) Init() tea.Cmd { return tea.Batch(m.spin.Tick, loginTick()) }

// Update handles ticks, the outcome and the cancel key.
func (m LoginModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case LoginDoneMsg:
		m.done, m.err = true, msg.Err
		return m, tea.Quit
	case tea.KeyMsg:
		if key.Matches(msg, m.keys.Cancel) {
			m.done, m.cancelled = true, true
			return m, tea.Quit
		}
	case loginTickMsg:
		m.now = time.Time(msg)
		return m, loginTick()
	case spinner.TickMsg:
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	}
	return m, nil
}

// View is the waiting line, or nothing once done (the line is erased).
func (m LoginModel) View() string {
	if m.done {
		return ""
	}
	left := m.expires.Sub(m.now).Round(time.Second)
	var when string
	if left <= 0 {
		when = m.styles.paint(m.styles.Urgent, "code expired")
	} else {
		secs := int(left / time.Second)
		when = fmt.Sprintf("code expires in %d:%02d", secs/60, secs%60)
		if left < 30*time.Second {
			when = m.styles.paint(m.styles.Urgent, when)
		}
	}
	h := m.keys.Cancel.Help()
	return fmt.Sprintf("%s Waiting for approval · %s · %s %s",
		m.spin.View(), when, m.styles.paint(m.styles.Key, h.Key), m.styles.paint(m.styles.Help, h.Desc))
}

// Cancelled reports whether the user pressed the cancel key.
func (m LoginModel) Cancelled() bool { return m.cancelled }

// Err is the outcome LoginDoneMsg carried.
func (m LoginModel) Err() error { return m.err }
