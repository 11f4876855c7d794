package pg

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Proxy is one PostgreSQL tunnel: it accepts clients on a loopback
// listener, authenticates them with the per-tunnel credential, opens one
// upstream connection per client and relays messages through the hooks.
// A Proxy is safe for concurrent use; Serve may be called more than once
// (on different listeners).
type Proxy struct {
	cfg    Config
	upCfg  *pgconn.Config
	db     string
	secret scramSecret
	log    *slog.Logger
	maxMsg int
	hsTime time.Duration
	nextID atomic.Uint64

	mu    sync.Mutex
	byKey map[uint64]*conn // guardrun's BackendKeyData -> live connection
}

// NewProxy checks cfg and prepares the tunnel: it parses the upstream DSN
// (a bad one is a *ConfigError naming the field, its text free of the
// password) and derives the SCRAM secret for the tunnel credential.
func NewProxy(cfg Config) (*Proxy, error) {
	if cfg.User == "" || cfg.Password == "" {
		return nil, &ConfigError{Field: "User/Password", Err: errors.New("the tunnel credential is empty")}
	}
	if cfg.Upstream == "" {
		return nil, &ConfigError{Field: "Upstream", Err: errors.New("empty")}
	}
	up, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		// pgconn's parse errors redact the password already.
		return nil, &ConfigError{Field: "Upstream", Err: err}
	}
	if cfg.Database != "" {
		up.Database = cfg.Database
	}
	if up.RuntimeParams == nil {
		up.RuntimeParams = map[string]string{}
	}
	p := &Proxy{
		cfg:    cfg,
		upCfg:  up,
		db:     up.Database,
		secret: newSCRAMSecret(cfg.Password),
		log:    cfg.Logger,
		maxMsg: cfg.MaxMessageSize,
		hsTime: cfg.HandshakeTimeout,
		byKey:  map[uint64]*conn{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.maxMsg <= 0 {
		p.maxMsg = DefaultMaxMessageSize
	}
	if p.hsTime <= 0 {
		p.hsTime = DefaultHandshakeTimeout
	}
	return p, nil
}

// Database is the database the tunnel serves (and clients must name).
func (p *Proxy) Database() string { return p.db }

// Check opens one upstream connection with the real credential and closes
// it: `guardrun connect --check`. Its error is an *UpstreamError.
func (p *Proxy) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.hsTime)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, p.upCfg.Copy())
	if err != nil {
		return classifyUpstream(p.upCfg, err)
	}
	return pc.Close(ctx)
}

// Serve accepts connections on ln until ctx is cancelled or ln fails. It
// closes ln, and returns only after every connection handler has exited;
// cancelling ctx closes every connection. It returns nil after ctx was
// cancelled, else the listener's error.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		close(closed)
	})
	var wg sync.WaitGroup
	var err error
	delay := time.Duration(0)
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() || isTemporary(aerr) {
				// Out of file descriptors and the like: back off, as
				// net/http does, rather than spin or give up.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.log.Warn("accept failed; retrying", "err", aerr, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			err = aerr
			break
		}
		delay = 0
		wg.Go(func() { p.handle(ctx, nc) })
	}
	cancel()
	wg.Wait()
	if !stop() {
		<-closed
	} else {
		ln.Close()
	}
	return err
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (p *Proxy) event(kind EventKind, info ConnInfo, err error) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(Event{Kind: kind, Conn: info, Err: err})
	}
}

// register gives c a BackendKeyData of its own: random, unique among the
// live connections, and unrelated to the upstream's pid and secret.
func (p *Proxy) register(c *conn) {
	var b [8]byte
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		_, _ = rand.Read(b[:])
		key := binary.BigEndian.Uint64(b[:])
		if key>>32 == 0 { // pid 0 confuses some clients
			continue
		}
		if _, dup := p.byKey[key]; !dup {
			p.byKey[key] = c
			c.key = key
			return
		}
	}
}

func (p *Proxy) unregister(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKey[c.key] == c {
		delete(p.byKey, c.key)
	}
}

// cancel handles a CancelRequest that arrived on a new client connection:
// if it names a live connection by guardrun's keys, a held statement of
// that connection is refused and a cancel is sent upstream with the
// upstream's keys, over the same TLS mode as the connection itself.
// Unknown keys are ignored silently, as PostgreSQL does.
func (p *Proxy) cancel(ctx context.Context, pid uint32, secret []byte) {
	if len(secret) != 4 {
		return
	}
	key := uint64(pid)<<32 | uint64(binary.BigEndian.Uint32(secret))
	p.mu.Lock()
	c := p.byKey[key]
	p.mu.Unlock()
	if c == nil {
		return
	}
	c.cancelInspect()
	ctx, cancel := context.WithTimeout(ctx, p.hsTime)
	defer cancel()
	pc, err := pgconn.Construct(&pgconn.HijackedConn{
		Conn:              addrConn{addr: c.upAddr},
		TLSConfig:         c.upTLS,
		PID:               c.upPID,
		SecretKey:         c.upSecret,
		ParameterStatuses: map[string]string{},
		Config:            c.upCfg,
	})
	if err != nil {
		p.log.Warn("cancel: cannot prepare", "conn", c.id, "err", err)
		return
	}
	if err := pc.CancelRequest(ctx); err != nil {
		p.log.Warn("cancel: upstream request failed", "conn", c.id, "err", err)
	}
}

// addrConn is a stand-in connection that only knows the upstream address:
// pgconn's CancelRequest reads RemoteAddr from the connection it cancels
// and dials a new one; nothing else of it is used.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (a addrConn) RemoteAddr() net.Addr { return a.addr }
