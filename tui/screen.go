package tui

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
)

// restoredModes are the DEC private modes a prompt may disturb (Bubble Tea
// sets or resets 25, 2004 and the mouse modes on its way in and out) and the
// input modes an agent commonly enables. After a prompt the host puts each
// back the way the agent left it.
func restoredModes() []ansi.DECMode {
	return []ansi.DECMode{
		ansi.ModeCursorKeys,       // ?1    application cursor keys
		ansi.ModeTextCursorEnable, // ?25   cursor visible
		ansi.ModeNumericKeypad,    // ?66   application keypad (ESC = / ESC >)
		ansi.ModeMouseNormal,      // ?1000
		ansi.ModeMouseButtonEvent, // ?1002
		ansi.ModeMouseAnyEvent,    // ?1003
		ansi.ModeFocusEvent,       // ?1004
		ansi.ModeMouseExtSgr,      // ?1006
		ansi.ModeBracketedPaste,   // ?2004
	}
}

// mirror is a virtual terminal fed every byte the agent writes, so the host
// knows what the agent's screen looks like at any moment and can draw it
// again after a prompt. It is not safe for concurrent use: the host holds its
// lock around every call.
type mirror struct {
	emu   *vt.Emulator
	modes map[ansi.Mode]bool // the agent's setting of restoredModes

	// toAgent says where the emulator's replies to the agent's queries (DA,
	// DSR, DECRQM) go: while the agent's output reaches the real terminal, the
	// real terminal answers and the emulator's reply is dropped; while a prompt
	// hides the agent, the emulator answers in its place.
	toAgent atomic.Bool
	replies chan struct{} // closed when the reply drain ends
}

