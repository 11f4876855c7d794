package guard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// kindJudge decides by statement kind; kinds not listed are allowed.
type kindJudge map[sql.Kind]policy.Action

func (j kindJudge) Evaluate(in policy.Input) policy.Decision {
	a, ok := j[in.Statement.Kind]
	if !ok {
		return policy.Decision{Action: policy.Allow, Rule: "default"}
	}
	return policy.Decision{Action: a, Rule: "no-" + string(in.Statement.Kind), Reasons: []string{strings.ToUpper(string(in.Statement.Kind)) + " is " + string(a) + "d here"}}
}

type fakeApprover struct {
	mu    sync.Mutex
	asked []policy.ApprovalRequest
	ans   policy.Answer
}

func (a *fakeApprover) Approve(ctx context.Context, req policy.ApprovalRequest) (policy.Answer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, req)
	return a.ans, nil
}

type memRecorder struct {
	mu     sync.Mutex
	events []recorder.Event
}

func (r *memRecorder) Record(ev recorder.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *memRecorder) statements() []recorder.Statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorder.Statement
	for _, e := range r.events {
		if s, ok := e.(recorder.Statement); ok {
			out = append(out, s)
		}
	}
	return out
}

func newTestGuard(t *testing.T, j Judge, ap tunnel.Approver) (*Guard, *memRecorder, pg.ConnHooks) {
	t.Helper()
	m, err := mask.New(mask.DefaultConfig(), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	g := New(Options{Connection: "app", Judge: j, Classifier: sql.NewClassifier(64), Approver: ap, Masker: PolicyMasker(m), Recorder: rec,
		Identity: policy.Identity{Email: "jane@example.com"}})
	ch := g.Open(context.Background(), pg.ConnInfo{ID: 7})
	return g, rec, ch
}

func TestAllowDenyAndMultiStatement(t *testing.T) {
	_, rec, ch := newTestGuard(t, kindJudge{"delete": policy.Deny}, &fakeApprover{})
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "select 1"}); v.Action != pg.Forward {
		t.Fatalf("select: %+v", v)
	}
	v := ch.Inspect(context.Background(), pg.Query{Seq: 2, SQL: "select 1; delete from users"})
	if v.Action != pg.Refuse || v.Code != "42501" {
		t.Fatalf("multi with delete: %+v", v)
	}
	if !strings.Contains(v.Message, "guardrun: denied by policy rule no-delete: DELETE is denyd here") {
		t.Errorf("message = %q", v.Message)
	}
	if v.Detail == "" {
		t.Errorf("multi-statement refusal should say nothing ran")
	}
	st := rec.statements()
	if len(st) != 3 || st[2].Decision != "deny" || st[1].Decision != "allow" {
		t.Errorf("recorded %+v", st)
	}
}

func TestApproveAsksAndFollowsTheAnswer(t *testing.T) {
	ap := &fakeApprover{ans: policy.Answer{Verdict: policy.VerdictApproveOnce, By: "jane@example.com", Via: "prompt"}}
	_, _, ch := newTestGuard(t, kindJudge{"update": policy.Approve}, ap)
	v := ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "update users set email = 'bob@example.com'"})
	if v.Action != pg.Forward {
		t.Fatalf("approved update refused: %+v", v)
	}
	if len(ap.asked) != 1 {
		t.Fatalf("asked %d times", len(ap.asked))
	}
	req := ap.asked[0]
	if strings.Contains(req.SQL, "bob@example.com") {
		t.Errorf("approval request carries an unmasked email: %q", req.SQL)
	}
	if req.Rule != "no-update" || req.Connection != "app" || req.User != "jane@example.com" || req.Shape == "" {
		t.Errorf("request = %+v", req)
	}
	if !req.Deadline.After(req.Asked) {
		t.Errorf("deadline %v not after asked %v", req.Deadline, req.Asked)
	}

	ap.ans = policy.Answer{Verdict: policy.VerdictDeny, By: "jane@example.com", Via: "prompt", Message: "archive them first"}
	v = ch.Inspect(context.Background(), pg.Query{Seq: 2, SQL: "update users set plan = 'pro'"})
	if v.Action != pg.Refuse || v.Message != "guardrun: denied by jane@example.com: archive them first" {
		t.Errorf("human deny: %+v", v)
	}
	ap.ans = policy.Answer{Verdict: policy.VerdictDeny, By: "timeout", Via: tunnel.ViaTimeout}
	v = ch.Inspect(context.Background(), pg.Query{Seq: 3, SQL: "update users set plan = 'pro'"})
	if v.Action != pg.Refuse || !strings.Contains(v.Message, "no one approved within 2m0s") {
		t.Errorf("timeout deny: %+v", v)
	}
}

