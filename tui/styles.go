package tui

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Styles are the colours of guardrun's terminal faces. The zero value draws
// no colour at all (tests, NO_COLOR); NewStyles picks colours for a writer.
type Styles struct {
	Border   lipgloss.Style // the box
	Title    lipgloss.Style // "guardrun · approval needed"
	Count    lipgloss.Style // "1 of 2 · 1:54"
	Urgent   lipgloss.Style // the countdown under 15 s
	Meta     lipgloss.Style // connection · session · agent
	Keyword  lipgloss.Style // SQL keywords
	Literal  lipgloss.Style // SQL strings and numbers
	Comment  lipgloss.Style // SQL comments
	Bullet   lipgloss.Style // ▸ lines
	Rule     lipgloss.Style // the rule's name
	Key      lipgloss.Style // [a]
	Help     lipgloss.Style // key descriptions
	Notice   lipgloss.Style // "already answered"
	Backdrop lipgloss.Style // the agent's screen behind the box
	Selected lipgloss.Style // the selected row of a list

	on bool // false: every paint returns its text unchanged
}

// paint renders text in st, or returns it unchanged when colour is off.
func (s Styles) paint(st lipgloss.Style, text string) string {
	if !s.on || text == "" {
		return text
	}
	return st.Render(text)
}

// NewStyles returns colourful styles for w, or plain ones when color is false.
// The renderer never asks the terminal anything (a query would read the
// agent's keystrokes): the background is assumed dark.
func NewStyles(w io.Writer, color bool) Styles {
	if !color {
		return Styles{}
	}
	r := lipgloss.NewRenderer(w)
	r.SetHasDarkBackground(true)
	if r.ColorProfile() == termenv.Ascii {
		r.SetColorProfile(termenv.ANSI)
	}
	s := func() lipgloss.Style { return r.NewStyle() }
	return Styles{
		Border:   s().Foreground(lipgloss.Color("11")),
		Title:    s().Foreground(lipgloss.Color("11")).Bold(true),
		Count:    s().Foreground(lipgloss.Color("7")),
		Urgent:   s().Foreground(lipgloss.Color("9")).Bold(true),
		Meta:     s().Foreground(lipgloss.Color("8")),
		Keyword:  s().Foreground(lipgloss.Color("12")).Bold(true),
		Literal:  s().Foreground(lipgloss.Color("10")),
		Comment:  s().Foreground(lipgloss.Color("8")).Italic(true),
		Bullet:   s().Foreground(lipgloss.Color("7")),
		Rule:     s().Foreground(lipgloss.Color("13")),
		Key:      s().Foreground(lipgloss.Color("14")).Bold(true),
		Help:     s().Foreground(lipgloss.Color("7")),
		Notice:   s().Foreground(lipgloss.Color("9")),
		Backdrop: s().Faint(true),
		Selected: s().Reverse(true),
		on:       true,
	}
}
