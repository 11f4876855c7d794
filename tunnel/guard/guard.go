// Package guard is where a tunnel's protocol seam meets guardrun's
// judgement: it implements tunnel/pg's hooks with the statement classifier,
// the policy, the approver, the masker and the session recorder.
//
// Rules kept here:
//   - Fail closed: a statement is forwarded only when the policy allows it
//     or a human approved it; anything that cannot be classified is judged
//     as unknown, and an error while judging refuses.
//   - Every statement of a multi-statement text is judged before any of it
//     is forwarded; one refusal refuses the whole text.
//   - Nothing unmasked is recorded: statement text, error text and
//     notifications pass through the masker before they are written.
//   - Only the asking connection waits for a human.
package guard

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// SQLSTATE codes the guard answers with.
const (
	CodeDenied = "42501" // insufficient_privilege: refused by policy or a human
)

// Judge is what the guard needs of a policy.
type Judge interface {
	Evaluate(in policy.Input) policy.Decision
}

// Classifier is what the guard needs of the statement classifier.
type Classifier interface {
	Classify(text string) []sql.Statement
}

// Recorder is what the guard needs of the session record.
type Recorder interface {
	Record(ev recorder.Event) error
}

// Masker masks values in results and text before it reaches the client or
// the record.
type Masker interface {
	// Text masks free text (statement text, error messages, payloads) and
	// counts what it masked by detector.
	Text(s string) (string, map[string]int)
	// Plan prepares masking for one result set; nil means no column can
	// hold anything to mask.
	Plan(fields []pg.Field) RowMasker
}

// RowMasker masks the rows of one result set.
type RowMasker interface {
	Row(values [][]byte)
	CopyData(data []byte) []byte
	Counts() map[string]int
}

// Activity is one line of a tunnel's live log (guardrun connect shows it).
type Activity struct {
	Time       time.Time
	Connection string
	ConnID     uint64
	SQL        string // masked, as recorded
	Decision   string // allow, deny, held, approved, denied-by-human, error
	Rows       int64
	Masked     int
	Tag        string
	SQLState   string
	Done       bool // a result (true) or a decision (false)
}

// Options configure a Guard. Connection, Judge, Classifier and Approver are
// required; the rest have working zero values.
type Options struct {
	Connection string          // connection name ("app")
	ConnType   string          // "postgres"
	Session    string          // session id
	Agent      string          // "claude", "connect"
	Identity   policy.Identity // who runs the session
	Judge      Judge
	Classifier Classifier
	Approver   tunnel.Approver
	Timeout    time.Duration // approval timeout; 2m when zero
	Masker     Masker        // nil: nothing is masked
	Recorder   Recorder      // nil: nothing is recorded
	Now        func() time.Time
	Logger     *slog.Logger
	OnActivity func(Activity) // nil: no live log
	// Catalog names the columns of COPY ... TO STDOUT so that column rules
	// apply to COPY data; nil: COPY data is scanned by the detectors only.
	Catalog *Catalog
}

// Guard implements pg.Hooks for one tunnel.
type Guard struct {
	o         Options
	approvals atomic.Uint64
}

