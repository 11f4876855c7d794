package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tui"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/control"
)

// syncBuffer is an io.Writer that a watching command and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// approvalsFactory is a Factory whose runtime dir is short enough for Unix
// socket paths.
func approvalsFactory(t *testing.T) (*Factory, *syncBuffer, *syncBuffer) {
	t.Helper()
	rt, err := os.MkdirTemp("", "gra")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rt) })
	f, _ := testFactory(t, map[string]string{"XDG_RUNTIME_DIR": rt})
	out, errOut := &syncBuffer{}, &syncBuffer{}
	f.IO.Out, f.IO.ErrOut = out, errOut
	return f, out, errOut
}

type liveSession struct {
	broker *tunnel.Broker
	sub    *tunnel.Subscription // stands in for the session's own prompt
}

// serveSession runs a broker behind a real control socket until the test ends.
func serveSession(t *testing.T, f *Factory, id string) *liveSession {
	t.Helper()
	b := tunnel.NewBroker(tunnel.BrokerOptions{})
	srv, err := control.Listen(control.SocketPath(f.Paths().Runtime, id), b,
		control.SessionInfo{ID: id, Agent: "claude", User: "jane@acme.dev", Started: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx) }()
	sub := b.Subscribe()
	t.Cleanup(func() { cancel(); <-done; sub.Close(); b.Close() })
	return &liveSession{broker: b, sub: sub}
}

type held struct {
	a   policy.Answer
	err error
}

