package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"
)

// Session is one session's record being written. Record, Cast's writer and
// Sync are safe for concurrent use; Close is called once.
//
// Record only stamps the event (seq, time) and queues it, so the tunnel's
// goroutines never wait for encoding or the disk. One writer goroutine,
// owned by the Session and waited for by Close, encodes and chains the
// queued events in order and writes: first the cast bytes (fsync), then a
// Checkpoint binding them when due, then the event lines (fsync). It runs as
// soon as an event is queued and at least every SyncInterval, so events are
// durable in small groups with bounded delay.
type Session struct {
	id    string
	dir   string
	store *Store
	opts  StoreOptions
	log   *slog.Logger
	term  string // TERM for the cast header

	mu            sync.Mutex
	cond          *sync.Cond // durable, failure or queue length changed
	seq           uint64     // last assigned
	queue         []queued   // stamped, not yet taken by the writer
	inflight      int        // taken by the writer, not yet durable
	durable       uint64     // last seq known durable
	err           error      // current store failure
	failedAt      time.Time
	stopped       bool // FailStop after a failure
	closed        bool
	writerGone    bool
	wantCkpt      bool // a statement or approval was queued since the last checkpoint
	lastCkptBytes int64
	lastCkptTime  time.Time
	cast          *castState
	lastHash      string // hash of the last line encoded (valid after the writer ends)

	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	// Owned by the writer goroutine.
	enc       encoder
	prev      string
	events    *os.File
	castFile  *os.File
	eventsUnw []byte // encoded lines not yet written
	castUnw   []byte // cast bytes not yet written
	batch     []queued
}

type queued struct {
	seq uint64
	t   time.Time
	ev  Event
}

