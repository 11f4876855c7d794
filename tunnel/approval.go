package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/guardrun/guardrun/policy"
)

// This file is the session's approval broker: held statements wait here for
// the first human who answers, wherever that human sits (the inline prompt,
// `guardrun approvals` through the control socket).
//
// Rules kept here:
//   - Only the asking goroutine waits; the broker never blocks on a
//     subscriber (updates are coalesced to the latest list).
//   - Each request is resolved exactly once: the first answer, the deadline
//     or the asker's context, whichever comes first. Every other answer gets
//     ErrAlreadyAnswered.
//   - With nobody to ask (no subscriber), a request is denied at once with a
//     message that says how to provide an approval next time.
//   - "Approve for the session" is remembered per (connection, shape) until
//     the broker is closed; it never outlives the session.

// Errors returned by Subscription.Answer (and, through the control socket,
// by its clients).
var (
	// ErrAlreadyAnswered: another answer, the deadline or the asker going
	// away resolved the request first.
	ErrAlreadyAnswered = errors.New("approval request already answered")
	// ErrUnknownRequest: no request with that id was ever pending.
	ErrUnknownRequest = errors.New("no such approval request")
	// ErrInvalidAnswer: the answer's verdict is not one of policy's verdicts.
	ErrInvalidAnswer = errors.New("invalid approval answer")
)

// Values of policy.Answer.Via set by the broker itself.
const (
	ViaTimeout   = "timeout"   // the request's deadline passed
	ViaNobody    = "nobody"    // nobody was there to ask
	ViaSession   = "session"   // an earlier "approve for this session" covered it
	ViaCancelled = "cancelled" // the asking connection went away, or the session ended
	ViaApprovals = "approvals" // default for answers that do not say where they came from
)

// DefaultApprovalTimeout applies to a request that carries no deadline.
const DefaultApprovalTimeout = 2 * time.Minute

// DefaultNobodyHint is the second half of the message a statement gets when
// nobody could be asked.
const DefaultNobodyHint = "run `guardrun approvals` in another terminal while the session runs, or run guardrun on a terminal to be prompted"

// BrokerOptions configure a Broker. The zero value works.
type BrokerOptions struct {
	Now    func() time.Time // clock for Asked and durations; time.Now when nil
	Logger *slog.Logger     // nil: discard
	// NobodyHint says how to provide an approval; it ends the message of a
	// request denied because nobody could be asked.
	NobodyHint string
	// NobodyGrace, when positive, holds a request that finds no subscriber
	// for this long before denying it as nobody's: time enough for a
	// `guardrun approvals --watch` that follows new sessions to attach.
	// Zero denies at once.
	NobodyGrace time.Duration
	// OnAsked is called once per request that reaches the broker (also those
	// answered at once by a session approval or by nobody), from the asking
	// goroutine, before OnAnswered.
	OnAsked func(policy.ApprovalRequest)
	// OnAnswered is called once per request with its resolution and how long
	// it was held, from the asking goroutine.
	OnAnswered func(policy.ApprovalRequest, policy.Answer, time.Duration)
}

type shapeKey struct{ connection, shape string }

type pending struct {
	req  policy.ApprovalRequest
	seq  uint64
	done chan policy.Answer // buffered 1; receives the one resolution
}

// Broker implements Approver for one session. Create it with NewBroker;
// its methods are safe for concurrent use.
type Broker struct {
	opts BrokerOptions
	log  *slog.Logger

	mu       sync.Mutex
	closed   bool
	seq      uint64
	pending  map[string]*pending
	answered map[string]struct{} // ids resolved already, to tell late answers from unknown ids
	session  map[shapeKey]string // approved for the session -> who approved
	subs     map[*Subscription]struct{}
}

// NewBroker returns a broker with nobody subscribed yet.
func NewBroker(opts BrokerOptions) *Broker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NobodyHint == "" {
		opts.NobodyHint = DefaultNobodyHint
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{
		opts:     opts,
		log:      log,
		pending:  map[string]*pending{},
		answered: map[string]struct{}{},
		session:  map[shapeKey]string{},
		subs:     map[*Subscription]struct{}{},
	}
}

var _ Approver = (*Broker)(nil)

