package pg

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// s2cState is owned by the server-to-client loop.
type s2cState struct {
	params map[string]string // upstream ParameterStatus at startup; handshake only
	out    []byte            // encode buffer for the client side

	stmts   map[string]stmtInfo
	portals map[string]*portalInfo

	// the result being streamed
	open   bool
	copy   bool
	filter RowFilter
	portal *portalInfo // non-nil when the result belongs to an Execute
	index  int         // statements completed in the current simple Query

	vals [][]byte
	rd   pgproto3.RowDescription
	er   pgproto3.ErrorResponse
	nr   pgproto3.NoticeResponse
	nf   pgproto3.NotificationResponse
	cc   pgproto3.CommandComplete
	rfq  pgproto3.ReadyForQuery
	cout pgproto3.CopyOutResponse
}

type stmtInfo struct {
	seq uint64 // the Parse's Query.Seq
}

type portalInfo struct {
	seq       uint64
	fields    []Field
	described bool
	filter    RowFilter // a suspended result's filter, resumed by the next Execute
	suspended bool
}

// errDesync is a server message that does not fit the requests in flight:
// the proxy no longer knows what the rows mean, so it stops (fail closed).
var errDesync = errors.New("server answer does not match the requests in flight")

func badServer(typ byte, n int, err error) error {
	return &ProtocolError{From: "server", Type: typ, Size: n, Err: err}
}

// serverLoop relays the server's messages to the client through the result
// hooks. It returns nil when the handler is closing the connection, and
// otherwise tells the client why it ends (08006 for a lost upstream, 08P01
// for a server message that does not parse or fit) before returning.
func (c *conn) serverLoop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("result hook panicked; closing the connection", "panic", fmt.Sprint(r))
			err = fmt.Errorf("pg: result hook panicked: %v", r)
			c.fatalToClient("XX000", "guardrun: internal error while filtering results", "")
		}
	}()
	for {
		raw, rerr := c.ur.next()
		if rerr != nil {
			return c.serverGone(rerr)
		}
		if c.hooks == nil {
			err = c.passServer(raw)
		} else {
			err = c.serverMessage(raw)
		}
		c.ur.release()
		if err != nil {
			if c.closing.Load() {
				return nil
			}
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.log.Warn("closing: bad server message", "err", err)
				c.fatalToClient("08P01", "guardrun: protocol violation from the upstream server", pe.Error())
				return err
			}
			// A write to the client failed: it is gone.
			return nil
		}
	}
}

func (c *conn) serverGone(err error) error {
	if c.closing.Load() {
		return nil
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		c.log.Warn("closing: bad server message", "err", err)
		c.fatalToClient("08P01", "guardrun: protocol violation from the upstream server", pe.Error())
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		// the handler cut the upstream off: closing
		return nil
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		c.log.Debug("upstream read failed", "err", err)
	}
	c.fatalToClient("08006", "guardrun: lost the connection to the upstream server", "")
	return fmt.Errorf("%w: %v", ErrUpstreamLost, err)
}

// fatalToClient tells the client why its connection ends, without waiting
// long for a client that does not read.
func (c *conn) fatalToClient(code, msg, detail string) {
	_ = c.client.SetWriteDeadline(time.Now().Add(time.Second))
	c.writeFatal(code, msg, detail)
}

func (c *conn) writeClient(raw []byte) error {
	_, err := c.cw.Write(raw)
	return err
}

func (c *conn) encodeClient(m pgproto3.BackendMessage) error {
	buf, err := m.Encode(c.s2c.out[:0])
	if err != nil {
		return err
	}
	c.s2c.out = buf
	_, err = c.cw.Write(buf)
	return err
}

// validServer checks that a server message parses. DataRow and CopyData
// are checked without allocating.
func validServer(typ byte, body []byte) error {
	var err error
	switch typ {
	case 'D':
		return walkDataRow(body, nil)
	case 'd':
		return nil
	case '1', '2', '3', 'n', 'I', 's', 'c':
		if len(body) != 0 {
			return ErrMalformed
		}
	case 'C':
		var m pgproto3.CommandComplete
		err = m.Decode(body)
	case 'Z':
		var m pgproto3.ReadyForQuery
		err = m.Decode(body)
	case 'T':
		var m pgproto3.RowDescription
		err = m.Decode(body)
	case 't':
		var m pgproto3.ParameterDescription
		err = m.Decode(body)
	case 'E':
		var m pgproto3.ErrorResponse
		err = m.Decode(body)
	case 'N':
		var m pgproto3.NoticeResponse
		err = m.Decode(body)
	case 'A':
		var m pgproto3.NotificationResponse
		err = m.Decode(body)
	case 'S':
		var m pgproto3.ParameterStatus
		err = m.Decode(body)
	case 'G':
		var m pgproto3.CopyInResponse
		err = m.Decode(body)
	case 'H':
		var m pgproto3.CopyOutResponse
		err = m.Decode(body)
	case 'W':
		var m pgproto3.CopyBothResponse
		err = m.Decode(body)
	case 'V':
		var m pgproto3.FunctionCallResponse
		err = m.Decode(body)
	default:
		return fmt.Errorf("%w: unexpected message type %q", ErrMalformed, typ)
	}
	return err
}