// Create starts a new session record: a 0700 directory named by a new id,
// events.jsonl (0600) whose first line is the session_start event.
func (st *Store) Create(start Start) (*Session, error) {
	now := st.opts.Now()
	var id, dir string
	for range 8 {
		id = newID(now)
		dir = st.sessionDir(id)
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, &StoreError{Op: "create session", Path: dir, Err: err}
		}
		dir = ""
	}
	if dir == "" {
		return nil, &StoreError{Op: "create session", Path: st.dir, Err: os.ErrExist}
	}
	f, err := os.OpenFile(filepath.Join(dir, EventsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, &StoreError{Op: "create events", Path: dir, Err: err}
	}
	// The lock tells readers that a live guardrun still writes this record;
	// it goes away with the process, however it ends.
	_ = lockFile(f)
	s := &Session{
		id: id, dir: dir, store: st, opts: st.opts,
		log:    st.log.With("session", id),
		term:   start.Term,
		prev:   GenesisPrev,
		events: f,
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if s.term == "" {
		s.term = "xterm-256color"
	}
	ss := SessionStart{Start: start, Session: id, Format: 1}
	if st.opts.Signer != nil {
		ss.PublicKey = hex.EncodeToString(st.opts.Signer.PublicKey())
	}
	if err := s.Record(ss); err != nil {
		f.Close()
		return nil, err
	}
	go s.writer()
	if err := s.Sync(); err != nil {
		_ = s.Close(-1)
		return nil, err
	}
	if err := st.appendStoreLog(storeEntry{Type: "create", Session: id}); err != nil {
		st.log.Warn("store log", "err", err)
	}
	return s, nil
}

// ID is the session's id.
func (s *Session) ID() string { return s.id }

// Dir is the session's directory.
func (s *Session) Dir() string { return s.dir }

// Record appends ev to the record. It assigns seq and time in the order of
// the calls and queues the event; the writer chains and writes it within
// SyncInterval (Sync waits for that). Record keeps ev until it is written:
// do not change the slices or maps it refers to afterwards.
//
// It returns an error only when the event was not accepted: the session is
// closed, recording stopped after a store failure (FailStop), or the store
// fails and MaxBacklog events already wait (FailWarn). When the writer
// merely lags, Record waits for it rather than drop anything.
func (s *Session) Record(ev Event) error {
	if ev == nil {
		return errors.New("recorder: nil event")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for len(s.queue)+s.inflight >= s.opts.MaxBacklog && s.err == nil && !s.writerGone {
		s.cond.Wait()
	}
	if s.closed {
		return ErrClosed
	}
	return s.recordLocked(ev)
}

// kickQueue is the queue length at which Record wakes the writer before its
// next tick.
const kickQueue = 512

func (s *Session) recordLocked(ev Event) error {
	if s.stopped {
		return fmt.Errorf("%w: %w", ErrStopped, s.err)
	}
	if s.err != nil && len(s.queue)+s.inflight >= s.opts.MaxBacklog {
		return fmt.Errorf("%w: %w", ErrBacklog, s.err)
	}
	s.seq++
	s.queue = append(s.queue, queued{seq: s.seq, t: s.opts.Now(), ev: ev})
	switch ev.(type) {
	case Statement, *Statement, ApprovalRequested, *ApprovalRequested, ApprovalAnswered, *ApprovalAnswered, SessionEnd, *SessionEnd:
		s.wantCkpt = true
	}
	// Events are made durable in groups: the writer's ticker bounds the
	// delay (SyncInterval), and only a large queue wakes it early. Waking it
	// for every event would cost a write and an fsync per statement.
	if len(s.queue) >= kickQueue {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Err reports the store's current failure, nil when writing works.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Sync waits until everything recorded before the call is durable, or
// returns the store failure that prevents it.
func (s *Session) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.seq
	select {
	case s.kick <- struct{}{}:
	default:
	}
	for s.durable < want {
		if s.err != nil {
			return s.err
		}
		if s.writerGone {
			return ErrClosed
		}
		s.cond.Wait()
	}
	return nil
}

func (s *Session) writer() {
	defer func() {
		s.mu.Lock()
		s.writerGone = true
		s.lastHash = s.prev
		s.cond.Broadcast()
		s.mu.Unlock()
		close(s.done)
	}()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.kick:
		case <-t.C:
		case <-s.quit:
			s.flush(true)
			return
		}
		s.flush(false)
	}
}

// flush takes what is queued and makes it durable: cast first, then the
// checkpoint binding it, then events.
func (s *Session) flush(final bool) {
	s.mu.Lock()
	if s.cast != nil {
		s.castUnw = append(s.castUnw, s.cast.pending...)
		s.cast.pending = s.cast.pending[:0]
		now := s.opts.Now()
		grown := s.cast.total > s.lastCkptBytes
		due := s.wantCkpt || final || now.Sub(s.lastCkptTime) >= s.opts.CheckpointInterval
		if grown && due && !s.stopped {
			ck := Checkpoint{CastBytes: s.cast.total, CastSHA256: hex.EncodeToString(s.cast.hash.Sum(nil))}
			if err := s.recordLocked(ck); err == nil {
				s.lastCkptBytes = ck.CastBytes
				s.lastCkptTime = now
			}
		}
	}
	s.wantCkpt = false
	s.batch = append(s.batch[:0], s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.inflight += len(s.batch)
	high := s.seq
	hadErr := s.err != nil
	s.mu.Unlock()

	// Encode and chain outside the lock: only this goroutine touches prev.
	for i := range s.batch {
		q := &s.batch[i]
		line, sum, err := s.line(q.seq, q.t, q.ev)
		if err != nil {
			// Never drop silently: the line says what could not be written.
			line, sum, _ = s.line(q.seq, q.t, Warning{Message: fmt.Sprintf("a %s event could not be encoded: %v", q.ev.EventType(), err)})
		}
		s.eventsUnw = append(s.eventsUnw, line...)
		s.eventsUnw = append(s.eventsUnw, '\n')
		s.prev = sum
		q.ev = nil
	}
	taken := len(s.batch)

	var err error
	if len(s.castUnw) > 0 || len(s.eventsUnw) > 0 {
		err = s.writeOut()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.failedAt = s.opts.Now()
			s.log.Error("session store cannot be written", "err", err)
		}
		s.err = err
		if s.opts.OnError == FailStop {
			s.stopped = true
		} else if !hadErr {
			// Held in memory with the rest, written when the store recovers.
			_ = s.recordLocked(Warning{Message: fmt.Sprintf("the session store could not be written (%v); events are held in memory until it recovers", errors.Unwrap(err))})
		}
		s.cond.Broadcast()
		if !hadErr && s.opts.OnFailure != nil {
			cb := s.opts.OnFailure
			s.mu.Unlock()
			cb(s.id, err)
			s.mu.Lock()
		}
		return
	}
	s.durable = high
	s.inflight -= taken
	if s.inflight < 0 {
		s.inflight = 0
	}
	if hadErr {
		s.inflight = 0
		s.err = nil
		down := s.opts.Now().Sub(s.failedAt).Round(time.Millisecond)
		s.log.Warn("session store recovered", "after", down)
		if !s.closed {
			_ = s.recordLocked(Warning{Message: fmt.Sprintf("the session store recovered after %s; the events held in memory are written", down)})
		}
		if s.opts.OnFailure != nil {
			cb := s.opts.OnFailure
			s.mu.Unlock()
			cb(s.id, nil)
			s.mu.Lock()
		}
	}
	s.cond.Broadcast()
}

// line encodes one chained line (see the package documentation).
func (s *Session) line(seq uint64, t time.Time, ev Event) ([]byte, string, error) {
	v := reflect.ValueOf(ev)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return chainLine(seq, t, ev.EventType(), ev, s.prev)
	}
	for _, f := range s.enc.fieldsOf(v.Type()) {
		for _, k := range envelopeKeys {
			if f.name == k {
				return nil, "", fmt.Errorf("%w: event %s has a field named %q", ErrNotCanonical, ev.EventType(), k)
			}
		}
	}
	env := [...]member{
		{name: "prev", raw: `"` + s.prev + `"`},
		{name: "seq", raw: fmt.Sprint(seq)},
		{name: "time", raw: `"` + t.UTC().Format(timeLayout) + `"`},
		{name: "type", raw: string(appendStr(nil, ev.EventType()))},
	}
	body, err := s.enc.object(make([]byte, 0, 512), v, env[:])
	if err != nil {
		return nil, "", err
	}
	sum := lineHash(s.prev, body)
	return insertHash(body, sum), sum, nil
}

