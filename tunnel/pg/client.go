package pg

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// refusalSQL replaces a refused Query or Parse on its way upstream. It is
// not SQL in any PostgreSQL version, so the server answers with a syntax
// error at exactly the point the refused statement would have run: the
// server itself aborts the implicit or explicit transaction and, in the
// extended protocol, skips to Sync. The server-to-client loop swaps that
// error for the verdict's. Nothing of the refused text reaches the server.
const refusalSQL = "guardrun refused this statement"

// maxTracked bounds the client side's name maps, which a client could
// otherwise grow without limit by inventing names. Forgetting is safe: a
// forgotten portal description is asked for again; a forgotten refused name
// was never created upstream, so using it fails there.
const maxTracked = 4096

// c2sState is owned by the client-to-server loop.
type c2sState struct {
	seq             uint64
	skip            bool // a request was refused: discard until Sync
	refusedStmts    map[string]Verdict
	refusedPortals  map[string]Verdict
	portalDescribed map[string]bool
	ghost           string // a statement/portal name that never exists upstream
	out             []byte

	query pgproto3.Query
	parse pgproto3.Parse
	bind  pgproto3.Bind
	desc  pgproto3.Describe
	exec  pgproto3.Execute
	close pgproto3.Close
	fn    pgproto3.FunctionCall
}

func (c *conn) initRelay() {
	c.cr = msgReader{r: c.crb, max: c.p.maxMsg, from: "client"}
	c.uw = bufio.NewWriterSize(c.up, upstreamBufSize)
	c.cr.flush = c.uw.Flush
	c.ur = msgReader{r: bufio.NewReaderSize(c.up, upstreamBufSize), max: maxServerMessageSize, from: "server"}
	c.ur.flush = c.cw.Flush
	if c.hooks != nil {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		c.c2s.ghost = "guardrun.refused." + hex.EncodeToString(b)
		c.c2s.refusedStmts = map[string]Verdict{}
		c.c2s.refusedPortals = map[string]Verdict{}
		c.c2s.portalDescribed = map[string]bool{}
		c.s2c.stmts = map[string]stmtInfo{}
		c.s2c.portals = map[string]*portalInfo{}
	}
}

// clientLoop reads the client's messages, judges those that carry SQL, and
// forwards them. It returns nil after Terminate, errClientGone when the
// client disconnects, a *ProtocolError for a message that does not frame or
// parse (nothing of it was forwarded), or the upstream write error.
func (c *conn) clientLoop(ctx context.Context) error {
	for {
		raw, err := c.cr.next()
		if err != nil {
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				return err
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
				errors.Is(err, os.ErrDeadlineExceeded):
				return errClientGone
			}
			return fmt.Errorf("%w: %v", errClientGone, err)
		}
		typ, body := raw[0], raw[5:]
		if c.c2s.skip && typ != 'S' && typ != 'X' {
			// PostgreSQL discards everything until Sync after an error in
			// the extended protocol; after a refusal we do it here.
			c.cr.release()
			continue
		}
		if err := c.clientMessage(ctx, typ, body, raw); err != nil {
			if errors.Is(err, errTerminate) {
				_ = c.uw.Flush()
				return nil
			}
			return err
		}
		c.cr.release()
	}
}

var errTerminate = errors.New("terminate")

func badClient(typ byte, n int, err error) error {
	return &ProtocolError{From: "client", Type: typ, Size: n, Err: err}
}

func (c *conn) writeUp(raw []byte) error {
	_, err := c.uw.Write(raw)
	return err
}

func (c *conn) encodeUp(m pgproto3.FrontendMessage) error {
	buf, err := m.Encode(c.c2s.out[:0])
	if err != nil {
		return err
	}
	c.c2s.out = buf
	_, err = c.uw.Write(buf)
	return err
}