// passServer relays one message when no hook is installed.
func (c *conn) passServer(raw []byte) error {
	typ, body := raw[0], raw[5:]
	var err error
	if typ == 'T' {
		err = c.s2c.rd.Decode(body) // reuses its field slice: no allocation per query
	} else {
		err = validServer(typ, body)
	}
	if err != nil {
		return badServer(typ, len(raw)-1, err)
	}
	switch typ {
	case 'Z':
		c.txStatus.Store(uint32(body[0]))
	case 'A':
		return c.notification(body)
	}
	return c.writeClient(raw)
}

// notification relays a NotificationResponse, through the hook when there
// is one. A notification from this connection's own upstream backend
// carries guardrun's pid, so clients that ignore their own notifications
// still recognise them.
func (c *conn) notification(body []byte) error {
	m := &c.s2c.nf
	if err := m.Decode(body); err != nil {
		return badServer('A', len(body)+4, err)
	}
	if m.PID == c.upPID {
		m.PID = uint32(c.key >> 32)
	}
	if c.hooks != nil {
		m.Payload = c.hooks.Notification(m.Channel, m.Payload)
		m.Payload = strings.ReplaceAll(m.Payload, "\x00", "")
	}
	return c.encodeClient(m)
}

func fieldsOf(rd *pgproto3.RowDescription) []Field {
	fs := make([]Field, len(rd.Fields))
	for i, f := range rd.Fields {
		fs[i] = Field{Name: string(f.Name), TableOID: f.TableOID, Column: f.TableAttributeNumber, TypeOID: f.DataTypeOID, Format: f.Format}
	}
	return fs
}

func (c *conn) head() (entry, error) {
	e, ok := c.pending.peek()
	if !ok {
		return entry{}, errDesync
	}
	return e, nil
}

// startResult opens the current result and asks the hook for its filter.
func (c *conn) startResult(info ResultInfo, portal *portalInfo) {
	s := &c.s2c
	s.open, s.copy, s.portal = true, info.Copy, portal
	if portal != nil && portal.suspended {
		// a suspended portal continues the result it started
		s.filter, portal.suspended, portal.filter = portal.filter, false, nil
		return
	}
	s.filter = c.hooks.StartResult(info)
}

func (c *conn) endResult(tag, code string) {
	s := &c.s2c
	if s.filter != nil {
		s.filter.End(tag, code)
	}
	s.open, s.copy, s.filter, s.portal = false, false, nil, nil
}

// startExecute opens the result of the Execute at the head of the queue.
func (c *conn) startExecute(e entry, fields []Field, copyOut bool) error {
	p := c.s2c.portals[e.name]
	if p == nil || !p.described {
		return errDesync
	}
	if !copyOut {
		fields = p.fields
	}
	c.startResult(ResultInfo{Seq: p.seq, Fields: fields, Copy: copyOut}, p)
	return nil
}

func (c *conn) dropPortal(name string) {
	if p := c.s2c.portals[name]; p != nil {
		if p.suspended && p.filter != nil {
			p.filter.End("", "")
		}
		delete(c.s2c.portals, name)
	}
}

