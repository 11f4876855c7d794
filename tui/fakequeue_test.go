package tui

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/guardrun/guardrun/policy"
)

// fakeQueue is a scripted Queue: the test adds requests, answers remove them
// (the first answer wins), every change is published as the whole list.
type fakeQueue struct {
	mu       sync.Mutex
	pending  []policy.ApprovalRequest
	answered map[string]policy.Answer
	updates  chan []policy.ApprovalRequest
	onAnswer func(id string, a policy.Answer) // called once per winning answer
	closed   bool
}

func newFakeQueue() *fakeQueue {
	q := &fakeQueue{answered: map[string]policy.Answer{}, updates: make(chan []policy.ApprovalRequest, 64)}
	q.updates <- nil
	return q
}

func (q *fakeQueue) Updates() <-chan []policy.ApprovalRequest { return q.updates }

func (q *fakeQueue) publishLocked() {
	if !q.closed {
		q.updates <- slices.Clone(q.pending)
	}
}

func (q *fakeQueue) add(r policy.ApprovalRequest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, r)
	q.publishLocked()
}

func (q *fakeQueue) Answer(_ context.Context, id string, a policy.Answer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.answered[id]; ok {
		return fmt.Errorf("request %s: %w", id, ErrAlreadyAnswered)
	}
	i := slices.IndexFunc(q.pending, func(r policy.ApprovalRequest) bool { return r.ID == id })
	if i < 0 {
		return fmt.Errorf("request %s: no such request", id)
	}
	q.answered[id] = a
	q.pending = slices.Delete(q.pending, i, i+1)
	if q.onAnswer != nil {
		q.onAnswer(id, a)
	}
	q.publishLocked()
	return nil
}

func (q *fakeQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.updates)
	}
}

func testRequest(id, sql string, timeout time.Duration) policy.ApprovalRequest {
	now := time.Now()
	return policy.ApprovalRequest{
		ID: id, Session: "01jdtest", Agent: "agent", Connection: "app", ConnType: "postgres", User: "jane@acme.dev",
		SQL: sql, Summary: []string{"writes public.orders"}, Rule: "prod-writes",
		Reasons: []string{"DELETE on the app connection needs approval"}, Asked: now, Deadline: now.Add(timeout),
	}
}
