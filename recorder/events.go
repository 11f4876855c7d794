package recorder

import "time"

// Event is one thing that happened in a session. The recorder adds seq,
// time, type, prev and hash; an event's own JSON fields sit next to them at
// the top level of its line, so no event has a field named seq, time, type,
// prev or hash.
type Event interface {
	// EventType is the line's "type".
	EventType() string
}

// Event types, as written in each line's "type".
const (
	TypeSessionStart      = "session_start"
	TypeTunnelOpen        = "tunnel_open"
	TypeTunnelClose       = "tunnel_close"
	TypeConnOpen          = "conn_open"
	TypeConnClose         = "conn_close"
	TypeAuthFailure       = "auth_failure"
	TypeStatement         = "statement"
	TypeApprovalRequested = "approval_requested"
	TypeApprovalAnswered  = "approval_answered"
	TypeResult            = "result"
	TypeWarning           = "warning"
	TypeCastStart         = "cast_start"
	TypeCheckpoint        = "checkpoint"
	TypeSessionEnd        = "session_end"
)

// Identity is who ran the session, as the caller established it.
type Identity struct {
	Issuer   string   `json:"issuer,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Verified bool     `json:"verified"`         // true only when SSO verified it
	Method   string   `json:"method,omitempty"` // "sso" or "local"
}

// Who is the shortest useful name for the identity: email, name, subject.
func (i Identity) Who() string {
	switch {
	case i.Email != "":
		return i.Email
	case i.Name != "":
		return i.Name
	default:
		return i.Subject
	}
}

// Start describes a session as it begins. It becomes the first line of the
// record (type session_start).
type Start struct {
	Identity          Identity `json:"identity"`
	Command           []string `json:"command,omitempty"` // the agent's argv, or ["connect", NAME]
	Agent             string   `json:"agent,omitempty"`   // "claude", "connect"
	WorkDir           string   `json:"workdir,omitempty"`
	GitCommit         string   `json:"git_commit,omitempty"`
	Host              string   `json:"host,omitempty"`
	Version           string   `json:"version,omitempty"` // guardrun's version
	PolicyDigest      string   `json:"policy_digest,omitempty"`
	PolicyDescription string   `json:"policy_description,omitempty"` // "guardrun.yaml (baseline + 4 rules)"
	Term              string   `json:"term,omitempty"`               // the user's TERM, for the cast header
}

// SessionStart is the first line of every record. The recorder writes it.
type SessionStart struct {
	Start
	Session   string `json:"session"`
	PublicKey string `json:"public_key,omitempty"` // hex ed25519 key that will sign the seal; "" = unsigned
	Format    int    `json:"format"`               // record format version (1)
}

// TunnelOpen: a loopback tunnel started listening.
type TunnelOpen struct {
	Connection string `json:"connection"`
	ConnType   string `json:"conn_type"` // "postgres"
	Listen     string `json:"listen"`    // 127.0.0.1:54012
	Upstream   string `json:"upstream"`  // host:port/db only, never a credential
}

// TunnelClose: a tunnel stopped.
type TunnelClose struct {
	Connection string `json:"connection"`
	Error      string `json:"error,omitempty"`
}

// ConnOpen: a client connected and authenticated to a tunnel.
type ConnOpen struct {
	Connection  string `json:"connection"`
	ConnID      uint64 `json:"conn_id"`
	Application string `json:"application,omitempty"`
	User        string `json:"user,omitempty"`
	Database    string `json:"database,omitempty"`
	Remote      string `json:"remote,omitempty"`
}

// ConnClose: a client connection ended.
type ConnClose struct {
	Connection string `json:"connection"`
	ConnID     uint64 `json:"conn_id"`
	Error      string `json:"error,omitempty"`
}

// AuthFailure: a client presented a wrong per-session credential.
type AuthFailure struct {
	Connection string `json:"connection"`
	Remote     string `json:"remote,omitempty"`
	User       string `json:"user,omitempty"`
	Reason     string `json:"reason"`
}

// Statement: one statement, classified and judged. SQL is already masked.
type Statement struct {
	Connection string   `json:"connection"`
	ConnID     uint64   `json:"conn_id"`
	Seq        uint64   `json:"query_seq"` // the tunnel's per-connection query number
	Index      int      `json:"index"`     // statement index within a multi-statement Query
	SQL        string   `json:"sql"`
	Kind       string   `json:"kind,omitempty"`
	Object     string   `json:"object,omitempty"`
	Reads      []string `json:"reads,omitempty"`
	Writes     []string `json:"writes,omitempty"`
	Functions  []string `json:"functions,omitempty"`
	Flags      []string `json:"flags,omitempty"`
	Decision   string   `json:"decision"` // allow, deny, approve
	Rule       string   `json:"rule,omitempty"`
	Rules      []string `json:"rules,omitempty"`
	Reasons    []string `json:"reasons,omitempty"`
	Protocol   string   `json:"protocol,omitempty"` // "simple", "extended", "function"
}

// ApprovalRequested: a statement is held for a human.
type ApprovalRequested struct {
	ID         string    `json:"approval"`
	Connection string    `json:"connection"`
	ConnID     uint64    `json:"conn_id"`
	Seq        uint64    `json:"query_seq"`
	SQL        string    `json:"sql"`
	Rule       string    `json:"rule,omitempty"`
	Reasons    []string  `json:"reasons,omitempty"`
	Deadline   time.Time `json:"deadline"`
}

// ApprovalAnswered: the held statement's answer (the first one wins).
type ApprovalAnswered struct {
	ID      string        `json:"approval"`
	Verdict string        `json:"verdict"` // deny, approve_once, approve_session
	By      string        `json:"by"`
	Via     string        `json:"via"` // prompt, approvals, timeout, nobody
	Message string        `json:"message,omitempty"`
	Waited  time.Duration `json:"waited_ns"`
}

// Result: a command's outcome as the client saw it.
type Result struct {
	Connection string        `json:"connection"`
	ConnID     uint64        `json:"conn_id"`
	Seq        uint64        `json:"query_seq"`
	Index      int           `json:"index"`
	Tag        string        `json:"tag,omitempty"` // "SELECT 10"
	Rows       int64         `json:"rows"`
	SQLState   string        `json:"sqlstate,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	// Masked counts the values masked in this result by detector or rule
	// ("email", "card"); its sum is the number of values masked.
	// MaskedColumns counts the same values by column ("public.users.email").
	Masked        map[string]int `json:"masked,omitempty"`
	MaskedColumns map[string]int `json:"masked_columns,omitempty"`
}

