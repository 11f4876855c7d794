package cli

import (
	"errors"
	"fmt"
)

// Exit codes, decided in one place (Main). A wrapped agent's or client's own
// exit code passes through as a ChildExit.
const (
	ExitOK         = 0
	ExitError      = 1
	ExitCancelled  = 2
	ExitNeedsLogin = 4
)

// HintError is an error with a next step for the user. Printed as
//
//	guardrun: error: <err>
//	guardrun: hint: <hint>
type HintError struct {
	Err  error
	Hint string
	Code int // exit code; 0 means ExitError
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// withHint wraps err with a hint; nil stays nil.
func withHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: fmt.Sprintf(format, args...)}
}

// ChildExit carries a child process's exit code (agent, client) to Main
// without printing anything.
type ChildExit struct{ Code int }

func (e *ChildExit) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// errSilent is returned when the command has already told the user what went
// wrong; Main prints nothing more and exits 1.
var errSilent = errors.New("silent")

// errNotBuilt marks a verb whose file has not been written yet.
var errNotBuilt = errors.New("this command is not built yet")
