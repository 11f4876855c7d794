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
	// one returns an error that wraps ErrAlreadyAnswered.
	Answer(ctx context.Context, id string, a policy.Answer) error
}

// CastSink receives the agent's terminal for the session record (asciicast v2
// "o", "r" and "m" events). Implementations must not block for long and must
// not keep p after returning: the host reuses its buffer.
type CastSink interface {
	WriteOutput(p []byte)
	WriteResize(cols, rows int)
	WriteMarker(label string)
}