// New returns a Guard; it panics on a missing required option, a
// programming error.
func New(o Options) *Guard {
	if o.Judge == nil || o.Classifier == nil || o.Approver == nil {
		panic("guard: Judge, Classifier and Approver are required")
	}
	if o.ConnType == "" {
		o.ConnType = "postgres"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return &Guard{o: o}
}

// Open implements pg.Hooks.
func (g *Guard) Open(ctx context.Context, c pg.ConnInfo) pg.ConnHooks {
	cg := &connGuard{g: g, info: c, prepared: map[string]sql.Statement{}, pending: map[uint64]*pendingStmt{}}
	g.record(recorder.ConnOpen{Connection: g.o.Connection, ConnID: c.ID, Application: c.Application, User: c.User, Database: c.Database, Remote: c.Remote})
	return cg
}

func (g *Guard) record(ev recorder.Event) error {
	if g.o.Recorder == nil {
		return nil
	}
	err := g.o.Recorder.Record(ev)
	if err != nil {
		g.o.Logger.Error("recording failed", "type", ev.EventType(), "err", err)
	}
	return err
}

func (g *Guard) activity(a Activity) {
	if g.o.OnActivity != nil {
		a.Connection = g.o.Connection
		if a.Time.IsZero() {
			a.Time = g.o.Now()
		}
		g.o.OnActivity(a)
	}
}

func (g *Guard) maskText(s string) string {
	if g.o.Masker == nil || s == "" {
		return s
	}
	out, _ := g.o.Masker.Text(s)
	return out
}

// pendingStmt is what the result side needs to know about a Query or Parse.
type pendingStmt struct {
	sql     []string   // masked text per statement index
	raw     []string   // COPY statements' own text, for their options (never recorded)
	cols    [][]string // COPY TO STDOUT column names per statement index
	timed   bool       // its first result took started as its start (guarded by mu)
	started time.Time
}

// connGuard is one connection's hooks. Inspect runs on the client-to-server
// goroutine, the result methods on the server-to-client one; mu guards what
// both touch.
type connGuard struct {
	g    *Guard
	info pg.ConnInfo

	prepared map[string]sql.Statement // SQL-level PREPARE name -> inner statement (Inspect side only)

	mu      sync.Mutex
	pending map[uint64]*pendingStmt // by Query.Seq
	order   []uint64                // pending's keys, oldest first
}

// maxPending bounds what a connection remembers of its statements.
const maxPending = 1024

// Close implements pg.ConnHooks.
func (c *connGuard) Close(err error) {
	ev := recorder.ConnClose{Connection: c.g.o.Connection, ConnID: c.info.ID}
	if err != nil {
		ev.Error = c.g.maskText(err.Error())
	}
	c.g.record(ev)
}

// Inspect implements pg.Inspector.
func (c *connGuard) Inspect(ctx context.Context, q pg.Query) pg.Verdict {
	g := c.g
	if q.Kind == pg.FunctionCallMessage {
		return c.inspectFunctionCall(ctx, q)
	}
	stmts := g.o.Classifier.Classify(q.SQL)
	if len(stmts) == 0 {
		return pg.Verdict{Action: pg.Forward} // empty query: the server answers EmptyQueryResponse
	}
	protocol := "simple"
	if q.Kind == pg.ParseMessage {
		protocol = "extended"
	}
	decisions := make([]policy.Decision, len(stmts))
	masked := make([]string, len(stmts))
	worst := -1
	for i, st := range stmts {
		judged := st
		if st.Kind == "prepare" && st.Inner != nil {
			judged = *st.Inner // PREPARE is judged by what it prepares
		}
		if st.Kind == "execute" && st.Name != "" {
			// SQL-level EXECUTE runs what PREPARE stored: judge that.
			if inner, ok := c.prepared[st.Name]; ok {
				judged = inner
			}
		}
		d := g.o.Judge.Evaluate(policy.Input{Connection: g.o.Connection, ConnType: g.o.ConnType, Identity: g.o.Identity, Statement: judged})
		decisions[i] = d
		masked[i] = g.maskText(st.Text)
		if worst < 0 || d.Action.Rank() > decisions[worst].Action.Rank() {
			worst = i
		}
		if err := g.record(statementEvent(g.o.Connection, c.info.ID, q.Seq, i, masked[i], judged, d, protocol)); err != nil {
			// Fail closed: what cannot be recorded is not run.
			g.activity(Activity{ConnID: c.info.ID, SQL: masked[i], Decision: "deny"})
			return pg.Verdict{Action: pg.Refuse, Code: CodeDenied,
				Message: "guardrun: refused: the session record cannot be written, so no statement runs",
				Hint:    "free space or fix the session store (recording.dir), then start a new session"}
		}
	}
	d := decisions[worst]
	var oneLine string // the live log's line; built only for a live log
	if g.o.OnActivity != nil {
		oneLine = strings.Join(masked, "; ")
	}
	if g.o.Masker != nil {
		for _, st := range stmts {
			if st.Kind == "copy" && binaryCopyOut(st.Text) {
				// Fail closed: binary COPY data cannot be masked.
				g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "deny"})
				return pg.Verdict{Action: pg.Refuse, Code: CodeDenied,
					Message: "guardrun: denied: COPY TO STDOUT in the binary format cannot be masked",
					Hint:    "use the text or CSV format (COPY ... TO STDOUT WITH (FORMAT csv))"}
			}
		}
	}
	switch d.Action {
	case policy.Allow:
		c.track(ctx, q.Seq, masked, copyTexts(stmts))
		c.remember(stmts)
		g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "allow"})
		return pg.Verdict{Action: pg.Forward}
	case policy.Deny:
		g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "deny"})
		return denyVerdict(d, stmts[worst], len(stmts) > 1)
	}
	// Approve: ask a human, this connection alone waits.
	g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "held"})
	req := c.request(q, stmts, decisions, masked, worst)
	ans, err := g.o.Approver.Approve(ctx, req)
	if err != nil && ans.Verdict == "" {
		ans = policy.Answer{Verdict: policy.VerdictDeny, By: "guardrun", Via: "error", Message: "approval failed: " + err.Error()}
	}
	if ans.Approved() {
		c.track(ctx, q.Seq, masked, copyTexts(stmts))
		c.remember(stmts)
		g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "approved"})
		return pg.Verdict{Action: pg.Forward}
	}
	g.activity(Activity{ConnID: c.info.ID, SQL: oneLine, Decision: "denied"})
	return humanDenyVerdict(d, ans, g.o.Timeout)
}

