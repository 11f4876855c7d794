package control

import (
	"context"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tunnel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runtimeDir is a short directory (socket paths are limited to ~100 bytes).
func runtimeDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "grc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "guardrun")
}

type session struct {
	broker *tunnel.Broker
	path   string
	stop   func()
}

// startSession serves a broker on <dir>/<id>.sock until the test ends (or
// stop is called) and checks that Serve returned nil.
func startSession(t *testing.T, dir, id string) *session {
	t.Helper()
	b := tunnel.NewBroker(tunnel.BrokerOptions{})
	path := SocketPath(dir, id)
	srv, err := Listen(path, b, SessionInfo{ID: id, Agent: "claude", User: "jane@acme.dev", Started: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Serve: %v", err)
			}
			b.Close()
		})
	}
	t.Cleanup(stop)
	return &session{broker: b, path: path, stop: stop}
}

type result struct {
	a   policy.Answer
	err error
}

func hold(b *tunnel.Broker, shape string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		now := time.Now()
		a, err := b.Approve(context.Background(), policy.ApprovalRequest{Connection: "app", Shape: shape,
			SQL: "DELETE FROM orders", Asked: now, Deadline: now.Add(time.Minute)})
		ch <- result{a, err}
	}()
	return ch
}

func next(t *testing.T, ch <-chan []policy.ApprovalRequest, n int) []policy.ApprovalRequest {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatal("updates closed")
			}
			if len(l) == n {
				return l
			}
		case <-timeout:
			t.Fatalf("never saw %d pending", n)
		}
	}
}

func TestRoundTripTwoClientsRace(t *testing.T) {
	dir := runtimeDir(t)
	s := startSession(t, dir, "01jd3k8v")

	watcher, err := Dial(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if got := watcher.Session(); got.ID != "01jd3k8v" || got.Agent != "claude" || got.PID != os.Getpid() {
		t.Fatalf("hello: %+v", got)
	}
	next(t, watcher.Updates(), 0) // subscribed: requests now wait instead of being denied

	res := hold(s.broker, "shape")
	id := next(t, watcher.Updates(), 1)[0].ID

	a, err := Dial(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Client{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := policy.VerdictApproveOnce
			if i == 1 {
				v = policy.VerdictDeny
			}
			errs[i] = c.Answer(context.Background(), id, policy.Answer{Verdict: v, Via: "forged"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, tunnel.ErrAlreadyAnswered) {
			t.Fatalf("loser: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d clients won; want exactly 1 (%v)", won, errs)
	}
	r := <-res
	me, _ := user.Current()
	if r.a.Via != tunnel.ViaApprovals || r.a.By != me.Username {
		t.Fatalf("answer %+v; want via approvals by %s", r.a, me.Username)
	}
	next(t, watcher.Updates(), 0)

	// A named answerer is recorded as named; unknown ids are told apart.
	res = hold(s.broker, "shape2")
	id = next(t, watcher.Updates(), 1)[0].ID
	if err := a.Answer(context.Background(), id, policy.Answer{Verdict: policy.VerdictDeny, By: "jane@acme.dev", Message: "not today"}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.a.By != "jane@acme.dev" || r.a.Message != "not today" || r.a.Approved() {
		t.Fatalf("answer %+v", r.a)
	}
	if err := a.Answer(context.Background(), "404", policy.Answer{Verdict: policy.VerdictDeny}); !errors.Is(err, tunnel.ErrUnknownRequest) {
		t.Fatalf("unknown id: %v", err)
	}
	if err := a.Answer(context.Background(), id, policy.Answer{Verdict: "yes please"}); !errors.Is(err, tunnel.ErrInvalidAnswer) {
		t.Fatalf("invalid verdict: %v", err)
	}
}

func TestNobodyUnlessSubscribed(t *testing.T) {
	dir := runtimeDir(t)
	s := startSession(t, dir, "s1")
	c, err := Dial(s.path) // connected, not watching
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := <-hold(s.broker, "x"); r.a.Via != tunnel.ViaNobody {
		t.Fatalf("unsubscribed client counted as a listener: %+v", r.a)
	}
	next(t, c.Updates(), 0)
	res := hold(s.broker, "x")
	next(t, c.Updates(), 1)
	c.Close() // the only listener leaves; the request keeps waiting
	s.broker.Close()
	if r := <-res; r.a.Via != tunnel.ViaCancelled {
		t.Fatalf("got %+v", r.a)
	}
}

func TestPermissions(t *testing.T) {
	dir := runtimeDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startSession(t, dir, "perm")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v; want 0700", fi.Mode().Perm())
	}
	fi, err = os.Lstat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v; want a 0600 socket", fi.Mode())
	}
	// Not a directory: refused.
	file := filepath.Join(filepath.Dir(dir), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(filepath.Join(file, "x.sock"), s.broker, SessionInfo{ID: "x"}, nil); err == nil {
		t.Fatal("Listen under a file succeeded")
	}
	// Something that is not a socket at the path is not removed.
	plain := SocketPath(dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if _, err := Listen(plain, s.broker, SessionInfo{ID: "plain"}, nil); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Fatal("a regular file was replaced")
	}
}

func TestPeerUID(t *testing.T) {
	dir := runtimeDir(t)
	os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "p.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	uid, checked, err := peerUID(sc)
	if err != nil || !checked || uid != os.Getuid() {
		t.Fatalf("peerUID = %d, %v, %v; want %d, true", uid, checked, err, os.Getuid())
	}
}

// deadSocket leaves a socket file that nobody listens on, as a crashed
// session does.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("dead socket not left behind: %v", err)
	}
}

func TestStaleSockets(t *testing.T) {
	dir := runtimeDir(t)
	live := startSession(t, dir, "live")
	dead := SocketPath(dir, "dead")
	deadSocket(t, dead)

	eps, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].Session.ID != "live" || eps[0].Path != live.path {
		t.Fatalf("Discover = %+v; want only the live session", eps)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket still there: %v", err)
	}

	// Listen replaces a stale socket, and refuses a live one.
	deadSocket(t, dead)
	startSession(t, dir, "dead")
	if _, err := Listen(live.path, live.broker, SessionInfo{ID: "live"}, nil); !errors.Is(err, ErrSessionRunning) {
		t.Fatalf("Listen over a live session: %v", err)
	}

	// Ending a session removes its socket.
	live.stop()
	if _, err := os.Lstat(live.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Serve returned: %v", err)
	}
	if eps, _ := Discover(filepath.Join(dir, "missing")); len(eps) != 0 {
		t.Fatal("a missing runtime dir has sessions")
	}
}

func TestServeEndsClients(t *testing.T) {
	dir := runtimeDir(t)
	s := startSession(t, dir, "end")
	c, err := Dial(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c.Updates(), 0)
	s.stop()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected when the session ended")
	}
	if err := c.Answer(context.Background(), "1", policy.Answer{Verdict: policy.VerdictDeny}); !errors.Is(err, ErrClosed) {
		t.Fatalf("answer after end: %v", err)
	}
}

