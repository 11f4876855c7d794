package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guardrun/guardrun/policy"
)

// Client is one connection to a session's control socket. Its Updates and
// Answer make it a queue of that session's pending approvals.
type Client struct {
	c    net.Conn
	info SessionInfo

	wmu sync.Mutex
	enc *json.Encoder

	mu      sync.Mutex
	seq     uint64
	waiting map[uint64]chan string
	closed  bool

	subOnce sync.Once
	subErr  error
	updates chan []policy.ApprovalRequest
	done    chan struct{}
	wg      sync.WaitGroup
}

// Dial connects to the control socket at path and reads the session's hello.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext is Dial with a context for the handshake.
func DialContext(ctx context.Context, path string) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := readLine(r)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: no hello from %s: %v", ErrProtocol, path, err)
	}
	var hello reply
	if err := json.Unmarshal(line, &hello); err != nil || hello.Type != "hello" || hello.Session == nil {
		c.Close()
		return nil, fmt.Errorf("%w: unexpected greeting from %s", ErrProtocol, path)
	}
	if hello.Version > ProtocolVersion {
		c.Close()
		return nil, fmt.Errorf("%w: session speaks protocol %d, this guardrun %d (upgrade guardrun)", ErrProtocol, hello.Version, ProtocolVersion)
	}
	c.SetReadDeadline(time.Time{})
	cl := &Client{
		c:       c,
		info:    *hello.Session,
		enc:     json.NewEncoder(c),
		waiting: map[uint64]chan string{},
		updates: make(chan []policy.ApprovalRequest, 1),
		done:    make(chan struct{}),
	}
	cl.wg.Add(1)
	go cl.read(r)
	return cl, nil
}

// readLine reads one protocol line, refusing lines over maxLine.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
		}
		if !isPrefix {
			return buf, nil
		}
	}
}

// Session is the session this client talks to.
func (c *Client) Session() SessionInfo { return c.info }

func (c *Client) read(r *bufio.Reader) {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		c.closed = true
		for seq, ch := range c.waiting {
			close(ch)
			delete(c.waiting, seq)
		}
		c.mu.Unlock()
		close(c.updates)
		close(c.done)
	}()
	for {
		line, err := readLine(r)
		if err != nil {
			return
		}
		var m reply
		if err := json.Unmarshal(line, &m); err != nil {
			return
		}
		switch m.Type {
		case "pending":
			list := m.Pending
			if list == nil {
				list = []policy.ApprovalRequest{}
			}
			select { // coalesce: only the latest list matters
			case <-c.updates:
			default:
			}
			c.updates <- list
		case "result":
			c.mu.Lock()
			ch := c.waiting[m.Seq]
			delete(c.waiting, m.Seq)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.Error
			}
		}
	}
}

func (c *Client) send(req request) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.enc.Encode(req); err != nil {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return nil
}

// Subscribe asks the session to stream its pending list to Updates. Calling
// it again does nothing.
func (c *Client) Subscribe() error {
	c.subOnce.Do(func() { c.subErr = c.send(request{Op: "subscribe"}) })
	return c.subErr
}

// Updates delivers the session's full pending list, oldest first, on every
// change (a slow reader sees only the latest), and is closed when the
// connection ends. The first call subscribes.
func (c *Client) Updates() <-chan []policy.ApprovalRequest {
	c.Subscribe()
	return c.updates
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Answer answers request id of this session. The first answer from anywhere
// wins; later ones get an error wrapping tunnel.ErrAlreadyAnswered, an id the
// session never had one wrapping tunnel.ErrUnknownRequest. An empty a.By is
// recorded as this user's local name.
func (c *Client) Answer(ctx context.Context, id string, a policy.Answer) error {
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.seq++
	seq := c.seq
	c.waiting[seq] = ch
	c.mu.Unlock()
	if err := c.send(request{Op: "answer", Seq: seq, ID: id, Answer: &a}); err != nil {
		c.forget(seq)
		return err
	}
	select {
	case code, ok := <-ch:
		if !ok {
			return ErrClosed
		}
		return codeError(code, id)
	case <-ctx.Done():
		c.forget(seq)
		return ctx.Err()
	}
}

func (c *Client) forget(seq uint64) {
	c.mu.Lock()
	delete(c.waiting, seq)
	c.mu.Unlock()
}

// Close hangs up and waits for the reader to end.
func (c *Client) Close() error {
	err := c.c.Close()
	c.wg.Wait()
	return err
}

// Discover lists the live sessions in runtimeDir, oldest first. Sockets that
// nobody listens on any more (sessions that crashed) are removed; a missing
// directory means no sessions.
func Discover(runtimeDir string) ([]Endpoint, error) {
	return discover(context.Background(), runtimeDir, nil)
}

func discover(ctx context.Context, runtimeDir string, skip func(path string) bool) ([]Endpoint, error) {
	paths, err := socketPaths(runtimeDir)
	if err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, p := range paths {
		if skip != nil && skip(p) {
			continue
		}
		c, err := DialContext(ctx, p)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				removeStale(p)
			}
			continue
		}
		eps = append(eps, Endpoint{Path: p, Session: c.Session()})
		c.Close()
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Session.Started.Before(eps[j].Session.Started) })
	return eps, nil
}

func socketPaths(runtimeDir string) ([]string, error) {
	entries, err := os.ReadDir(runtimeDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), SocketSuffix) && e.Type() == fs.ModeSocket {
			paths = append(paths, SocketPath(runtimeDir, strings.TrimSuffix(e.Name(), SocketSuffix)))
		}
	}
	return paths, nil
}