func (c *connGuard) inspectFunctionCall(ctx context.Context, q pg.Query) pg.Verdict {
	g := c.g
	st := sql.Statement{Kind: "function_call", Object: fmt.Sprintf("oid %d", q.Function), Flags: []sql.Flag{sql.FlagUnknown},
		Text: fmt.Sprintf("-- FunctionCall message for function oid %d", q.Function)}
	d := g.o.Judge.Evaluate(policy.Input{Connection: g.o.Connection, ConnType: g.o.ConnType, Identity: g.o.Identity, Statement: st})
	g.record(statementEvent(g.o.Connection, c.info.ID, q.Seq, 0, st.Text, st, d, "function"))
	if d.Action == policy.Allow {
		c.track(ctx, q.Seq, []string{st.Text}, nil)
		return pg.Verdict{Action: pg.Forward}
	}
	g.activity(Activity{ConnID: c.info.ID, SQL: st.Text, Decision: "deny"})
	return pg.Verdict{Action: pg.Refuse, Code: CodeDenied,
		Message: "guardrun: denied: the FunctionCall protocol message is refused unless a policy rule allows it",
		Hint:    "call the function with SELECT instead, or allow kind function_call in guardrun.yaml"}
}

// remember keeps SQL-level PREPAREd statements so that EXECUTE is judged by
// what it runs.
func (c *connGuard) remember(stmts []sql.Statement) {
	for _, st := range stmts {
		switch st.Kind {
		case "prepare":
			if st.Name != "" && st.Inner != nil {
				c.prepared[st.Name] = *st.Inner
			}
		case "deallocate":
			if st.Name == "" {
				clear(c.prepared)
			} else {
				delete(c.prepared, st.Name)
			}
		}
	}
}

// copyTexts keeps the text of COPY statements (their options decide how
// COPY data is split into fields); nil when there is none.
func copyTexts(stmts []sql.Statement) []string {
	var out []string
	for i, st := range stmts {
		if st.Kind == "copy" {
			if out == nil {
				out = make([]string, len(stmts))
			}
			out[i] = st.Text
		}
	}
	return out
}

