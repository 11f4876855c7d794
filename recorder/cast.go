package recorder

import (
	"bytes"
	"crypto/sha256"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CastWriter receives the agent's terminal for terminal.cast (asciicast v2).
// Methods never block on I/O and do not keep p.
type CastWriter interface {
	WriteOutput(p []byte)
	WriteResize(cols, rows int)
	WriteMarker(label string)
}

// Cast starts the session's terminal cast at the given size and returns
// its writer; later calls return the same writer. The cast's header is
// asciicast v2 with env TERM (Start.Term, default xterm-256color); event
// times are seconds since this call, which is also the time of the
// cast_start line in the record.
func (s *Session) Cast(width, height int) CastWriter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cast != nil || s.closed {
		return castWriter{s}
	}
	now := s.opts.Now()
	c := &castState{start: now, hash: sha256.New()}
	var b bytes.Buffer
	b.WriteString(`{"version":2,"width":`)
	b.WriteString(strconv.Itoa(width))
	b.WriteString(`,"height":`)
	b.WriteString(strconv.Itoa(height))
	b.WriteString(`,"timestamp":`)
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(`,"env":{"TERM":`)
	appendString(&b, s.term)
	b.WriteString(`}}` + "\n")
	c.add(b.Bytes())
	s.cast = c
	s.lastCkptTime = now // the first periodic checkpoint is due an interval from now
	_ = s.recordLocked(CastStart{Width: width, Height: height})
	return castWriter{s}
}

type castWriter struct{ s *Session }

func (w castWriter) WriteOutput(p []byte) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cast
	if c == nil || s.closed || len(p) == 0 {
		return
	}
	data := append(c.carry, p...)
	// Hold back an incomplete UTF-8 sequence at the end for the next write.
	cut := len(data)
	for i := len(data) - 1; i >= 0 && i >= len(data)-utf8.UTFMax; i-- {
		if utf8.RuneStart(data[i]) {
			if !utf8.FullRune(data[i:]) {
				cut = i
			}
			break
		}
	}
	text := strings.ToValidUTF8(string(data[:cut]), "\uFFFD")
	c.carry = append(c.carry[:0], data[cut:]...)
	if text != "" {
		c.event(s.opts.Now(), "o", text)
	}
}

func (w castWriter) WriteResize(cols, rows int) {
	w.event("r", strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
}

func (w castWriter) WriteMarker(label string) { w.event("m", label) }

func (w castWriter) event(code, data string) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cast == nil || s.closed {
		return
	}
	s.cast.event(s.opts.Now(), code, data)
}

// event appends [t, code, data] with t in seconds, microsecond precision,
// never going backwards.
func (c *castState) event(now time.Time, code, data string) {
	t := now.Sub(c.start).Seconds()
	if t < c.lastT {
		t = c.lastT
	}
	c.lastT = t
	var b bytes.Buffer
	b.Grow(len(data) + 32)
	b.WriteByte('[')
	b.WriteString(strconv.FormatFloat(t, 'f', 6, 64))
	b.WriteString(`,"`)
	b.WriteString(code)
	b.WriteString(`",`)
	appendString(&b, data)
	b.WriteString("]\n")
	c.add(b.Bytes())
}

func (c *castState) add(p []byte) {
	c.hash.Write(p)
	c.total += int64(len(p))
	c.pending = append(c.pending, p...)
}
