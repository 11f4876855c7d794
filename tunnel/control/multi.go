package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tunnel"
)

// IDSeparator joins a session id and a request id into the id a Multi shows:
// request 3 of session 01jd3k8v is "01jd3k8v/3".
const IDSeparator = "/"

// watchInterval is how often a Multi looks for sessions that started.
const watchInterval = 300 * time.Millisecond

// Multi follows every session of this user: it subscribes to each session
// that starts, drops each that ends, and merges their pending lists. Request
// ids are prefixed with their session id (see IDSeparator) so they are unique
// across sessions. Create it with Watch.
type Multi struct {
	dir     string
	updates chan []policy.ApprovalRequest
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	members map[string]*member // by socket path
	ready   bool               // the first scan is done
}

type member struct {
	path   string
	client *Client
	list   []policy.ApprovalRequest // ids already prefixed
}

// Watch starts following the sessions in runtimeDir until ctx is done or
// Close is called. Updates delivers a first (possibly empty) merged list once
// the sessions running now have been read.
func Watch(ctx context.Context, runtimeDir string) *Multi {
	ctx, cancel := context.WithCancel(ctx)
	m := &Multi{
		dir:     runtimeDir,
		updates: make(chan []policy.ApprovalRequest, 1),
		cancel:  cancel,
		members: map[string]*member{},
	}
	m.wg.Add(1)
	go m.run(ctx)
	return m
}

func (m *Multi) run(ctx context.Context) {
	defer m.wg.Done()
	var members sync.WaitGroup
	defer func() {
		m.mu.Lock()
		for _, mb := range m.members {
			mb.client.c.Close() // its goroutine ends and removes it
		}
		m.mu.Unlock()
		members.Wait()
		close(m.updates)
	}()

	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		m.scan(ctx, &members)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan joins the sessions that appeared since the last scan.
func (m *Multi) scan(ctx context.Context, members *sync.WaitGroup) {
	eps, _ := discover(ctx, m.dir, func(path string) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		_, known := m.members[path]
		return known
	})
	for _, ep := range eps {
		c, err := DialContext(ctx, ep.Path)
		if err != nil {
			continue
		}
		if err := c.Subscribe(); err != nil {
			c.Close()
			continue
		}
		// Wait for the session's current list so that the first merged list
		// is complete.
		var first []policy.ApprovalRequest
		select {
		case first = <-c.updates:
		case <-time.After(handshakeTimeout):
		case <-ctx.Done():
		}
		mb := &member{path: ep.Path, client: c, list: prefixed(c.info, first)}
		m.mu.Lock()
		m.members[ep.Path] = mb
		m.mu.Unlock()
		members.Add(1)
		go m.follow(mb, members)
	}
	m.mu.Lock()
	changed := !m.ready || len(eps) > 0
	m.ready = true
	if changed {
		m.publishLocked()
	}
	m.mu.Unlock()
}

func (m *Multi) follow(mb *member, members *sync.WaitGroup) {
	defer members.Done()
	for list := range mb.client.updates {
		m.mu.Lock()
		mb.list = prefixed(mb.client.info, list)
		m.publishLocked()
		m.mu.Unlock()
	}
	mb.client.Close()
	m.mu.Lock()
	delete(m.members, mb.path)
	if m.ready {
		m.publishLocked()
	}
	m.mu.Unlock()
}

func prefixed(s SessionInfo, list []policy.ApprovalRequest) []policy.ApprovalRequest {
	out := make([]policy.ApprovalRequest, len(list))
	for i, r := range list {
		r.ID = s.ID + IDSeparator + r.ID
		if r.Session == "" {
			r.Session = s.ID
		}
		if r.Agent == "" {
			r.Agent = s.Agent
		}
		if r.User == "" {
			r.User = s.User
		}
		out[i] = r
	}
	return out
}

// publishLocked offers the merged list, oldest first; it never blocks (all
// senders hold m.mu and the channel has room for one list).
func (m *Multi) publishLocked() {
	var all []policy.ApprovalRequest
	for _, mb := range m.members {
		all = append(all, mb.list...)
	}
	slices.SortStableFunc(all, func(a, b policy.ApprovalRequest) int {
		if c := a.Asked.Compare(b.Asked); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if all == nil {
		all = []policy.ApprovalRequest{}
	}
	select {
	case <-m.updates:
	default:
	}
	m.updates <- all
}

// Updates delivers the merged pending list of all sessions on every change
// (also when a session starts or ends), and is closed when the Multi stops.
func (m *Multi) Updates() <-chan []policy.ApprovalRequest { return m.updates }

// Sessions lists the sessions being followed, oldest first.
func (m *Multi) Sessions() []SessionInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SessionInfo, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, mb.client.info)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return a.Started.Compare(b.Started) })
	return out
}

// Answer answers a request by its merged id ("<session>/<id>").
func (m *Multi) Answer(ctx context.Context, id string, a policy.Answer) error {
	m.mu.Lock()
	var (
		target *Client
		inner  string
	)
	for _, mb := range m.members {
		if rest, ok := strings.CutPrefix(id, mb.client.info.ID+IDSeparator); ok {
			target, inner = mb.client, rest
			break
		}
	}
	m.mu.Unlock()
	if target == nil {
		return fmt.Errorf("%w: %s (its session is not running)", tunnel.ErrUnknownRequest, id)
	}
	return target.Answer(ctx, inner, a)
}

// Close stops following and waits for every connection to end.
func (m *Multi) Close() {
	m.cancel()
	m.wg.Wait()
}
