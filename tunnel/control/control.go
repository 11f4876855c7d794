// Package control is a running session's control socket: how `guardrun
// approvals` in another terminal sees the session's held statements and
// answers them.
//
// Rules kept here:
//   - One Unix socket per session, <session-id>.sock, in the user's runtime
//     directory. The directory is 0700 and owned by the user, the socket 0600;
//     on Linux and macOS the peer's uid is checked as well, and a peer of
//     another user is hung up on without a word.
//   - The socket is removed when the session ends; a socket nobody listens on
//     any more (a session that crashed) is removed by whoever finds it.
//   - The protocol is newline-delimited JSON, one object per line. The server
//     greets with {"type":"hello","session":{...}}. A client sends
//     {"op":"subscribe"} to receive {"type":"pending","pending":[...]} with the
//     full list on every change, and {"op":"answer","seq":N,"id":"...",
//     "answer":{...}} to get {"type":"result","seq":N,"error":""}.
//   - An answer that does not say who gave it is recorded as given by the
//     peer's local user name.
package control

import (
	"errors"
	"fmt"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tunnel"
)

// ProtocolVersion is sent in the hello; a client refuses a newer major one.
const ProtocolVersion = 1

// SocketSuffix ends every control socket's file name.
const SocketSuffix = ".sock"

// maxLine caps one protocol line (a pending list of long statements).
const maxLine = 8 << 20

// handshakeTimeout bounds dialing and reading the hello.
const handshakeTimeout = 3 * time.Second

// SessionInfo says which session a socket belongs to.
type SessionInfo struct {
	ID      string    `json:"id"`
	Agent   string    `json:"agent"` // "claude", "connect", ...
	User    string    `json:"user"`  // who runs the session
	Started time.Time `json:"started"`
	PID     int       `json:"pid,omitempty"`
}

// Endpoint is one live session found in the runtime directory.
type Endpoint struct {
	Path    string
	Session SessionInfo
}

// Errors of this package. Answer errors are tunnel's (ErrAlreadyAnswered,
// ErrUnknownRequest, ErrInvalidAnswer) so callers test one set.
var (
	// ErrSessionRunning: Listen found the socket path served by a live session.
	ErrSessionRunning = errors.New("a session is already listening on this control socket")
	// ErrUnsafeDir: the runtime directory is not a directory owned by this user.
	ErrUnsafeDir = errors.New("control socket directory is not private to this user")
	// ErrClosed: the connection to the session ended (the session is over).
	ErrClosed = errors.New("control connection closed")
	// ErrProtocol: the peer spoke something this package does not understand.
	ErrProtocol = errors.New("control protocol error")
)

// Wire messages.

type request struct {
	Op     string         `json:"op"` // "subscribe", "answer"
	Seq    uint64         `json:"seq,omitempty"`
	ID     string         `json:"id,omitempty"`
	Answer *policy.Answer `json:"answer,omitempty"`
}

type reply struct {
	Type    string                   `json:"type"` // "hello", "pending", "result"
	Version int                      `json:"version,omitempty"`
	Session *SessionInfo             `json:"session,omitempty"`
	Pending []policy.ApprovalRequest `json:"pending,omitempty"`
	Seq     uint64                   `json:"seq,omitempty"`
	Error   string                   `json:"error,omitempty"` // an error code below, or text
}

// Error codes in a result.
const (
	codeAlreadyAnswered = "already_answered"
	codeUnknownRequest  = "unknown_request"
	codeInvalidAnswer   = "invalid_answer"
	codeBadRequest      = "bad_request"
)

func errorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, tunnel.ErrAlreadyAnswered):
		return codeAlreadyAnswered
	case errors.Is(err, tunnel.ErrUnknownRequest):
		return codeUnknownRequest
	case errors.Is(err, tunnel.ErrInvalidAnswer):
		return codeInvalidAnswer
	default:
		return err.Error()
	}
}

func codeError(code, id string) error {
	switch code {
	case "":
		return nil
	case codeAlreadyAnswered:
		return fmt.Errorf("%w: %s", tunnel.ErrAlreadyAnswered, id)
	case codeUnknownRequest:
		return fmt.Errorf("%w: %s", tunnel.ErrUnknownRequest, id)
	case codeInvalidAnswer:
		return fmt.Errorf("%w: %s", tunnel.ErrInvalidAnswer, id)
	default:
		return fmt.Errorf("%w: %s", ErrProtocol, code)
	}
}
