package tui

import (
	"context"

	"github.com/guardrun/guardrun/policy"
)

// Queue is a source of pending approvals: the session's own broker (the
// inline prompt) or a control-socket client (`guardrun approvals`). tui
// consumes it; the broker and the control socket implement it.
type Queue interface {
	// Updates delivers the full list of pending requests, oldest first, each
	// time it changes (an empty list when nothing is pending). A new reader
	// gets the current list first. The channel is closed when the source ends.
	Updates() <-chan []policy.ApprovalRequest
	// Answer resolves one request. The first answer from anywhere wins; a later
	// one returns an error that says so: it wraps ErrAlreadyAnswered, or (for
	// packages that may not import tui, such as tunnel) has a method
	// AlreadyAnswered() bool that returns true. See IsAlreadyAnswered.
	Answer(ctx context.Context, id string, a policy.Answer) error
}

// CastSink receives the agent's terminal for the session record (asciicast v2
// "o", "r" and "m" events). Implementations must not block for long and must
// not keep p after returning: the host reuses its buffer. The methods are
// called from different goroutines (output, resize, prompt commands), so an
// implementation must be safe for concurrent use. RunAgent calls WriteResize
// once before any output with the starting size, and WriteMarker when a
// request is announced ("approval ID needed: SQL") and when it is answered
// from the prompt ("approval ID: VERDICT by WHO").
type CastSink interface {
	WriteOutput(p []byte)
	WriteResize(cols, rows int)
	WriteMarker(label string)
}