func (s *liveSession) hold(t *testing.T, sql string, n int) <-chan held {
	t.Helper()
	ch := make(chan held, 1)
	go func() {
		now := time.Now()
		a, err := s.broker.Approve(context.Background(), policy.ApprovalRequest{Connection: "app", ConnType: "postgres",
			SQL: sql, Shape: sql, Rule: "prod-writes", Reasons: []string{"DELETE on app needs approval"},
			Asked: now, Deadline: now.Add(time.Minute)})
		ch <- held{a, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.broker.Pending()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("request not held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ch
}

func TestApprovalsNoSession(t *testing.T) {
	f, out, errOut := approvalsFactory(t)
	if code := run(context.Background(), f, []string{"approvals"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), "no guardrun session is running") || out.String() != "" {
		t.Fatalf("out %q err %q", out, errOut)
	}
	f, _, errOut = approvalsFactory(t)
	if code := run(context.Background(), f, []string{"approvals", "approve", "x/1"}); code != ExitError {
		t.Fatalf("approve with no session: exit %d", code)
	}
	if !strings.Contains(errOut.String(), "guardrun: error: no guardrun session is running") || !strings.Contains(errOut.String(), "guardrun: hint:") {
		t.Fatalf("err %q", errOut)
	}
}

func TestApprovalsListAndAnswer(t *testing.T) {
	f, out, errOut := approvalsFactory(t)
	s := serveSession(t, f, "01jd3k8v")
	first := s.hold(t, "DELETE FROM public.orders", 1)
	second := s.hold(t, "DELETE FROM public.users", 2)

	if code := run(context.Background(), f, []string{"approvals"}); code != ExitOK {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"01jd3k8v/1", "01jd3k8v/2", "DELETE FROM public.orders", "app (postgres) · claude · jane@acme.dev", "rule prod-writes: DELETE on app needs approval"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	f.IO.Out = &syncBuffer{}
	if code := run(context.Background(), f, []string{"approvals", "-o", "json"}); code != ExitOK {
		t.Fatalf("json: exit %d", code)
	}
	var snap approvalsSnapshot
	if err := json.Unmarshal([]byte(f.IO.Out.(*syncBuffer).String()), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 1 || len(snap.Pending) != 2 || snap.Pending[0].ID != "01jd3k8v/1" {
		t.Fatalf("json snapshot %+v", snap)
	}

	// approve with --session, by the listed id
	if code := run(context.Background(), f, []string{"approvals", "approve", "01jd3k8v/1", "--session"}); code != ExitOK {
		t.Fatalf("approve: exit %d: %s", code, errOut)
	}
	me, _ := user.Current()
	if r := <-first; r.a.Verdict != policy.VerdictApproveSession || r.a.Via != tunnel.ViaApprovals || r.a.By != me.Username {
		t.Fatalf("approved answer %+v", r.a)
	}
	// deny by the bare id, with a message for the agent
	if code := run(context.Background(), f, []string{"approvals", "deny", "2", "-m", "archive them first"}); code != ExitOK {
		t.Fatalf("deny: exit %d: %s", code, errOut)
	}
	if r := <-second; r.a.Approved() || r.a.Message != "archive them first" {
		t.Fatalf("denied answer %+v", r.a)
	}
	// a second answer to the same request loses
	errOut2 := &syncBuffer{}
	f.IO.ErrOut = errOut2
	if code := run(context.Background(), f, []string{"approvals", "approve", "01jd3k8v/2"}); code != ExitError {
		t.Fatalf("late approve: exit %d", code)
	}
	if !strings.Contains(errOut2.String(), "already answered") {
		t.Fatalf("late approve said %q", errOut2)
	}
	// unknown session
	if code := run(context.Background(), f, []string{"approvals", "approve", "zzz/1"}); code != ExitError || !strings.Contains(errOut2.String(), "session zzz is not running") {
		t.Fatalf("unknown session: exit %d: %s", code, errOut2)
	}
}

func TestApprovalsWatch(t *testing.T) {
	f, _, _ := approvalsFactory(t)
	s := serveSession(t, f, "w1")
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- approvalsRun(ctx, &approvalsOptions{IO: &IOStreams{Out: out, ErrOut: &syncBuffer{}}, RuntimeDir: f.Paths().Runtime,
			Now: time.Now, Watch: true, Output: "json"})
	}()
	res := s.hold(t, "TRUNCATE orders", 1)
	waitFor(t, func() bool { return strings.Contains(out.String(), `"w1/1"`) })
	if err := s.sub.Answer(context.Background(), "1", policy.Answer{Verdict: policy.VerdictDeny, By: "prompt"}); err != nil {
		t.Fatal(err)
	}
	<-res
	// the request disappears from the stream
	waitFor(t, func() bool {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var snap approvalsSnapshot
		return json.Unmarshal([]byte(lines[len(lines)-1]), &snap) == nil && len(snap.Pending) == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch ended with %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTUIQueueTranslatesAlreadyAnswered(t *testing.T) {
	b := tunnel.NewBroker(tunnel.BrokerOptions{})
	defer b.Close()
	sub := b.Subscribe()
	defer sub.Close()
	q := asTUIQueue(sub)
	res := make(chan policy.Answer, 1)
	go func() {
		a, _ := b.Approve(context.Background(), policy.ApprovalRequest{ID: "r", Connection: "app"})
		res <- a
	}()
	waitFor(t, func() bool { return len(b.Pending()) == 1 })
	if err := q.Answer(context.Background(), "r", policy.Answer{Verdict: policy.VerdictApproveOnce, By: "me"}); err != nil {
		t.Fatal(err)
	}
	<-res
	err := q.Answer(context.Background(), "r", policy.Answer{Verdict: policy.VerdictDeny})
	if !errors.Is(err, tui.ErrAlreadyAnswered) || !errors.Is(err, tunnel.ErrAlreadyAnswered) {
		t.Fatalf("second answer: %v", err)
	}
}

// On a terminal the view gets one queue over every session, answering through
// the control socket; with no session it is not started at all.
func TestApprovalsInteractiveGetsMergedQueue(t *testing.T) {
	f, _, errOut := approvalsFactory(t)
	called := false
	opts := &approvalsOptions{IO: f.IO, RuntimeDir: f.Paths().Runtime, Now: time.Now, Output: "text",
		Interactive: func(ctx context.Context, q tui.Queue) error { called = true; return nil }}
	if err := approvalsRun(context.Background(), opts); err != nil || called {
		t.Fatalf("no session: err %v, view started %v", err, called)
	}
	if !strings.Contains(errOut.String(), "no guardrun session is running") {
		t.Fatalf("no session: said %q", errOut)
	}

	s := serveSession(t, f, "tty1")
	res := s.hold(t, "DROP TABLE t", 1)
	opts.Interactive = func(ctx context.Context, q tui.Queue) error {
		var list []policy.ApprovalRequest
		for len(list) == 0 {
			list = <-q.Updates()
		}
		if err := q.Answer(ctx, list[0].ID, policy.Answer{Verdict: policy.VerdictApproveOnce, By: "jane@acme.dev"}); err != nil {
			return err
		}
		err := q.Answer(ctx, list[0].ID, policy.Answer{Verdict: policy.VerdictDeny})
		if !errors.Is(err, tui.ErrAlreadyAnswered) {
			t.Errorf("second answer through the view's queue: %v", err)
		}
		return nil
	}
	if err := approvalsRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if r := <-res; !r.a.Approved() || r.a.By != "jane@acme.dev" || r.a.Via != tunnel.ViaApprovals {
		t.Fatalf("answer %+v", r.a)
	}
}