// Approve holds req until the first answer, req.Deadline (a deny that says
// no one answered in time), or ctx is done (a deny, returned with ctx's
// error). A request whose connection and shape were approved for the session
// is approved at once; with no subscriber it is denied at once. An empty
// req.ID is filled in; a zero Asked is now; a zero Deadline is Asked plus
// DefaultApprovalTimeout.
func (b *Broker) Approve(ctx context.Context, req policy.ApprovalRequest) (policy.Answer, error) {
	if req.Asked.IsZero() {
		req.Asked = b.opts.Now()
	}
	if req.Deadline.IsZero() {
		req.Deadline = req.Asked.Add(DefaultApprovalTimeout)
	}

	b.mu.Lock()
	b.seq++
	seq := b.seq
	if req.ID == "" || b.known(req.ID) {
		req.ID = strconv.FormatUint(seq, 10)
		for b.known(req.ID) {
			req.ID += "+"
		}
	}
	var immediate *policy.Answer
	switch by, ok := b.session[shapeKey{req.Connection, req.Shape}]; {
	case b.closed:
		immediate = &policy.Answer{Verdict: policy.VerdictDeny, By: "guardrun", Via: ViaCancelled,
			Message: "the session is ending"}
	case ok && req.Shape != "":
		immediate = &policy.Answer{Verdict: policy.VerdictApproveSession, By: by, Via: ViaSession}
	case len(b.subs) == 0 && b.opts.NobodyGrace <= 0:
		immediate = b.nobody()
	}
	var grace <-chan time.Time
	if immediate == nil && len(b.subs) == 0 {
		g := time.NewTimer(b.opts.NobodyGrace)
		defer g.Stop()
		grace = g.C
	}
	var p *pending
	if immediate != nil {
		b.answered[req.ID] = struct{}{}
	} else {
		p = &pending{req: req, seq: seq, done: make(chan policy.Answer, 1)}
		b.pending[req.ID] = p
		b.publishLocked()
	}
	b.mu.Unlock()

	if b.opts.OnAsked != nil {
		b.opts.OnAsked(req)
	}
	if immediate != nil {
		b.log.Debug("approval answered at once", "id", req.ID, "connection", req.Connection, "via", immediate.Via)
		return b.finish(req, *immediate), nil
	}
	b.log.Debug("approval held", "id", req.ID, "connection", req.Connection, "rule", req.Rule)

	timer := time.NewTimer(max(req.Deadline.Sub(b.opts.Now()), 0))
	defer timer.Stop()
	var err error
wait:
	select {
	case a := <-p.done:
		return b.finish(req, a), nil
	case <-grace:
		grace = nil
		b.mu.Lock()
		alone := len(b.subs) == 0
		b.mu.Unlock()
		if !alone {
			goto wait // someone attached in time: wait for them as usual
		}
		_ = b.resolve(req.ID, *b.nobody())
	case <-timer.C:
		timeout := req.Deadline.Sub(req.Asked).Round(time.Second)
		b.resolve(req.ID, policy.Answer{Verdict: policy.VerdictDeny, By: ViaTimeout, Via: ViaTimeout,
			Message: fmt.Sprintf("no one answered within %s", timeout)})
	case <-ctx.Done():
		err = ctx.Err()
		b.resolve(req.ID, policy.Answer{Verdict: policy.VerdictDeny, By: "guardrun", Via: ViaCancelled,
			Message: "the statement was withdrawn before anyone answered"})
	}
	// Whoever resolved it first (perhaps a human, just before the clock) has
	// put the one answer in done.
	a := <-p.done
	if a.Approved() {
		err = nil
	}
	return b.finish(req, a), err
}

func (b *Broker) nobody() *policy.Answer {
	return &policy.Answer{Verdict: policy.VerdictDeny, By: ViaNobody, Via: ViaNobody,
		Message: "this statement needs a human's approval, but nobody could be asked: " + b.opts.NobodyHint}
}

func (b *Broker) known(id string) bool {
	_, p := b.pending[id]
	_, a := b.answered[id]
	return p || a
}

func (b *Broker) finish(req policy.ApprovalRequest, a policy.Answer) policy.Answer {
	if b.opts.OnAnswered != nil {
		b.opts.OnAnswered(req, a, b.opts.Now().Sub(req.Asked))
	}
	return a
}