// newMirror starts a mirror of w×h cells; replies to the agent go to agent
// while toAgent is set. close stops it.
func newMirror(w, h int, agent io.Writer) *mirror {
	m := &mirror{emu: vt.NewEmulator(max(1, w), max(1, h)), modes: map[ansi.Mode]bool{}, replies: make(chan struct{})}
	// The real terminal keeps the scrollback; the mirror only needs the
	// lines that scroll away while a prompt hides them (see hold). A long
	// scrollback would also cost a copy of it on every line once full.
	m.emu.SetScrollbackSize(1)
	m.modes[ansi.ModeTextCursorEnable] = true
	m.emu.SetCallbacks(vt.Callbacks{
		EnableMode:  func(mode ansi.Mode) { m.modes[mode] = true },
		DisableMode: func(mode ansi.Mode) { m.modes[mode] = false },
	})
	// The emulator writes its replies into a pipe and blocks until someone
	// reads them; this drain must run for as long as the mirror is written to.
	go func() {
		defer close(m.replies)
		buf := make([]byte, 256)
		for {
			n, err := m.emu.Read(buf)
			if n > 0 && m.toAgent.Load() {
				_, _ = agent.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return m
}

func (m *mirror) write(p []byte) { _, _ = m.emu.Write(p) }

func (m *mirror) resize(w, h int) { m.emu.Resize(max(1, w), max(1, h)) }

// close stops the reply drain and waits for it. It closes the reply pipe
// itself: Emulator.Close would race with the drain's Read on the
// emulator's closed flag.
func (m *mirror) close() {
	if c, ok := m.emu.InputPipe().(io.Closer); ok {
		_ = c.Close()
	} else {
		_ = m.emu.Close()
	}
	<-m.replies
}

// heldLines is how many lines that scroll off the main screen while a
// prompt is up are kept, to be put into the real terminal's scrollback.
const heldLines = 2000

// hold starts keeping the lines that scroll off the main screen.
func (m *mirror) hold() {
	m.emu.ClearScrollback()
	m.emu.SetScrollbackSize(heldLines)
}

// lines returns the screen as plain text, one string per row, for the
// backdrop behind a prompt.
func (m *mirror) lines() []string {
	out := make([]string, m.emu.Height())
	for y := range out {
		var b strings.Builder
		for x := 0; x < m.emu.Width(); x++ {
			c := m.emu.CellAt(x, y)
			if c == nil || c.Width == 0 && c.Content == "" {
				continue
			}
			if c.Content == "" {
				b.WriteByte(' ')
				continue
			}
			b.WriteString(c.Content)
		}
		out[y] = strings.TrimRight(b.String(), " ")
	}
	return out
}

// repaint returns the bytes that put the agent's screen back on a terminal
// that a prompt drew over: the right screen (main or alternate), every row,
// the cursor where the agent left it, shown or hidden as it was, and the
// input modes the agent had enabled.
func (m *mirror) repaint() []byte {
	var b strings.Builder
	w := m.emu.Width()
	rows := strings.Split(m.emu.Render(), "\n")
	var held []string
	if m.emu.IsAltScreen() {
		b.WriteString(ansi.SetAltScreenSaveCursorMode)
	} else if sb := m.emu.Scrollback(); sb != nil {
		for _, l := range sb.Lines() {
			held = append(held, ansi.Truncate(l.Render(), w, ""))
		}
	}
	m.emu.ClearScrollback()
	m.emu.SetScrollbackSize(1)
	b.WriteString(ansi.ResetStyle)
	b.WriteString(ansi.HideCursor) // no cursor flying over the rows
	if len(held) > 0 {
		// Lines that scrolled away behind the prompt: write them and the
		// screen top to bottom, so the terminal scrolls exactly the held
		// lines into its own scrollback, as if it had drawn them live.
		b.WriteString("\x1b[r\x1b[1;1H")
		all := append(held, rows[:min(len(rows), m.emu.Height())]...)
		for i, l := range all {
			if i > 0 {
				b.WriteString("\r\n")
			}
			b.WriteString("\x1b[2K")
			b.WriteString(l)
			b.WriteString(ansi.ResetStyle)
		}
	} else {
		for y := 0; y < m.emu.Height(); y++ {
			fmt.Fprintf(&b, "\x1b[%d;1H\x1b[2K", y+1)
			if y < len(rows) {
				b.WriteString(rows[y])
			}
			b.WriteString(ansi.ResetStyle)
		}
	}
	pos := m.emu.CursorPosition()
	fmt.Fprintf(&b, "\x1b[%d;%dH", pos.Y+1, pos.X+1)
	b.WriteString(m.modeBytes())
	return []byte(b.String())
}

// modeBytes sets each of restoredModes the way the agent left it: resets
// first, then sets, because terminals treat the mouse modes as one setting
// and resetting any of them (tmux, xterm) turns mouse reporting off.
func (m *mirror) modeBytes() string {
	var resets, sets strings.Builder
	for _, mode := range restoredModes() {
		on := m.modes[mode]
		if mode == ansi.ModeTextCursorEnable {
			on = !m.emu.CursorHidden()
		}
		switch {
		case mode == ansi.ModeNumericKeypad && on:
			sets.WriteString("\x1b=")
		case mode == ansi.ModeNumericKeypad:
			resets.WriteString("\x1b>")
		case on:
			sets.WriteString(ansi.SetMode(mode))
		default:
			resets.WriteString(ansi.ResetMode(mode))
		}
	}
	return resets.String() + sets.String()
}

// reset returns the bytes that leave the real terminal usable after the
// agent is gone, whatever state it died in: main screen, modes off, cursor
// shown, colours reset, cursor below the agent's last output.
func (m *mirror) reset() []byte {
	var b strings.Builder
	b.WriteString(ansi.ResetStyle)
	if m.emu.IsAltScreen() {
		b.WriteString(ansi.ResetAltScreenSaveCursorMode)
	}
	for _, mode := range restoredModes() {
		switch {
		case mode == ansi.ModeTextCursorEnable:
			b.WriteString(ansi.ShowCursor)
		case mode == ansi.ModeNumericKeypad:
			if m.modes[mode] {
				b.WriteString("\x1b>")
			}
		case m.modes[mode]:
			b.WriteString(ansi.ResetMode(mode))
		}
	}
	return []byte(b.String())
}