func TestMultiFollowsSessions(t *testing.T) {
	dir := runtimeDir(t)
	one := startSession(t, dir, "one")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := Watch(ctx, dir)
	defer m.Close()

	first := next(t, m.Updates(), 0)
	_ = first
	if ss := m.Sessions(); len(ss) != 1 || ss[0].ID != "one" {
		t.Fatalf("sessions %+v", ss)
	}
	r1 := hold(one.broker, "a")
	next(t, m.Updates(), 1)

	two := startSession(t, dir, "two") // starts while watching
	deadline := time.Now().Add(10 * time.Second)
	for len(m.Sessions()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("new session not followed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r2 := hold(two.broker, "a")
	list := next(t, m.Updates(), 2)
	ids := map[string]bool{}
	for _, r := range list {
		ids[r.ID] = true
	}
	if !ids["one/1"] || !ids["two/1"] {
		t.Fatalf("merged ids %v; want one/1 and two/1", ids)
	}
	if err := m.Answer(ctx, "two/1", policy.Answer{Verdict: policy.VerdictApproveOnce, By: "jane@acme.dev"}); err != nil {
		t.Fatal(err)
	}
	if r := <-r2; !r.a.Approved() || r.a.By != "jane@acme.dev" {
		t.Fatalf("two/1: %+v", r.a)
	}
	if err := m.Answer(ctx, "three/1", policy.Answer{Verdict: policy.VerdictDeny}); !errors.Is(err, tunnel.ErrUnknownRequest) {
		t.Fatalf("answer to a session not running: %v", err)
	}
	next(t, m.Updates(), 1)

	one.stop() // its pending request is denied and the session leaves the list
	if r := <-r1; r.a.Approved() {
		t.Fatalf("one/1: %+v", r.a)
	}
	next(t, m.Updates(), 0)
	for len(m.Sessions()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("ended session still followed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Close()
	if _, ok := <-m.Updates(); ok {
		if _, ok := <-m.Updates(); ok {
			t.Fatal("updates not closed after Close")
		}
	}
}
