// Package policy turns (identity, connection, statement classification)
// into a Decision: allow, deny or approve, naming the rules that decided and
// reasons a human reads in two seconds. Pure: no I/O, no clock.
package policy

import (
	"time"

	"github.com/guardrun/guardrun/policy/sql"
)

// Action is a decision's verb. Deny is more restrictive than Approve, which
// is more restrictive than Allow; the most restrictive matching rule wins.
type Action string

const (
	Allow   Action = "allow"
	Approve Action = "approve"
	Deny    Action = "deny"
)

// Rank orders actions by how restrictive they are: allow 0, approve 1,
// deny 2.
func (a Action) Rank() int {
	switch a {
	case Deny:
		return 2
	case Approve:
		return 1
	}
	return 0
}

// Identity is who runs the session.
type Identity struct {
	Issuer   string   `json:"issuer,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Verified bool     `json:"verified"` // true only when SSO verified it
}

// Who is the shortest useful name for the identity: email, name, subject.
func (i Identity) Who() string {
	switch {
	case i.Email != "":
		return i.Email
	case i.Name != "":
		return i.Name
	}
	return i.Subject
}

// Input is one statement to judge.
type Input struct {
	Connection string // connection name
	ConnType   string // "postgres"
	Identity   Identity
	Statement  sql.Statement
}

// Decision is the policy's verdict on one statement.
type Decision struct {
	Action  Action        `json:"action"`
	Rule    string        `json:"rule"`              // the deciding rule ("default" when none matched)
	Rules   []string      `json:"rules,omitempty"`   // every rule that matched
	Reasons []string      `json:"reasons,omitempty"` // in words: "DELETE on public.users has no WHERE clause"
	Message string        `json:"message,omitempty"` // the rule's message for the agent
	Timeout time.Duration `json:"timeout,omitempty"` // for Approve: how long to wait for a human
}
