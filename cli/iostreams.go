package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams is the one place that knows whether we talk to a terminal. Run
// functions ask it; they never probe os.Stdin themselves.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// NoPrompt disables prompting even on a terminal (GUARDRUN_NO_PROMPT=1).
	NoPrompt bool
}

func fdOf(v any) (int, bool) {
	f, ok := v.(*os.File)
	if !ok {
		return 0, false
	}
	return int(f.Fd()), true
}

// IsStdinTTY reports whether standard input is a terminal.
func (s *IOStreams) IsStdinTTY() bool {
	fd, ok := fdOf(s.In)
	return ok && term.IsTerminal(fd)
}

// IsStdoutTTY reports whether standard output is a terminal.
func (s *IOStreams) IsStdoutTTY() bool {
	fd, ok := fdOf(s.Out)
	return ok && term.IsTerminal(fd)
}

// IsStderrTTY reports whether standard error is a terminal.
func (s *IOStreams) IsStderrTTY() bool {
	fd, ok := fdOf(s.ErrOut)
	return ok && term.IsTerminal(fd)
}

// CanPrompt reports whether a human can answer a prompt here: stdin and
// stdout are terminals and prompting is not disabled.
func (s *IOStreams) CanPrompt() bool {
	return !s.NoPrompt && s.IsStdinTTY() && s.IsStdoutTTY()
}
