package tui

import "errors"

// ErrAlreadyAnswered is what a Queue's Answer wraps when another answer (from
// another terminal, or the clock) resolved the request first. The views show
// "already answered" and move on.
var ErrAlreadyAnswered = errors.New("already answered")
