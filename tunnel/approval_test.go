package tunnel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guardrun/guardrun/policy"
	"go.uber.org/goleak"
)

func heldRequest(conn, shape string, timeout time.Duration) policy.ApprovalRequest {
	now := time.Now()
	return policy.ApprovalRequest{Connection: conn, Shape: shape, SQL: "DELETE FROM t", Rule: "r",
		Asked: now, Deadline: now.Add(timeout)}
}

// ask runs Approve in a goroutine and returns a channel with its result.
type result struct {
	a   policy.Answer
	err error
}

func ask(ctx context.Context, b *Broker, req policy.ApprovalRequest) <-chan result {
	ch := make(chan result, 1)
	go func() {
		a, err := b.Approve(ctx, req)
		ch <- result{a, err}
	}()
	return ch
}

// waitPending reads s's updates until n requests are pending.
func waitPending(t *testing.T, s *Subscription, n int) []policy.ApprovalRequest {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case list, ok := <-s.Updates():
			if !ok {
				t.Fatal("updates closed")
			}
			if len(list) == n {
				return list
			}
		case <-deadline:
			t.Fatalf("never saw %d pending", n)
		}
	}
}

func TestBrokerNobody(t *testing.T) {
	defer goleak.VerifyNone(t)
	var asked, answered int
	b := NewBroker(BrokerOptions{
		OnAsked:    func(policy.ApprovalRequest) { asked++ },
		OnAnswered: func(policy.ApprovalRequest, policy.Answer, time.Duration) { answered++ },
	})
	a, err := b.Approve(context.Background(), heldRequest("app", "s1", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Approved() || a.Via != ViaNobody || a.By != ViaNobody {
		t.Fatalf("answer %+v; want deny via nobody", a)
	}
	if !strings.Contains(a.Message, "guardrun approvals") || !strings.Contains(a.Message, "approval") {
		t.Fatalf("message %q does not say how to approve", a.Message)
	}
	if asked != 1 || answered != 1 {
		t.Fatalf("hooks asked=%d answered=%d; want 1 and 1", asked, answered)
	}
	// A closed subscription leaves nobody again.
	s := b.Subscribe()
	s.Close()
	if _, ok := <-s.Updates(); ok {
		t.Fatal("closed subscription still delivers")
	}
	if a, _ := b.Approve(context.Background(), heldRequest("app", "s1", time.Minute)); a.Via != ViaNobody {
		t.Fatalf("after unsubscribe: %+v", a)
	}
}

func TestBrokerNobodyGrace(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{NobodyGrace: 300 * time.Millisecond})
	defer b.Close()

	// Nobody attaches: denied as nobody's once the grace is over.
	start := time.Now()
	a, err := b.Approve(context.Background(), heldRequest("app", "s1", time.Minute))
	if err != nil || a.Approved() || a.Via != ViaNobody {
		t.Fatalf("answer %+v, %v; want deny via nobody", a, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 10*time.Second {
		t.Fatalf("nobody's deny came after %v; want the grace", d)
	}

	// Someone attaches within the grace: the request waits for them.
	res := ask(context.Background(), b, heldRequest("app", "s2", time.Minute))
	time.Sleep(50 * time.Millisecond)
	s := b.Subscribe()
	defer s.Close()
	list := waitPending(t, s, 1)
	time.Sleep(400 * time.Millisecond) // past the grace: still waiting
	if err := s.Answer(context.Background(), list[0].ID, policy.Answer{Verdict: policy.VerdictApproveOnce, By: "jane"}); err != nil {
		t.Fatalf("answer after the grace: %v", err)
	}
	if r := <-res; !r.a.Approved() || r.a.By != "jane" {
		t.Fatalf("got %+v, %v; want jane's approval", r.a, r.err)
	}
}

func TestBrokerFirstAnswerWins(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s1, s2 := b.Subscribe(), b.Subscribe()
	defer s1.Close()
	defer s2.Close()
	res := ask(context.Background(), b, heldRequest("app", "s1", time.Minute))
	list := waitPending(t, s1, 1)
	id := list[0].ID
	if id == "" {
		t.Fatal("broker gave the request no id")
	}

	const racers = 16
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, v := s1, policy.VerdictApproveOnce
			if i%2 == 1 {
				s, v = s2, policy.VerdictDeny
			}
			errs[i] = s.Answer(context.Background(), id, policy.Answer{Verdict: v, By: "racer"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrAlreadyAnswered):
			t.Errorf("loser got %v; want ErrAlreadyAnswered", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d answers won; want exactly 1", won)
	}
	r := <-res
	if r.err != nil || r.a.By != "racer" || r.a.Via != ViaApprovals {
		t.Fatalf("asker got %+v, %v", r.a, r.err)
	}
	waitPending(t, s2, 0)
	if err := s1.Answer(context.Background(), "nope", policy.Answer{Verdict: policy.VerdictDeny}); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestBrokerInvalidAnswer(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s := b.Subscribe()
	defer s.Close()
	res := ask(context.Background(), b, heldRequest("app", "s1", time.Minute))
	id := waitPending(t, s, 1)[0].ID
	if err := s.Answer(context.Background(), id, policy.Answer{Verdict: "maybe"}); !errors.Is(err, ErrInvalidAnswer) {
		t.Fatalf("invalid verdict: %v", err)
	}
	if err := s.Answer(context.Background(), id, policy.Answer{Verdict: policy.VerdictDeny, By: "me", Message: "no"}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.a.Approved() || r.a.Message != "no" {
		t.Fatalf("got %+v", r.a)
	}
}

func TestBrokerTimeout(t *testing.T) {
	defer goleak.VerifyNone(t)
	var held time.Duration
	b := NewBroker(BrokerOptions{OnAnswered: func(_ policy.ApprovalRequest, _ policy.Answer, d time.Duration) { held = d }})
	s := b.Subscribe()
	defer s.Close()
	start := time.Now()
	a, err := b.Approve(context.Background(), heldRequest("app", "s1", 80*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if a.Approved() || a.Via != ViaTimeout || a.By != ViaTimeout || !strings.Contains(a.Message, "no one answered") {
		t.Fatalf("answer %+v; want a timeout deny", a)
	}
	if el := time.Since(start); el < 70*time.Millisecond {
		t.Fatalf("returned after %s, before the deadline", el)
	}
	if held < 70*time.Millisecond {
		t.Fatalf("OnAnswered saw %s held", held)
	}
	// The request is gone; a late answer is refused.
	waitPending(t, s, 0)
	if err := s.Answer(context.Background(), "1", policy.Answer{Verdict: policy.VerdictApproveOnce}); !errors.Is(err, ErrAlreadyAnswered) {
		t.Fatalf("late answer: %v", err)
	}
}

func TestBrokerContextCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s := b.Subscribe()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	res := ask(ctx, b, heldRequest("app", "s1", time.Minute))
	waitPending(t, s, 1)
	cancel()
	r := <-res
	if r.a.Approved() || !errors.Is(r.err, context.Canceled) || r.a.Via != ViaCancelled {
		t.Fatalf("got %+v, %v; want a deny with context.Canceled", r.a, r.err)
	}
	waitPending(t, s, 0)
}

func TestBrokerOnlyAskerWaits(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s := b.Subscribe()
	defer s.Close()
	slow := ask(context.Background(), b, heldRequest("app", "slow", time.Minute))
	fast := ask(context.Background(), b, heldRequest("app", "fast", time.Minute))
	list := waitPending(t, s, 2)
	for _, r := range list {
		if r.Shape == "fast" {
			if err := s.Answer(context.Background(), r.ID, policy.Answer{Verdict: policy.VerdictApproveOnce, By: "me"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case r := <-fast:
		if !r.a.Approved() {
			t.Fatalf("fast: %+v", r.a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second request waited for the first")
	}
	b.Close() // denies the one still waiting
	if r := <-slow; r.a.Approved() || r.a.Via != ViaCancelled {
		t.Fatalf("slow after Close: %+v", r.a)
	}
	if _, ok := <-s.Updates(); ok {
		// drain the last list, then the channel must be closed
		if _, ok := <-s.Updates(); ok {
			t.Fatal("updates not closed by broker Close")
		}
	}
}

func TestBrokerSessionShape(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s := b.Subscribe()
	defer s.Close()
	first := ask(context.Background(), b, heldRequest("app", "del-orders", time.Minute))
	twin := ask(context.Background(), b, heldRequest("app", "del-orders", time.Minute))
	other := ask(context.Background(), b, heldRequest("app", "del-users", time.Minute))
	list := waitPending(t, s, 3)
	var id string
	for _, r := range list {
		if r.Shape == "del-orders" {
			id = r.ID
			break
		}
	}
	if err := s.Answer(context.Background(), id, policy.Answer{Verdict: policy.VerdictApproveSession, By: "jane@acme.dev"}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan result{first, twin} {
		if r := <-ch; r.a.Verdict != policy.VerdictApproveSession || r.a.By != "jane@acme.dev" {
			t.Fatalf("same shape: %+v", r.a)
		}
	}
	// Later: same connection and shape pass at once, naming who approved.
	a, err := b.Approve(context.Background(), heldRequest("app", "del-orders", time.Minute))
	if err != nil || a.Verdict != policy.VerdictApproveSession || a.Via != ViaSession || a.By != "jane@acme.dev" {
		t.Fatalf("remembered shape: %+v, %v", a, err)
	}
	// Another connection with the same shape still asks, and so does another shape.
	res := ask(context.Background(), b, heldRequest("reporting", "del-orders", time.Minute))
	if l := waitPending(t, s, 2); len(l) != 2 {
		t.Fatalf("pending %v", l)
	}
	b.Close()
	for _, ch := range []<-chan result{res, other} {
		if r := <-ch; r.a.Approved() {
			t.Fatalf("other connection or shape approved: %+v", r.a)
		}
	}
}

func TestBrokerUpdatesCoalesce(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewBroker(BrokerOptions{})
	s := b.Subscribe() // never read until all requests are in: the broker must not block
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var results []<-chan result
	for range 50 {
		results = append(results, ask(ctx, b, heldRequest("app", "s", time.Minute)))
	}
	list := waitPending(t, s, 50)
	seen := map[string]bool{}
	for i, r := range list {
		if seen[r.ID] {
			t.Fatalf("duplicate id %q", r.ID)
		}
		seen[r.ID] = true
		if i > 0 && r.Asked.Before(list[i-1].Asked) {
			t.Fatal("list is not oldest first")
		}
	}
	cancel()
	for _, ch := range results {
		<-ch
	}
}