func TestSQLPrepareExecuteJudgedByInner(t *testing.T) {
	_, _, ch := newTestGuard(t, kindJudge{"delete": policy.Deny}, &fakeApprover{})
	// PREPARE is judged by what it prepares.
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "prepare d as delete from users"}); v.Action != pg.Refuse {
		t.Errorf("prepare of a denied delete forwarded: %+v", v)
	}
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 2, SQL: "prepare s as select 1"}); v.Action != pg.Forward {
		t.Fatalf("prepare select refused: %+v", v)
	}
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 3, SQL: "execute s"}); v.Action != pg.Forward {
		t.Errorf("execute of an allowed statement refused: %+v", v)
	}
}

func TestFunctionCallRefusedUnlessAllowed(t *testing.T) {
	_, _, ch := newTestGuard(t, kindJudge{"function_call": policy.Approve}, &fakeApprover{ans: policy.Answer{Verdict: policy.VerdictApproveOnce}})
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 1, Kind: pg.FunctionCallMessage, Function: 1234}); v.Action != pg.Refuse {
		t.Errorf("FunctionCall forwarded without an allow rule: %+v", v)
	}
}

func TestResultsAreMaskedCountedAndRecorded(t *testing.T) {
	_, rec, ch := newTestGuard(t, kindJudge{}, &fakeApprover{})
	ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "select id, email from users"})
	f := ch.StartResult(pg.ResultInfo{Seq: 1, Fields: []pg.Field{{Name: "id", TypeOID: 23}, {Name: "email", TypeOID: 25}}})
	row := [][]byte{[]byte("1"), []byte("bob@example.com")}
	f.Row(row)
	if strings.Contains(string(row[1]), "bob@") {
		t.Errorf("email not masked: %q", row[1])
	}
	if string(row[0]) != "1" {
		t.Errorf("id changed: %q", row[0])
	}
	f.End("SELECT 1", "")
	var res *recorder.Result
	for _, e := range rec.events {
		if r, ok := e.(recorder.Result); ok {
			res = &r
		}
	}
	if res == nil || res.Rows != 1 || res.Masked["email"] != 1 || res.Seq != 1 {
		t.Fatalf("result event = %+v", res)
	}
	msg := &pg.ServerMessage{Message: "duplicate key", Detail: "Key (email)=(bob@example.com) already exists."}
	ch.ServerError(msg, false)
	if strings.Contains(msg.Detail, "bob@example.com") {
		t.Errorf("error detail not masked: %q", msg.Detail)
	}
	if p := ch.Notification("ch", "token ghp_0123456789abcdefghijABCDEFGHIJ012345"); strings.Contains(p, "ghp_0123") {
		t.Errorf("notify payload not masked: %q", p)
	}
}

func TestCopyFormatOf(t *testing.T) {
	tests := []struct {
		in   string
		want mask.CopyFormat
	}{
		{"COPY users TO STDOUT", mask.CopyFormat{}},
		{"copy (select 1) to stdout with (format csv, header)", mask.CopyFormat{CSV: true}},
		{"COPY csv_table TO STDOUT", mask.CopyFormat{}},
	}
	for _, tt := range tests {
		if got := copyFormatOf(tt.in); got.CSV != tt.want.CSV {
			t.Errorf("copyFormatOf(%q) = %+v, want CSV %v", tt.in, got, tt.want.CSV)
		}
	}
	if !binaryCopyOut("COPY users TO STDOUT (FORMAT binary)") || binaryCopyOut("COPY users TO STDOUT (FORMAT csv)") {
		t.Errorf("binaryCopyOut is wrong")
	}
}

func TestBinaryCopyOutRefusedWhenMasking(t *testing.T) {
	_, _, ch := newTestGuard(t, kindJudge{}, &fakeApprover{})
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "copy users to stdout with (format binary)"}); v.Action != pg.Refuse {
		t.Errorf("binary COPY out forwarded: %+v", v)
	}
	if v := ch.Inspect(context.Background(), pg.Query{Seq: 2, SQL: "copy users to stdout with (format csv)"}); v.Action != pg.Forward {
		t.Errorf("csv COPY out refused: %+v", v)
	}
}

func TestTagRows(t *testing.T) {
	for tag, want := range map[string]int64{"SELECT 10": 10, "INSERT 0 3": 3, "UPDATE 2": 2, "COPY 5": 5, "BEGIN": -1} {
		n, ok := tagRows(tag)
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("tagRows(%q) = %d, %v", tag, n, ok)
		}
	}
}

type failingRecorder struct{}

func (failingRecorder) Record(recorder.Event) error { return errors.New("disk full") }

func TestUnrecordableStatementIsRefused(t *testing.T) {
	g := New(Options{Connection: "app", Judge: kindJudge{}, Classifier: sql.NewClassifier(8), Approver: &fakeApprover{}, Recorder: failingRecorder{}})
	ch := g.Open(context.Background(), pg.ConnInfo{ID: 1})
	v := ch.Inspect(context.Background(), pg.Query{Seq: 1, SQL: "select 1"})
	if v.Action != pg.Refuse || !strings.Contains(v.Message, "session record cannot be written") {
		t.Fatalf("statement ran although it could not be recorded: %+v", v)
	}
}