// Warning: something a reader of the record should know (a store hiccup,
// a secret left in .env, ...).
type Warning struct {
	Message string `json:"message"`
}

// CastStart: the terminal cast began; cast time 0 is this line's time.
type CastStart struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Checkpoint binds the terminal cast as it is on disk so far: its first
// CastBytes bytes hash to CastSHA256. The recorder writes these itself.
type Checkpoint struct {
	CastBytes  int64  `json:"cast_bytes"`
	CastSHA256 string `json:"cast_sha256"`
}

// SessionEnd is the last event of a cleanly closed session.
type SessionEnd struct {
	ExitCode int    `json:"exit_code"`
	Reason   string `json:"reason,omitempty"`
}

func (SessionStart) EventType() string      { return TypeSessionStart }
func (TunnelOpen) EventType() string        { return TypeTunnelOpen }
func (TunnelClose) EventType() string       { return TypeTunnelClose }
func (ConnOpen) EventType() string          { return TypeConnOpen }
func (ConnClose) EventType() string         { return TypeConnClose }
func (AuthFailure) EventType() string       { return TypeAuthFailure }
func (Statement) EventType() string         { return TypeStatement }
func (ApprovalRequested) EventType() string { return TypeApprovalRequested }
func (ApprovalAnswered) EventType() string  { return TypeApprovalAnswered }
func (Result) EventType() string            { return TypeResult }
func (Warning) EventType() string           { return TypeWarning }
func (CastStart) EventType() string         { return TypeCastStart }
func (Checkpoint) EventType() string        { return TypeCheckpoint }
func (SessionEnd) EventType() string        { return TypeSessionEnd }

// newEvent returns a zero event of the given type, for decoding.
func newEvent(typ string) Event {
	switch typ {
	case TypeSessionStart:
		return &SessionStart{}
	case TypeTunnelOpen:
		return &TunnelOpen{}
	case TypeTunnelClose:
		return &TunnelClose{}
	case TypeConnOpen:
		return &ConnOpen{}
	case TypeConnClose:
		return &ConnClose{}
	case TypeAuthFailure:
		return &AuthFailure{}
	case TypeStatement:
		return &Statement{}
	case TypeApprovalRequested:
		return &ApprovalRequested{}
	case TypeApprovalAnswered:
		return &ApprovalAnswered{}
	case TypeResult:
		return &Result{}
	case TypeWarning:
		return &Warning{}
	case TypeCastStart:
		return &CastStart{}
	case TypeCheckpoint:
		return &Checkpoint{}
	case TypeSessionEnd:
		return &SessionEnd{}
	}
	return nil
}
