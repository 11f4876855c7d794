package pg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolError is a message that did not frame or did not parse. The
// connection it arrived on is closed with SQLSTATE 08P01; nothing of the
// message is forwarded.
type ProtocolError struct {
	From string // "client" or "server"
	Type byte   // message type byte, 0 for untyped startup packets
	Size int    // declared length including the length word, when known
	Err  error  // ErrMessageTooLarge, ErrMalformed, or a decoder's error
}

func (e *ProtocolError) Error() string {
	t := "startup packet"
	if e.Type != 0 {
		t = fmt.Sprintf("message %q", e.Type)
	}
	return fmt.Sprintf("pg: %s sent a bad %s (%d bytes): %v", e.From, t, e.Size, e.Err)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// msgReader frames PostgreSQL messages (type byte, int32 length, body) out
// of a buffered reader. The slice next returns aliases the reader's buffer
// (or a scratch buffer for messages larger than it) and is valid only until
// the next call. Before any read that could block, flush is called, so
// whatever was produced from the input so far leaves before we wait for
// more: the relay flushes exactly when its input runs dry.
type msgReader struct {
	r       *bufio.Reader
	max     int    // largest accepted length word
	from    string // for errors
	flush   func() error
	scratch []byte
}

// scratchKeep is the largest scratch buffer kept between messages; a larger
// one (a single huge message) is released so memory stays flat.
const scratchKeep = 1 << 20

func (m *msgReader) fill(n int) error {
	if m.r.Buffered() >= n {
		return nil
	}
	if m.flush != nil {
		if err := m.flush(); err != nil {
			return err
		}
	}
	return nil
}

// next returns one whole message: raw[0] is the type, raw[5:] the body.
func (m *msgReader) next() (raw []byte, err error) {
	if err := m.fill(5); err != nil {
		return nil, err
	}
	hdr, err := m.r.Peek(5)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:5])))
	if n < 4 {
		return nil, &ProtocolError{From: m.from, Type: hdr[0], Size: n, Err: ErrMalformed}
	}
	if n > m.max {
		return nil, &ProtocolError{From: m.from, Type: hdr[0], Size: n, Err: ErrMessageTooLarge}
	}
	total := n + 1
	if total <= m.r.Size() {
		if err := m.fill(total); err != nil {
			return nil, err
		}
		raw, err = m.r.Peek(total)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		_, _ = m.r.Discard(total) // cannot fail: Peek just buffered total bytes
		return raw, nil
	}
	if cap(m.scratch) > scratchKeep {
		m.scratch = nil
	}
	if cap(m.scratch) < total {
		m.scratch = make([]byte, total)
	}
	buf := m.scratch[:total]
	if m.flush != nil {
		if err := m.flush(); err != nil {
			return nil, err
		}
	}
	if _, err := io.ReadFull(m.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// release drops an oversized scratch buffer after a huge message was used.
func (m *msgReader) release() {
	if cap(m.scratch) > scratchKeep {
		m.scratch = nil
	}
}

// readStartup reads one untyped startup-phase packet (length word, then
// body) of at most max bytes. The returned body is freshly allocated.
func readStartup(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:])))
	if n < 8 {
		return nil, &ProtocolError{From: "client", Size: n, Err: ErrMalformed}
	}
	if n > max {
		return nil, &ProtocolError{From: "client", Size: n, Err: ErrMessageTooLarge}
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// Sentinel errors of the wire layer.
var (
	ErrMessageTooLarge = errors.New("message larger than the tunnel's limit")
	ErrMalformed       = errors.New("malformed message")
)

// walkDataRow checks that body is a well-formed DataRow body and calls fn,
// when not nil, with each value (nil for SQL NULL). It allocates nothing.
func walkDataRow(body []byte, fn func(i int, v []byte)) error {
	if len(body) < 2 {
		return ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	p := 2
	for i := 0; i < n; i++ {
		if len(body)-p < 4 {
			return ErrMalformed
		}
		l := int(int32(binary.BigEndian.Uint32(body[p:])))
		p += 4
		var v []byte
		switch {
		case l == -1:
		case l < 0 || l > len(body)-p:
			return ErrMalformed
		default:
			v = body[p : p+l : p+l]
			p += l
		}
		if fn != nil {
			fn(i, v)
		}
	}
	if p != len(body) {
		return ErrMalformed
	}
	return nil
}

// appendDataRow encodes a DataRow message with values (nil = NULL).
func appendDataRow(dst []byte, values [][]byte) []byte {
	size := 4 + 2
	for _, v := range values {
		size += 4 + len(v)
	}
	dst = append(dst, 'D')
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(values)))
	for _, v := range values {
		if v == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// appendCopyData encodes a CopyData message.
func appendCopyData(dst, data []byte) []byte {
	dst = append(dst, 'd')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(data)))
	return append(dst, data...)
}

// cstring returns the length of the NUL-terminated string at b's start
// (without the NUL), or -1.
func cstring(b []byte) int {
	for i, x := range b {
		if x == 0 {
			return i
		}
	}
	return -1
}

// validQuery checks a Query body without allocating.
func validQuery(body []byte) error {
	if n := cstring(body); n < 0 || n != len(body)-1 {
		return ErrMalformed
	}
	return nil
}

// validBind checks a Bind body without allocating: portal, statement,
// parameter format codes, parameters, result format codes, nothing more.
func validBind(b []byte) error {
	for range 2 {
		n := cstring(b)
		if n < 0 {
			return ErrMalformed
		}
		b = b[n+1:]
	}
	int16s := func() bool {
		if len(b) < 2 {
			return false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+2*n {
			return false
		}
		b = b[2+2*n:]
		return true
	}
	if !int16s() || len(b) < 2 {
		return ErrMalformed
	}
	params := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for range params {
		if len(b) < 4 {
			return ErrMalformed
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l == -1 {
			continue
		}
		if l < 0 || l > len(b) {
			return ErrMalformed
		}
		b = b[l:]
	}
	if !int16s() || len(b) != 0 {
		return ErrMalformed
	}
	return nil
}
