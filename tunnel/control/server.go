package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tunnel"
)

// writeTimeout bounds one write to a client that stopped reading.
const writeTimeout = 5 * time.Second

// Server is a session's control socket, listening.
type Server struct {
	ln     *net.UnixListener
	path   string
	broker *tunnel.Broker
	info   SessionInfo
	log    *slog.Logger
}

// SocketPath is the control socket of session id in runtimeDir.
func SocketPath(runtimeDir, id string) string {
	return filepath.Join(runtimeDir, id+SocketSuffix)
}

// Serve listens on path and serves b until ctx is done, then removes the
// socket and returns nil once every connection has ended.
func Serve(ctx context.Context, path string, b *tunnel.Broker, info SessionInfo) error {
	s, err := Listen(path, b, info, nil)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen prepares path's directory (created 0700; an existing one must be a
// directory owned by this user, and is made 0700), removes a stale socket
// left by a session that is gone, and listens with mode 0600. A live
// session on path is ErrSessionRunning. logger may be nil.
func Listen(path string, b *tunnel.Broker, info SessionInfo, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		if alive(path) {
			return nil, fmt.Errorf("%w: %s", ErrSessionRunning, path)
		}
		if err := removeStale(path); err != nil {
			return nil, err
		}
		logger.Info("removed stale control socket", "path", path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The 0700 directory already keeps others out; this closes the window
	// for anyone who could traverse it.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if info.PID == 0 {
		info.PID = os.Getpid()
	}
	return &Server{ln: ln, path: path, broker: b, info: info, log: logger}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts clients until ctx is done, then closes the listener (which
// removes the socket) and every client connection, and waits for them.
func (s *Server) Serve(ctx context.Context) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		done  bool
	)
	stop := context.AfterFunc(ctx, func() {
		s.ln.Close()
		mu.Lock()
		done = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	defer s.ln.Close()

	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: %w", err)
		}
		mu.Lock()
		if done {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// conn is one client connection. Writes come from the reader (results) and
// the forwarder (pending lists), so they share a lock.
type conn struct {
	c   *net.UnixConn
	wmu sync.Mutex
	enc *json.Encoder
}

func (c *conn) send(r reply) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.enc.Encode(r)
}

func (s *Server) handle(ctx context.Context, uc *net.UnixConn) {
	uid, checked, err := peerUID(uc)
	if err != nil {
		s.log.Warn("control socket: cannot read peer credentials", "err", err)
		return
	}
	if checked && uid != os.Getuid() {
		s.log.Warn("control socket: refused a peer of another user", "uid", uid)
		return
	}
	peer := peerName(uid, checked)

	c := &conn{c: uc, enc: json.NewEncoder(uc)}
	info := s.info
	if err := c.send(reply{Type: "hello", Version: ProtocolVersion, Session: &info}); err != nil {
		return
	}

	var (
		sub *tunnel.Subscription
		fwd sync.WaitGroup
	)
	defer func() {
		if sub != nil {
			sub.Close() // ends the forwarder
			fwd.Wait()
		}
	}()

	sc := bufio.NewScanner(uc)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			c.send(reply{Type: "result", Error: codeBadRequest})
			return
		}
		switch req.Op {
		case "subscribe":
			if sub != nil {
				continue
			}
			sub = s.broker.Subscribe()
			fwd.Add(1)
			go func(sub *tunnel.Subscription) {
				defer fwd.Done()
				for list := range sub.Updates() {
					if list == nil {
						list = []policy.ApprovalRequest{}
					}
					if err := c.send(reply{Type: "pending", Pending: list}); err != nil {
						uc.Close() // the reader ends too
						return
					}
				}
			}(sub)
		case "answer":
			if req.Answer == nil || req.ID == "" {
				c.send(reply{Type: "result", Seq: req.Seq, Error: codeBadRequest})
				continue
			}
			a := *req.Answer
			a.Via = tunnel.ViaApprovals
			if a.By == "" {
				a.By = peer
			}
			err := s.broker.Answer(ctx, req.ID, a)
			if err == nil {
				s.log.Info("approval answered through the control socket", "id", req.ID, "verdict", a.Verdict, "by", a.By)
			}
			if c.send(reply{Type: "result", Seq: req.Seq, Error: errorCode(err)}) != nil {
				return
			}
		default:
			if c.send(reply{Type: "result", Seq: req.Seq, Error: codeBadRequest}) != nil {
				return
			}
		}
	}
}

// peerName is who an answer is recorded as when the client does not say.
func peerName(uid int, checked bool) string {
	if !checked {
		uid = os.Getuid()
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

// privateDir makes dir exist as a 0700 directory owned by this user.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s belongs to uid %d", ErrUnsafeDir, dir, st.Uid)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
	}
	return nil
}

// alive reports whether something accepts connections on path.
func alive(path string) bool {
	c, err := net.DialTimeout("unix", path, handshakeTimeout)
	if err != nil {
		// Refused or gone: nobody listens. Any other failure (a timeout, a
		// full backlog) is treated as alive, never to remove a live socket.
		return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist)
	}
	c.Close()
	return true
}

// removeStale removes path if it is a socket; anything else there is not ours
// to remove.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %s exists and is not a socket", ErrUnsafeDir, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	return nil
}