// serverMessage relays one server message with hooks installed: it follows
// the requests in flight to know which statement and which columns each
// row belongs to, and passes rows, copy data, errors, notices and
// notifications through the hooks.
func (c *conn) serverMessage(raw []byte) error {
	s := &c.s2c
	typ, body := raw[0], raw[5:]
	n := len(raw) - 1
	bad := func(err error) error { return badServer(typ, n, err) }

	switch typ {
	case 'D':
		if !s.open {
			e, err := c.head()
			if err != nil || e.kind != eExecute || e.refused != nil {
				return bad(errDesync)
			}
			if err := c.startExecute(e, nil, false); err != nil {
				return bad(err)
			}
		}
		if s.filter == nil || s.copy {
			if err := walkDataRow(body, nil); err != nil {
				return bad(err)
			}
			return c.writeClient(raw)
		}
		s.vals = s.vals[:0]
		if err := walkDataRow(body, func(_ int, v []byte) { s.vals = append(s.vals, v) }); err != nil {
			return bad(err)
		}
		s.filter.Row(s.vals)
		s.out = appendDataRow(s.out[:0], s.vals)
		clear(s.vals)
		return c.writeClient(s.out)

	case 'd':
		if s.open && s.copy && s.filter != nil {
			s.out = appendCopyData(s.out[:0], s.filter.CopyData(body))
			return c.writeClient(s.out)
		}
		return c.writeClient(raw)

	case 'T':
		if err := s.rd.Decode(body); err != nil {
			return bad(err)
		}
		e, err := c.head()
		if err != nil || e.refused != nil {
			return bad(errDesync)
		}
		switch e.kind {
		case eDescribeS:
			c.pending.pop()
		case eDescribeP:
			p := s.portals[e.name]
			if p == nil {
				return bad(errDesync)
			}
			p.fields, p.described = fieldsOf(&s.rd), true
			c.pending.pop()
			if e.internal {
				return nil
			}
		case eQuery:
			if s.open {
				return bad(errDesync)
			}
			c.startResult(ResultInfo{Seq: e.seq, Index: s.index, Fields: fieldsOf(&s.rd)}, nil)
		default:
			return bad(errDesync)
		}
		return c.writeClient(raw)

	case 'n':
		if len(body) != 0 {
			return bad(ErrMalformed)
		}
		e, err := c.head()
		if err != nil || e.refused != nil {
			return bad(errDesync)
		}
		switch e.kind {
		case eDescribeS:
		case eDescribeP:
			p := s.portals[e.name]
			if p == nil {
				return bad(errDesync)
			}
			p.fields, p.described = nil, true
		default:
			return bad(errDesync)
		}
		c.pending.pop()
		if e.internal {
			return nil
		}
		return c.writeClient(raw)

	case 't':
		if err := validServer(typ, body); err != nil {
			return bad(err)
		}
		if e, err := c.head(); err != nil || e.kind != eDescribeS || e.refused != nil {
			return bad(errDesync)
		}
		return c.writeClient(raw)

	case '1', '2', '3':
		if len(body) != 0 {
			return bad(ErrMalformed)
		}
		e, err := c.head()
		if err != nil || e.refused != nil {
			return bad(errDesync)
		}
		switch {
		case typ == '1' && e.kind == eParse:
			// Not bounded: each entry mirrors a statement the server holds,
			// and forgetting one would leave its rows without columns.
			s.stmts[e.name] = stmtInfo{seq: e.seq}
		case typ == '2' && e.kind == eBind:
			c.dropPortal(e.name)
			// A statement PREPAREd in SQL is unknown here: seq 0. Fields
			// come from the portal's Describe (the client's or ours).
			s.portals[e.name] = &portalInfo{seq: s.stmts[e.stmt].seq}
		case typ == '3' && e.kind == eClose:
			if e.close == 'S' {
				delete(s.stmts, e.name)
			} else {
				c.dropPortal(e.name)
			}
		default:
			return bad(errDesync)
		}
		c.pending.pop()
		return c.writeClient(raw)

	case 'C', 'I':
		tag := ""
		if typ == 'C' {
			if err := s.cc.Decode(body); err != nil {
				return bad(err)
			}
			tag = string(s.cc.CommandTag)
		} else if len(body) != 0 {
			return bad(ErrMalformed)
		}
		e, err := c.head()
		if err != nil || e.refused != nil {
			return bad(errDesync)
		}
		switch e.kind {
		case eQuery:
			if !s.open {
				c.startResult(ResultInfo{Seq: e.seq, Index: s.index}, nil)
			}
			c.endResult(tag, "")
			s.index++
		case eExecute:
			if !s.open {
				if err := c.startExecute(e, nil, false); err != nil {
					return bad(err)
				}
			}
			c.endResult(tag, "")
			c.pending.pop()
		default:
			return bad(errDesync)
		}
		return c.writeClient(raw)

	case 's':
		if len(body) != 0 {
			return bad(ErrMalformed)
		}
		e, err := c.head()
		if err != nil || e.kind != eExecute || e.refused != nil {
			return bad(errDesync)
		}
		if !s.open {
			if err := c.startExecute(e, nil, false); err != nil {
				return bad(err)
			}
		}
		if p := s.portal; p != nil {
			p.filter, p.suspended = s.filter, true
		}
		s.open, s.copy, s.filter, s.portal = false, false, nil, nil
		c.pending.pop()
		return c.writeClient(raw)

	case 'H':
		if err := s.cout.Decode(body); err != nil {
			return bad(err)
		}
		e, err := c.head()
		if err != nil || e.refused != nil || s.open {
			return bad(errDesync)
		}
		fields := make([]Field, len(s.cout.ColumnFormatCodes))
		for i, f := range s.cout.ColumnFormatCodes {
			fields[i].Format = int16(f)
		}
		switch e.kind {
		case eQuery:
			c.startResult(ResultInfo{Seq: e.seq, Index: s.index, Fields: fields, Copy: true}, nil)
		case eExecute:
			if err := c.startExecute(e, fields, true); err != nil {
				return bad(err)
			}
		default:
			return bad(errDesync)
		}
		return c.writeClient(raw)

	case 'G', 'W', 'c', 'S':
		if err := validServer(typ, body); err != nil {
			return bad(err)
		}
		return c.writeClient(raw)

	case 'V':
		if err := validServer(typ, body); err != nil {
			return bad(err)
		}
		if e, err := c.head(); err != nil || e.kind != eFunc || e.refused != nil {
			return bad(errDesync)
		}
		return c.writeClient(raw)

	case 'A':
		return c.notification(body)

	case 'N':
		m := &s.nr
		if err := m.Decode(body); err != nil {
			return bad(err)
		}
		c.serverText((*pgproto3.ErrorResponse)(m), true)
		return c.encodeClient(m)

	case 'E':
		return c.serverError(body, n)

	case 'Z':
		if err := s.rfq.Decode(body); err != nil {
			return bad(err)
		}
		if s.open {
			return bad(errDesync)
		}
		for {
			e, ok := c.pending.pop()
			if !ok {
				return bad(errDesync)
			}
			if e.kind == eSync || e.kind == eQuery || e.kind == eFunc {
				break
			}
		}
		s.index = 0
		c.txStatus.Store(uint32(s.rfq.TxStatus))
		if s.rfq.TxStatus == 'I' {
			// protocol-level portals do not outlive their transaction
			for name := range s.portals {
				c.dropPortal(name)
			}
		}
		return c.writeClient(raw)
	}
	return bad(fmt.Errorf("%w: unexpected message type %q", ErrMalformed, typ))
}

