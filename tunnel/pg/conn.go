package pg

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102

	clientBufSize   = 32 << 10
	upstreamBufSize = 64 << 10
)

// conn is one client connection and its upstream. Fields are grouped by the
// goroutine that owns them: the handler (handle, then the client-to-server
// loop) and the server-to-client loop. Shared fields are atomic or guarded.
type conn struct {
	p    *Proxy
	id   uint64
	info ConnInfo
	log  *slog.Logger

	client net.Conn
	up     net.Conn
	hooks  ConnHooks // nil: pure pass-through, no tracking

	// upstream identity, for cancel
	key      uint64 // guardrun's pid<<32 | secret, as handed to the client
	upPID    uint32
	upSecret []byte
	upTLS    *tls.Config
	upCfg    *pgconn.Config
	upAddr   net.Addr

	// owned by the client-to-server loop
	crb *bufio.Reader
	cr  msgReader
	uw  *bufio.Writer
	c2s c2sState

	// owned by the server-to-client loop (the handler writes to the client
	// only before that loop starts and after it has exited)
	cw  *bufio.Writer
	ur  msgReader
	s2c s2cState

	pending  pendingQueue
	txStatus atomic.Uint32 // last ReadyForQuery status
	closing  atomic.Bool   // the handler is tearing down: upstream EOF is expected

	inspMu     sync.Mutex
	inspCancel context.CancelFunc // set while Inspect runs
	inspByUser bool               // a CancelRequest cancelled the running Inspect
}

func (p *Proxy) handle(ctx context.Context, nc net.Conn) {
	c := &conn{p: p, id: p.nextID.Add(1), client: nc}
	c.info = ConnInfo{ID: c.id, Remote: nc.RemoteAddr().String()}
	c.log = p.log.With("conn", c.id)
	defer nc.Close()

	_ = nc.SetDeadline(time.Now().Add(p.hsTime))
	c.crb = bufio.NewReaderSize(nc, clientBufSize)
	c.cw = bufio.NewWriterSize(nc, clientBufSize)
	// A shutdown must not wait for a slow client's handshake.
	hsCut := make(chan struct{})
	stopHS := context.AfterFunc(ctx, func() {
		_ = nc.SetDeadline(time.Now())
		close(hsCut)
	})
	params, err := c.startup(ctx)
	if !stopHS() {
		<-hsCut
		if err == nil {
			c.up.Close()
			err = ctx.Err()
		}
	}
	if err != nil {
		if !errors.Is(err, errCancelHandled) {
			c.log.Debug("handshake ended", "err", err)
		}
		return
	}
	defer c.up.Close()
	_ = nc.SetDeadline(time.Time{})
	p.register(c)
	defer p.unregister(c)
	if err := c.greet(params); err != nil {
		c.log.Debug("greeting failed", "err", err)
		return
	}

	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.cfg.Hooks != nil {
		c.hooks = p.cfg.Hooks.Open(connCtx, c.info)
	}
	c.initRelay()
	p.event(ConnOpened, c.info, nil)
	c.log.Debug("connection open", "user", c.info.User, "app", c.info.Application)

	// Closing both sockets is how cancellation reaches goroutines blocked in
	// reads and writes; deadlines in the past, not Close, so the handler
	// can still say goodbye on a protocol error.
	unblocked := make(chan struct{})
	stop := context.AfterFunc(connCtx, func() {
		now := time.Now()
		_ = c.client.SetReadDeadline(now)
		_ = c.up.SetDeadline(now)
		close(unblocked)
	})

	s2cDone := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := c.serverLoop()
		s2cDone <- err
		if err != nil {
			cancel()
		}
	})
	cerr := c.clientLoop(connCtx)

	c.closing.Store(true)
	var pe *ProtocolError
	clientViolation := errors.As(cerr, &pe) && pe.From == "client"
	if cerr == nil || errors.Is(cerr, io.EOF) {
		cerr = nil
	}
	_ = c.up.SetDeadline(time.Now())
	// The server loop may be blocked writing to a client that stopped
	// reading; give it a moment, then cut it off.
	_ = c.client.SetWriteDeadline(time.Now().Add(time.Second))
	wg.Wait()
	serr := <-s2cDone
	if !stop() {
		<-unblocked
	}
	switch {
	case clientViolation:
		_ = c.client.SetWriteDeadline(time.Now().Add(time.Second))
		c.cw.Reset(c.client)
		c.writeFatal("08P01", "guardrun: protocol violation: "+pe.Err.Error(), pe.Error())
	case ctx.Err() != nil && serr == nil && cerr != nil:
		// The tunnel is closing under a client that is still there: say so,
		// as PostgreSQL does on shutdown.
		_ = c.client.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.cw.Reset(c.client)
		c.writeFatal("57P01", "guardrun: terminating connection because the tunnel is closing", "")
	}
	final := serr
	if final == nil {
		final = cerr
	}
	if errors.Is(final, errClientGone) {
		final = nil
	}
	if ctx.Err() != nil && serr == nil {
		final = ctx.Err() // the tunnel is shutting down
	}
	if c.hooks != nil {
		c.hooks.Close(final)
	}
	p.event(ConnClosed, c.info, final)
	c.log.Debug("connection closed", "err", final)
}

