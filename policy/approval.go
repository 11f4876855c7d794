package policy

import "time"

// ApprovalRequest is what a human sees when a statement is held. It is plain
// data: the tunnel builds it, an approver (the inline prompt, `guardrun
// approvals`) shows it. SQL is already masked; it never carries a secret.
type ApprovalRequest struct {
	ID         string    `json:"id"`         // unique within the session
	Session    string    `json:"session"`    // session id
	Agent      string    `json:"agent"`      // the command guardrun runs ("claude"), or "connect"
	Connection string    `json:"connection"` // connection name ("app")
	ConnType   string    `json:"conn_type"`  // "postgres"
	User       string    `json:"user"`       // who runs the session (email or local user)
	SQL        string    `json:"sql"`        // masked statement text
	Summary    []string  `json:"summary"`    // classification in words: "writes public.orders"
	Rule       string    `json:"rule"`       // the deciding rule
	Reasons    []string  `json:"reasons"`    // why it needs approval, in words
	Shape      string    `json:"shape"`      // fingerprint: what "approve for this session" approves
	Asked      time.Time `json:"asked"`
	Deadline   time.Time `json:"deadline"` // no answer by then = deny
}

// Verdict is a human's (or the clock's) answer to an ApprovalRequest.
type Verdict string

const (
	VerdictDeny           Verdict = "deny"
	VerdictApproveOnce    Verdict = "approve_once"
	VerdictApproveSession Verdict = "approve_session" // this statement shape, for the rest of the session
)

// Answer resolves an ApprovalRequest. The first answer wins.
type Answer struct {
	Verdict Verdict `json:"verdict"`
	By      string  `json:"by"`                // who answered: an email, a local user, or "timeout"/"nobody"
	Via     string  `json:"via"`               // "prompt", "approvals", "timeout", "nobody"
	Message string  `json:"message,omitempty"` // returned to the agent with a deny
}

// Approved reports whether the answer lets the statement through.
func (a Answer) Approved() bool {
	return a.Verdict == VerdictApproveOnce || a.Verdict == VerdictApproveSession
}