// serverText passes an ErrorResponse's or NoticeResponse's texts through
// the hook.
func (c *conn) serverText(m *pgproto3.ErrorResponse, notice bool) {
	sm := ServerMessage{Severity: m.Severity, Code: m.Code, Message: m.Message, Detail: m.Detail, Hint: m.Hint, Where: m.Where}
	c.hooks.ServerError(&sm, notice)
	m.Severity, m.Code, m.Message = clean(sm.Severity), clean(sm.Code), clean(sm.Message)
	m.Detail, m.Hint, m.Where = clean(sm.Detail), clean(sm.Hint), clean(sm.Where)
}

func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func (c *conn) serverError(body []byte, n int) error {
	s := &c.s2c
	m := &s.er
	if err := m.Decode(body); err != nil {
		return badServer('E', n, err)
	}
	e, ok := c.pending.peek()
	if !ok {
		// Not an answer to anything: the server is ending the session
		// (shutdown, idle timeout, terminate).
		c.serverText(m, false)
		return c.encodeClient(m)
	}
	if e.refused != nil {
		// The stand-in for a refused request failed, as it must: the client
		// gets the verdict instead of the stand-in's error.
		v := e.refused
		*m = pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: clean(v.Code),
			Message: clean(v.Message), Detail: clean(v.Detail), Hint: clean(v.Hint)}
	} else {
		c.serverText(m, false)
		switch e.kind {
		case eQuery:
			if !s.open {
				c.startResult(ResultInfo{Seq: e.seq, Index: s.index}, nil)
			}
			c.endResult("", m.Code)
		case eExecute:
			if !s.open {
				if p := s.portals[e.name]; p != nil && p.described {
					c.startResult(ResultInfo{Seq: p.seq, Fields: p.fields}, p)
				}
			}
			if s.open {
				c.endResult("", m.Code)
			}
		}
	}
	switch e.kind {
	case eQuery, eFunc, eSync:
		// ReadyForQuery follows and pops it
	default:
		// the server skips to Sync; ReadyForQuery pops the rest
		c.pending.pop()
		if s.open {
			c.endResult("", m.Code)
		}
	}
	return c.encodeClient(m)
}