func (c *connGuard) track(ctx context.Context, seq uint64, masked, raw []string) {
	var cols [][]string
	if c.g.o.Catalog != nil && c.g.o.Masker != nil {
		for i, r := range raw {
			if r == "" {
				continue
			}
			names, err := c.g.o.Catalog.CopyColumns(ctx, r)
			if err != nil {
				c.g.o.Logger.Warn("cannot name COPY columns; COPY data is scanned by detectors only", "err", err)
				continue
			}
			if cols == nil {
				cols = make([][]string, len(raw))
			}
			cols[i] = names
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[seq]; !ok {
		// Bounded, oldest out first: a long-lived connection's old simple
		// queries are done, and results of an evicted prepared statement
		// are still recorded, only without their text in the live log.
		if len(c.order) >= maxPending {
			delete(c.pending, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, seq)
	}
	c.pending[seq] = &pendingStmt{sql: masked, raw: raw, cols: cols, started: c.g.o.Now()}
}

func (c *connGuard) request(q pg.Query, stmts []sql.Statement, ds []policy.Decision, masked []string, worst int) policy.ApprovalRequest {
	g := c.g
	now := g.o.Now()
	timeout := ds[worst].Timeout
	if timeout <= 0 {
		timeout = g.o.Timeout
	}
	var summary, reasons, shapes []string
	for i, st := range stmts {
		summary = append(summary, st.Summary()...)
		if ds[i].Action == policy.Approve {
			reasons = append(reasons, ds[i].Reasons...)
		}
		shapes = append(shapes, st.Shape)
	}
	return policy.ApprovalRequest{
		ID:         fmt.Sprintf("%s-%d", g.o.Connection, g.approvals.Add(1)),
		Session:    g.o.Session,
		Agent:      g.o.Agent,
		Connection: g.o.Connection,
		ConnType:   g.o.ConnType,
		User:       g.o.Identity.Who(),
		SQL:        strings.Join(masked, ";\n"),
		Summary:    without(dedupe(summary), reasons),
		Rule:       ds[worst].Rule,
		Reasons:    dedupe(reasons),
		Shape:      strings.Join(shapes, ";"),
		Asked:      now,
		Deadline:   now.Add(timeout),
	}
}

// without drops the lines of in that also appear in drop (a summary line
// the reasons already say).
func without(in, drop []string) []string {
	out := in[:0:0]
	for _, s := range in {
		keep := true
		for _, d := range drop {
			if strings.EqualFold(s, d) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func reasonOf(d policy.Decision) string {
	if len(d.Reasons) > 0 {
		return strings.Join(d.Reasons, "; ")
	}
	return "the policy says " + string(d.Action)
}

func denyVerdict(d policy.Decision, st sql.Statement, multi bool) pg.Verdict {
	msg := fmt.Sprintf("guardrun: denied by policy rule %s: %s", d.Rule, reasonOf(d))
	if d.Message != "" {
		msg += " (" + d.Message + ")"
	}
	v := pg.Verdict{Action: pg.Refuse, Code: CodeDenied, Message: msg,
		Hint: "the statement was not sent to the database; `guardrun policy explain` shows how a statement is judged"}
	if multi {
		v.Detail = "no statement of this query was run: guardrun judges every statement before sending any"
	}
	return v
}

func humanDenyVerdict(d policy.Decision, a policy.Answer, timeout time.Duration) pg.Verdict {
	var msg string
	switch a.Via {
	case tunnel.ViaTimeout:
		msg = fmt.Sprintf("guardrun: denied: no one approved within %s (rule %s: %s)", timeout, d.Rule, reasonOf(d))
	case tunnel.ViaNobody:
		msg = fmt.Sprintf("guardrun: denied: %s (rule %s) needs a human's approval, and nobody could be asked", reasonOf(d), d.Rule)
		return pg.Verdict{Action: pg.Refuse, Code: CodeDenied, Message: msg,
			Hint: "run `guardrun approvals` in another terminal while the session runs, or run guardrun on a terminal to be prompted"}
	default:
		by := a.By
		if by == "" {
			by = "a human"
		}
		msg = "guardrun: denied by " + by
		if a.Message != "" {
			msg += ": " + a.Message
		} else {
			msg += fmt.Sprintf(" (rule %s: %s)", d.Rule, reasonOf(d))
		}
	}
	return pg.Verdict{Action: pg.Refuse, Code: CodeDenied, Message: msg,
		Hint: "the statement was not sent to the database"}
}

func statementEvent(conn string, connID, seq uint64, idx int, masked string, st sql.Statement, d policy.Decision, protocol string) recorder.Statement {
	flags := make([]string, len(st.Flags))
	for i, f := range st.Flags {
		flags[i] = string(f)
	}
	return recorder.Statement{
		Connection: conn, ConnID: connID, Seq: seq, Index: idx, SQL: masked,
		Kind: string(st.Kind), Object: st.Object, Reads: st.Reads, Writes: st.Writes, Functions: st.Functions, Flags: flags,
		Decision: string(d.Action), Rule: d.Rule, Rules: d.Rules, Reasons: d.Reasons, Protocol: protocol,
	}
}