// resolve gives request id its one answer. It is the only place a pending
// request leaves the map.
func (b *Broker) resolve(id string, a policy.Answer) error {
	switch a.Verdict {
	case policy.VerdictDeny, policy.VerdictApproveOnce, policy.VerdictApproveSession:
	default:
		return fmt.Errorf("%w: verdict %q", ErrInvalidAnswer, a.Verdict)
	}
	if a.Via == "" {
		a.Via = ViaApprovals
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pending[id]
	if !ok {
		if _, done := b.answered[id]; done {
			return fmt.Errorf("%w: %s", ErrAlreadyAnswered, id)
		}
		return fmt.Errorf("%w: %s", ErrUnknownRequest, id)
	}
	b.resolveLocked(p, a)
	if a.Verdict == policy.VerdictApproveSession && p.req.Shape != "" {
		key := shapeKey{p.req.Connection, p.req.Shape}
		b.session[key] = a.By
		// Requests of the same shape that are already waiting are covered too.
		for _, q := range b.pending {
			if (shapeKey{q.req.Connection, q.req.Shape}) == key {
				b.resolveLocked(q, policy.Answer{Verdict: policy.VerdictApproveSession, By: a.By, Via: ViaSession})
			}
		}
	}
	b.publishLocked()
	return nil
}

func (b *Broker) resolveLocked(p *pending, a policy.Answer) {
	delete(b.pending, p.req.ID)
	b.answered[p.req.ID] = struct{}{}
	p.done <- a
}

// Answer resolves request id as Subscription.Answer does, for a caller that
// answers without watching (`guardrun approvals approve ID`).
func (b *Broker) Answer(ctx context.Context, id string, a policy.Answer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.resolve(id, a)
}

// Close ends the session's approvals: pending requests are denied (their
// askers return), later requests are denied at once, and every
// subscription's Updates channel is closed.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, p := range b.pending {
		b.resolveLocked(p, policy.Answer{Verdict: policy.VerdictDeny, By: "guardrun", Via: ViaCancelled,
			Message: "the session ended before anyone answered"})
	}
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Pending returns the requests waiting now, oldest first.
func (b *Broker) Pending() []policy.ApprovalRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listLocked()
}

func (b *Broker) listLocked() []policy.ApprovalRequest {
	ps := make([]*pending, 0, len(b.pending))
	for _, p := range b.pending {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(x, y *pending) int {
		if c := x.req.Asked.Compare(y.req.Asked); c != 0 {
			return c
		}
		return int(x.seq) - int(y.seq)
	})
	list := make([]policy.ApprovalRequest, len(ps))
	for i, p := range ps {
		list[i] = p.req
	}
	return list
}

// publishLocked hands every subscriber the current list, replacing any list
// it has not read yet. It never blocks: each channel has room for one list
// and only the broker sends, under b.mu.
func (b *Broker) publishLocked() {
	list := b.listLocked()
	for s := range b.subs {
		s.offer(list)
	}
}

// Subscription is one place a human can answer from: the inline prompt, or
// one client of the control socket. While at least one subscription is open,
// requests wait for an answer instead of being denied at once.
type Subscription struct {
	b  *Broker
	ch chan []policy.ApprovalRequest
}

// Subscribe attaches a subscriber. Its Updates channel holds the current
// list at once. On a closed broker the channel is already closed.
func (b *Broker) Subscribe() *Subscription {
	s := &Subscription{b: b, ch: make(chan []policy.ApprovalRequest, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s
	}
	b.subs[s] = struct{}{}
	s.offer(b.listLocked())
	return s
}

func (s *Subscription) offer(list []policy.ApprovalRequest) {
	select {
	case <-s.ch:
	default:
	}
	s.ch <- list
}

// Updates delivers the full pending list, oldest first, each time it
// changes; a slow reader sees only the latest list. The channel is closed by
// Close or when the broker closes. The slices are the reader's to keep.
func (s *Subscription) Updates() <-chan []policy.ApprovalRequest { return s.ch }

// Answer resolves request id. The first answer wins; a later one returns an
// error wrapping ErrAlreadyAnswered, an id that never existed one wrapping
// ErrUnknownRequest. An empty a.Via becomes "approvals".
func (s *Subscription) Answer(ctx context.Context, id string, a policy.Answer) error {
	return s.b.Answer(ctx, id, a)
}

// Close detaches the subscriber and closes its Updates channel. Requests
// already waiting keep waiting for another answer or their deadline.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		select { // a list nobody will act on
		case <-s.ch:
		default:
		}
		close(s.ch)
	}
}