func (c *conn) clientMessage(ctx context.Context, typ byte, body, raw []byte) error {
	s := &c.c2s
	n := len(raw) - 1
	switch typ {
	case 'Q':
		if c.hooks == nil {
			if err := validQuery(body); err != nil {
				return badClient(typ, n, err)
			}
			return c.writeUp(raw)
		}
		if err := s.query.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		s.seq++
		v := c.inspect(ctx, Query{Seq: s.seq, Kind: SimpleQuery, SQL: s.query.String, TxStatus: TxStatus(c.txStatus.Load())})
		switch v.Action {
		case Forward:
			c.pending.push(entry{kind: eQuery, seq: s.seq})
			return c.writeUp(raw)
		case Rewrite:
			c.pending.push(entry{kind: eQuery, seq: s.seq})
			return c.encodeUp(&pgproto3.Query{String: v.SQL})
		default:
			c.pending.push(entry{kind: eQuery, seq: s.seq, refused: &v})
			return c.encodeUp(&pgproto3.Query{String: refusalSQL})
		}

	case 'P':
		if err := s.parse.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		name := s.parse.Name
		s.seq++
		v := c.inspect(ctx, Query{Seq: s.seq, Kind: ParseMessage, SQL: s.parse.Query, Name: name, TxStatus: TxStatus(c.txStatus.Load())})
		switch v.Action {
		case Forward, Rewrite:
			delete(s.refusedStmts, name)
			c.pending.push(entry{kind: eParse, seq: s.seq, name: name})
			if v.Action == Forward {
				return c.writeUp(raw)
			}
			return c.encodeUp(&pgproto3.Parse{Name: name, Query: v.SQL, ParameterOIDs: s.parse.ParameterOIDs})
		default:
			bound(s.refusedStmts)
			s.refusedStmts[name] = v
			s.skip = true
			c.pending.push(entry{kind: eParse, seq: s.seq, name: name, refused: &v})
			return c.encodeUp(&pgproto3.Parse{Name: name, Query: refusalSQL})
		}

	case 'B':
		if c.hooks == nil {
			if err := validBind(body); err != nil {
				return badClient(typ, n, err)
			}
			return c.writeUp(raw)
		}
		if err := s.bind.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		portal, stmt := s.bind.DestinationPortal, s.bind.PreparedStatement
		delete(s.portalDescribed, portal)
		if v, ok := s.refusedStmts[stmt]; ok {
			bound(s.refusedPortals)
			s.refusedPortals[portal] = v
			s.skip = true
			c.pending.push(entry{kind: eBind, name: portal, stmt: stmt, refused: &v})
			return c.encodeUp(&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: s.ghost})
		}
		delete(s.refusedPortals, portal)
		c.pending.push(entry{kind: eBind, name: portal, stmt: stmt})
		return c.writeUp(raw)

	case 'D':
		if err := s.desc.Decode(body); err != nil || (s.desc.ObjectType != 'S' && s.desc.ObjectType != 'P') {
			return badClient(typ, n, orMalformed(err))
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		name := s.desc.Name
		if s.desc.ObjectType == 'S' {
			if v, ok := s.refusedStmts[name]; ok {
				s.skip = true
				c.pending.push(entry{kind: eDescribeS, name: name, refused: &v})
				return c.encodeUp(&pgproto3.Describe{ObjectType: 'S', Name: s.ghost})
			}
			c.pending.push(entry{kind: eDescribeS, name: name})
			return c.writeUp(raw)
		}
		if v, ok := s.refusedPortals[name]; ok {
			s.skip = true
			c.pending.push(entry{kind: eDescribeP, name: name, refused: &v})
			return c.encodeUp(&pgproto3.Describe{ObjectType: 'P', Name: s.ghost})
		}
		bound(s.portalDescribed)
		s.portalDescribed[name] = true
		c.pending.push(entry{kind: eDescribeP, name: name})
		return c.writeUp(raw)

	case 'E':
		if err := s.exec.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		portal := s.exec.Portal
		if v, ok := s.refusedPortals[portal]; ok {
			s.skip = true
			c.pending.push(entry{kind: eExecute, name: portal, refused: &v})
			return c.encodeUp(&pgproto3.Execute{Portal: s.ghost})
		}
		if !s.portalDescribed[portal] {
			// The client did not ask what this portal's rows look like; the
			// result hook must know, so ask on its behalf and hide the
			// answer. A statement's description is not enough: SQL-level
			// PREPARE and DEALLOCATE can change what a name means behind
			// the protocol's back, a portal's description cannot lie.
			c.pending.push(entry{kind: eDescribeP, name: portal, internal: true})
			if err := c.encodeUp(&pgproto3.Describe{ObjectType: 'P', Name: portal}); err != nil {
				return err
			}
			bound(s.portalDescribed)
			s.portalDescribed[portal] = true
		}
		c.pending.push(entry{kind: eExecute, name: portal})
		return c.writeUp(raw)

	case 'C':
		if err := s.close.Decode(body); err != nil || (s.close.ObjectType != 'S' && s.close.ObjectType != 'P') {
			return badClient(typ, n, orMalformed(err))
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		if s.close.ObjectType == 'S' {
			delete(s.refusedStmts, s.close.Name)
		} else {
			delete(s.refusedPortals, s.close.Name)
			delete(s.portalDescribed, s.close.Name)
		}
		c.pending.push(entry{kind: eClose, name: s.close.Name, close: s.close.ObjectType})
		return c.writeUp(raw)

	case 'S':
		if len(body) != 0 {
			return badClient(typ, n, ErrMalformed)
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		s.skip = false
		c.pending.push(entry{kind: eSync})
		return c.writeUp(raw)

	case 'H':
		if len(body) != 0 {
			return badClient(typ, n, ErrMalformed)
		}
		return c.writeUp(raw)

	case 'd', 'c':
		if typ == 'c' && len(body) != 0 {
			return badClient(typ, n, ErrMalformed)
		}
		return c.writeUp(raw)

	case 'f':
		var m pgproto3.CopyFail
		if err := m.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		return c.writeUp(raw)

	case 'F':
		if err := s.fn.Decode(body); err != nil {
			return badClient(typ, n, err)
		}
		if c.hooks == nil {
			return c.writeUp(raw)
		}
		s.seq++
		v := c.inspect(ctx, Query{Seq: s.seq, Kind: FunctionCallMessage, Function: s.fn.Function, TxStatus: TxStatus(c.txStatus.Load())})
		if v.Action == Forward {
			c.pending.push(entry{kind: eFunc, seq: s.seq})
			return c.writeUp(raw)
		}
		if v.Action != Refuse {
			v = refusal("guardrun: a function call cannot be rewritten")
		}
		c.pending.push(entry{kind: eFunc, seq: s.seq, refused: &v})
		return c.encodeUp(&pgproto3.Query{String: refusalSQL})

	case 'X':
		if len(body) != 0 {
			return badClient(typ, n, ErrMalformed)
		}
		if err := c.writeUp(raw); err != nil {
			return err
		}
		return errTerminate
	}
	return badClient(typ, n, fmt.Errorf("%w: unexpected message type %q", ErrMalformed, typ))
}

func orMalformed(err error) error {
	if err == nil {
		return ErrMalformed
	}
	return err
}

func bound[V any](m map[string]V) {
	if len(m) >= maxTracked {
		clear(m)
	}
}

func refusal(msg string) Verdict {
	return Verdict{Action: Refuse, Code: "42501", Message: msg}
}

// inspect asks the hooks about one Query. Whatever was forwarded before it
// is flushed first, so the answers to earlier messages keep flowing while
// this connection waits. It never returns an Action other than Forward,
// Rewrite or Refuse; anything odd (a panic, an unknown action, SQL that
// cannot travel) becomes a refusal: fail closed.
func (c *conn) inspect(ctx context.Context, q Query) (v Verdict) {
	if c.uw.Buffered() > 0 {
		_ = c.uw.Flush() // an upstream failure surfaces on the next write or read
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.inspMu.Lock()
	c.inspCancel, c.inspByUser = cancel, false
	c.inspMu.Unlock()
	defer func() {
		c.inspMu.Lock()
		byUser := c.inspByUser
		c.inspCancel, c.inspByUser = nil, false
		c.inspMu.Unlock()
		if r := recover(); r != nil {
			c.log.Error("inspector panicked; statement refused", "panic", fmt.Sprint(r))
			v = refusal("guardrun: internal error while judging the statement")
			return
		}
		switch {
		case byUser:
			v = Verdict{Action: Refuse, Code: "57014", Message: "canceling statement due to user request"}
		case ctx.Err() != nil:
			v = Verdict{Action: Refuse, Code: "57P01", Message: "guardrun: the tunnel is closing"}
		}
		switch v.Action {
		case Forward:
		case Rewrite:
			if strings.IndexByte(v.SQL, 0) >= 0 {
				v = refusal("guardrun: rewritten statement contains a NUL byte")
			}
		case Refuse:
			if v.Code == "" {
				v.Code = "42501"
			}
			if v.Message == "" {
				v.Message = "guardrun: statement refused"
			}
		default:
			v = refusal(fmt.Sprintf("guardrun: unknown verdict %d", v.Action))
		}
	}()
	return c.hooks.Inspect(ictx, q)
}