// writeOut writes and syncs the unwritten cast bytes, then the event lines.
// A short write keeps the rest for the next try.
func (s *Session) writeOut() error {
	if len(s.castUnw) > 0 {
		if s.castFile == nil {
			f, err := os.OpenFile(filepath.Join(s.dir, CastFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return &StoreError{Op: "create cast", Path: s.dir, Err: err}
			}
			s.castFile = f
		}
		n, err := s.write(s.castFile, s.castUnw)
		s.castUnw = s.castUnw[:copy(s.castUnw, s.castUnw[n:])]
		if err != nil {
			return &StoreError{Op: "write cast", Path: s.castFile.Name(), Err: err}
		}
		if err := s.sync(s.castFile); err != nil {
			return &StoreError{Op: "sync cast", Path: s.castFile.Name(), Err: err}
		}
	}
	if len(s.eventsUnw) > 0 {
		n, err := s.write(s.events, s.eventsUnw)
		s.eventsUnw = s.eventsUnw[:copy(s.eventsUnw, s.eventsUnw[n:])]
		if err != nil {
			return &StoreError{Op: "write events", Path: s.events.Name(), Err: err}
		}
		if err := s.sync(s.events); err != nil {
			return &StoreError{Op: "sync events", Path: s.events.Name(), Err: err}
		}
	}
	return nil
}

func (s *Session) write(f *os.File, p []byte) (int, error) {
	if s.store.fault != nil {
		if err := s.store.fault("write"); err != nil {
			return 0, err
		}
	}
	return f.Write(p)
}

func (s *Session) sync(f *os.File) error {
	if s.store.fault != nil {
		if err := s.store.fault("sync"); err != nil {
			return err
		}
	}
	return f.Sync()
}

// Close ends the session: it records SessionEnd, waits for the writer to
// make everything durable, and writes seal.json. A session whose store
// failed is closed but not sealed, and Close returns the failure.
func (s *Session) Close(exitCode int) error {
	return s.CloseReason(exitCode, "")
}

// CloseReason is Close with a reason for the end ("agent exited",
// "interrupted", "store failure").
func (s *Session) CloseReason(exitCode int, reason string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	// The last checkpoint goes before the end: nothing follows session_end.
	if s.cast != nil && s.cast.total > s.lastCkptBytes && !s.stopped {
		ck := Checkpoint{CastBytes: s.cast.total, CastSHA256: hex.EncodeToString(s.cast.hash.Sum(nil))}
		if s.recordLocked(ck) == nil {
			s.lastCkptBytes = ck.CastBytes
		}
	}
	recErr := s.recordLocked(SessionEnd{ExitCode: exitCode, Reason: reason})
	s.closed = true
	s.cond.Broadcast() // release Records waiting on back-pressure
	s.mu.Unlock()

	close(s.quit)
	<-s.done

	s.mu.Lock()
	err := s.err
	if err == nil && s.durable < s.seq {
		err = &StoreError{Op: "flush events", Path: s.dir, Err: errors.New("events left unwritten")}
	}
	seq, last := s.seq, s.lastHash
	var castSum string
	var castBytes int64
	if s.cast != nil {
		castSum = hex.EncodeToString(s.cast.hash.Sum(nil))
		castBytes = s.cast.total
	}
	s.mu.Unlock()

	if s.castFile != nil {
		if cerr := s.castFile.Close(); cerr != nil && err == nil {
			err = &StoreError{Op: "close cast", Path: s.castFile.Name(), Err: cerr}
		}
	}
	if cerr := s.events.Close(); cerr != nil && err == nil {
		err = &StoreError{Op: "close events", Path: s.events.Name(), Err: cerr}
	}
	if err == nil && recErr != nil {
		err = recErr
	}
	if err != nil {
		return err
	}
	seal := Seal{
		Session:    s.id,
		Format:     1,
		LastSeq:    seq,
		LastHash:   last,
		CastSHA256: castSum,
		CastBytes:  castBytes,
		SignedAt:   s.opts.Now().UTC().Format(timeLayout),
	}
	if castSum == "" {
		seal.CastSHA256 = hex.EncodeToString(sha256.New().Sum(nil))
	}
	if err := writeSeal(s.dir, seal, s.opts.Signer); err != nil {
		return err
	}
	if err := s.store.appendStoreLog(storeEntry{Type: "seal", Session: s.id, LastSeq: seq, LastHash: last}); err != nil {
		s.log.Warn("store log", "err", err)
	}
	return nil
}

// castState is the cast being written; guarded by Session.mu.
type castState struct {
	start   time.Time
	hash    hash.Hash
	total   int64  // bytes of the cast so far (header included)
	pending []byte // bytes not yet handed to the writer
	carry   []byte // an incomplete UTF-8 sequence held for the next output
	lastT   float64
}