var (
	errCancelHandled = errors.New("cancel request handled")
	errClientGone    = errors.New("client went away")
)

// startup runs the client's startup phase and authentication, then opens
// the upstream connection. It returns the client's startup parameters.
func (c *conn) startup(ctx context.Context) (map[string]string, error) {
	var params map[string]string
	var version uint32
	for params == nil {
		body, err := readStartup(c.crb, maxStartupSize)
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.writeFatal("08P01", "guardrun: invalid startup packet", pe.Error())
			}
			return nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == sslRequestCode, code == gssEncRequestCode:
			if len(body) != 4 {
				c.writeFatal("08P01", "guardrun: invalid startup packet", "")
				return nil, &ProtocolError{From: "client", Size: len(body) + 4, Err: ErrMalformed}
			}
			// No TLS on the loopback leg: the client retries in plaintext
			// (or gives up, when it insists on encryption).
			if _, err := c.client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code == cancelRequestCode:
			var req pgproto3.CancelRequest
			if err := req.Decode(body); err != nil {
				return nil, err
			}
			c.p.cancel(ctx, req.ProcessID, req.SecretKey)
			return nil, errCancelHandled
		case code>>16 == 3:
			params, err = parseStartupParams(body[4:])
			if err != nil {
				c.writeFatal("08P01", "guardrun: invalid startup packet", err.Error())
				return nil, &ProtocolError{From: "client", Size: len(body) + 4, Err: err}
			}
			version = code
		default:
			c.writeFatal("0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff), "")
			return nil, &ProtocolError{From: "client", Size: len(body) + 4, Err: ErrMalformed}
		}
	}
	c.info.User = params["user"]
	c.info.Database = params["database"]
	c.info.Application = params["application_name"]

	if c.info.User == "" {
		c.writeFatal("28000", "no PostgreSQL user name specified in startup packet", "")
		c.p.event(AuthFailed, c.info, ErrWrongUser)
		return nil, ErrWrongUser
	}
	if c.info.User != c.p.cfg.User {
		c.writeFatal("28000", fmt.Sprintf("guardrun: this tunnel serves user %q, not %q", c.p.cfg.User, c.info.User), "")
		c.p.event(AuthFailed, c.info, ErrWrongUser)
		return nil, ErrWrongUser
	}
	if c.info.Database == "" {
		c.info.Database = c.p.db
	}
	if c.info.Database != c.p.db {
		c.writeFatal("3D000", fmt.Sprintf("guardrun: this tunnel serves database %q, not %q", c.p.db, c.info.Database), "")
		c.p.event(AuthFailed, c.info, ErrWrongDatabase)
		return nil, ErrWrongDatabase
	}

	// A 3.x client newer than 3.0 is told we speak 3.0, and which protocol
	// options (_pq_.*) we ignored, as PostgreSQL does.
	if version != pgproto3.ProtocolVersion30 {
		var opts []string
		for k := range params {
			if strings.HasPrefix(k, "_pq_.") {
				opts = append(opts, k)
			}
		}
		slices.Sort(opts)
		c.send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: opts})
	}

	final, err := c.authenticate()
	if err != nil {
		return nil, err
	}
	if err := c.connectUpstream(ctx, params); err != nil {
		var ue *UpstreamError
		msg := "guardrun: cannot connect to the upstream server"
		if errors.As(err, &ue) {
			msg = fmt.Sprintf("guardrun: cannot connect to the upstream server %s: %v", ue.Addr, ue.Kind)
		}
		c.writeFatal("08001", msg, "")
		c.p.event(UpstreamFailed, c.info, err)
		return nil, err
	}
	c.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(final)})
	return params, nil
}

func parseStartupParams(b []byte) (map[string]string, error) {
	params := map[string]string{}
	for {
		if len(b) == 0 {
			return nil, ErrMalformed
		}
		if b[0] == 0 {
			if len(b) != 1 {
				return nil, ErrMalformed
			}
			return params, nil
		}
		k, rest, ok := cutNul(b)
		if !ok {
			return nil, ErrMalformed
		}
		v, rest, ok := cutNul(rest)
		if !ok {
			return nil, ErrMalformed
		}
		params[k] = v
		b = rest
	}
}

func cutNul(b []byte) (string, []byte, bool) {
	for i, x := range b {
		if x == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// authenticate runs SCRAM-SHA-256 against the tunnel credential and returns
// the server-final-message to send once the upstream is up.
func (c *conn) authenticate() (string, error) {
	c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := c.cw.Flush(); err != nil {
		return "", err
	}
	rd := msgReader{r: c.crb, max: maxStartupSize, from: "client"}
	fail := func(err error) (string, error) {
		if errors.Is(err, ErrAuthFailed) {
			c.writeFatal("28P01", fmt.Sprintf("password authentication failed for user %q", c.info.User), "")
			c.p.event(AuthFailed, c.info, ErrAuthFailed)
			return "", err
		}
		var pe *ProtocolError
		if errors.As(err, &pe) || errors.Is(err, errSCRAM) {
			c.writeFatal("08P01", "guardrun: invalid SCRAM-SHA-256 authentication exchange", "")
			c.p.event(AuthFailed, c.info, fmt.Errorf("%w: %v", ErrAuthFailed, err))
		}
		return "", err
	}
	raw, err := rd.next()
	if err != nil {
		return fail(err)
	}
	if raw[0] != 'p' {
		return fail(&ProtocolError{From: "client", Type: raw[0], Size: len(raw) - 1, Err: ErrMalformed})
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(raw[5:]); err != nil || first.AuthMechanism != "SCRAM-SHA-256" {
		return fail(errSCRAM)
	}
	s := scramServer{secret: c.p.secret}
	sf, err := s.first(first.Data)
	if err != nil {
		return fail(err)
	}
	c.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(sf)})
	if err := c.cw.Flush(); err != nil {
		return "", err
	}
	raw, err = rd.next()
	if err != nil {
		return fail(err)
	}
	if raw[0] != 'p' {
		return fail(&ProtocolError{From: "client", Type: raw[0], Size: len(raw) - 1, Err: ErrMalformed})
	}
	var resp pgproto3.SASLResponse
	if err := resp.Decode(raw[5:]); err != nil {
		return fail(errSCRAM)
	}
	final, err := s.final(resp.Data)
	if err != nil {
		return fail(err)
	}
	return final, nil
}

// connectUpstream opens the real connection with the real credential and
// the client's startup parameters, then takes it over at the message level.
func (c *conn) connectUpstream(ctx context.Context, params map[string]string) error {
	cfg := c.p.upCfg.Copy()
	rp := make(map[string]string, len(cfg.RuntimeParams)+len(params))
	for k, v := range cfg.RuntimeParams {
		rp[k] = v
	}
	for k, v := range params {
		if k == "user" || k == "database" || strings.HasPrefix(k, "_pq_.") {
			continue
		}
		rp[k] = v
	}
	cfg.RuntimeParams = rp
	ctx, cancel := context.WithTimeout(ctx, c.p.hsTime)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return classifyUpstream(cfg, err)
	}
	// pgconn may have a background reader blocked in Read (it starts one
	// when a write is slow, e.g. on a loaded machine) that would swallow
	// the first answers of the relayed session; SyncConn makes sure it has
	// stopped and nothing is left in pgconn's buffer before we take over.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return classifyUpstream(cfg, err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return classifyUpstream(cfg, err)
	}
	c.up = hc.Conn
	c.upPID = hc.PID
	c.upSecret = hc.SecretKey
	c.upTLS = hc.TLSConfig
	c.upCfg = hc.Config
	c.upAddr = hc.Conn.RemoteAddr()
	c.s2c.params = hc.ParameterStatuses
	c.txStatus.Store(uint32(hc.TxStatus))
	return nil
}

// greet finishes the client's startup: AuthenticationOk, the upstream's
// parameters, guardrun's own BackendKeyData, ReadyForQuery.
func (c *conn) greet(_ map[string]string) error {
	c.send(&pgproto3.AuthenticationOk{})
	keys := make([]string, 0, len(c.s2c.params))
	for k := range c.s2c.params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.send(&pgproto3.ParameterStatus{Name: k, Value: c.s2c.params[k]})
	}
	var secret [4]byte
	binary.BigEndian.PutUint32(secret[:], uint32(c.key))
	c.send(&pgproto3.BackendKeyData{ProcessID: uint32(c.key >> 32), SecretKey: secret[:]})
	st := byte(c.txStatus.Load())
	if st == 0 {
		st = 'I'
	}
	c.send(&pgproto3.ReadyForQuery{TxStatus: st})
	c.s2c.params = nil
	return c.cw.Flush()
}

// send encodes a message into the client writer. Only the goroutine that
// currently owns the client side may call it.
func (c *conn) send(m pgproto3.BackendMessage) {
	buf, err := m.Encode(c.s2c.out[:0])
	if err != nil { // only for messages too large to encode; ours never are
		c.log.Error("cannot encode message", "err", err)
		return
	}
	c.s2c.out = buf
	_, _ = c.cw.Write(buf)
}

// writeFatal sends a FATAL ErrorResponse and flushes; the caller closes.
func (c *conn) writeFatal(code, msg, detail string) {
	c.send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg, Detail: detail})
	_ = c.cw.Flush()
}

// cancelInspect refuses the statement this connection is holding, if any
// (a CancelRequest arrived while a human was being asked).
func (c *conn) cancelInspect() {
	c.inspMu.Lock()
	defer c.inspMu.Unlock()
	if c.inspCancel != nil {
		c.inspByUser = true
		c.inspCancel()
	}
}
