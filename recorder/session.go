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
	"sync"
	"time"
)

// Session is one session's record being written. Record, Cast's writer and
// Sync are safe for concurrent use; Close is called once.
//
// One writer goroutine, owned by the Session and waited for by Close, writes
// what Record and the cast queue: first the cast bytes (fsync), then a
// Checkpoint binding them when due, then the event lines (fsync). It runs as
// soon as an event is recorded and at least every SyncInterval, so events
// are durable in small groups with bounded delay.
type Session struct {
	id    string
	dir   string
	store *Store
	opts  StoreOptions
	log   *slog.Logger

	mu            sync.Mutex
	cond          *sync.Cond // durable or failed changed
	seq           uint64     // last assigned
	prev          string     // hash of the last assigned line
	pending       []byte     // lines assigned but not yet handed to the writer
	backlog       int        // bytes accepted but not yet durable
	durable       uint64     // last seq known durable
	err           error      // current store failure
	failedAt      time.Time
	stopped       bool // FailStop after a failure
	closed        bool
	wantCkpt      bool // a statement or approval was recorded since the last checkpoint
	lastCkptBytes int64
	lastCkptTime  time.Time
	cast          *castState
	term          string // TERM for the cast header

	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	// Owned by the writer goroutine.
	events      *os.File
	castFile    *os.File
	eventsUnw   []byte // events not yet written
	castUnw     []byte // cast bytes not yet written
	pendingHigh uint64 // highest seq in eventsUnw
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
		prev:   GenesisPrev,
		term:   start.Term,
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
	if err := st.appendStoreLog(storeEntry{Type: "create", Session: id}); err != nil {
		st.log.Warn("store log", "err", err)
	}
	go s.writer()
	if err := s.Sync(); err != nil {
		_ = s.Close(-1)
		return nil, err
	}
	return s, nil
}

// ID is the session's id.
func (s *Session) ID() string { return s.id }

// Dir is the session's directory.
func (s *Session) Dir() string { return s.dir }

// Record appends ev to the record. It assigns seq, time, prev and hash in
// the order of the calls; the line is durable within SyncInterval (Sync
// waits for it). It returns an error when the event was not accepted: the
// session is closed, recording stopped after a store failure (FailStop), or
// the in-memory backlog is full (FailWarn).
func (s *Session) Record(ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.recordLocked(ev)
}

func (s *Session) recordLocked(ev Event) error {
	if s.stopped {
		return fmt.Errorf("%w: %w", ErrStopped, s.err)
	}
	if s.err != nil && s.backlog > s.opts.MaxBacklog {
		return fmt.Errorf("%w: %w", ErrBacklog, s.err)
	}
	line, sum, err := chainLine(s.seq+1, s.opts.Now(), ev.EventType(), ev, s.prev)
	if err != nil {
		return err
	}
	s.seq++
	s.prev = sum
	s.pending = append(s.pending, line...)
	s.pending = append(s.pending, '\n')
	s.backlog += len(line) + 1
	switch ev.(type) {
	case Statement, *Statement, ApprovalRequested, *ApprovalRequested, ApprovalAnswered, *ApprovalAnswered, SessionEnd, *SessionEnd:
		s.wantCkpt = true
	}
	select {
	case s.kick <- struct{}{}:
	default:
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
		if s.isDone() {
			return ErrClosed
		}
		s.cond.Wait()
	}
	return nil
}

func (s *Session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Session) writer() {
	defer close(s.done)
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

// flush takes what is pending and makes it durable: cast first, then the
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
	s.eventsUnw = append(s.eventsUnw, s.pending...)
	s.pending = s.pending[:0]
	high := s.seq
	hadErr := s.err != nil
	s.mu.Unlock()

	if len(s.castUnw) == 0 && len(s.eventsUnw) == 0 {
		return
	}
	err := s.writeOut()

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
	s.backlog = len(s.pending)
	if hadErr {
		s.err = nil
		down := s.opts.Now().Sub(s.failedAt).Round(time.Millisecond)
		s.log.Warn("session store recovered", "after", down)
		_ = s.recordLocked(Warning{Message: fmt.Sprintf("the session store could not be written for %s; events were held in memory and written late", down)})
		if s.opts.OnFailure != nil {
			cb := s.opts.OnFailure
			s.mu.Unlock()
			cb(s.id, nil)
			s.mu.Lock()
		}
	}
	s.cond.Broadcast()
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
		n, err := s.castFile.Write(s.castUnw)
		s.castUnw = s.castUnw[:copy(s.castUnw, s.castUnw[n:])]
		if err != nil {
			return &StoreError{Op: "write cast", Path: s.castFile.Name(), Err: err}
		}
		if err := s.castFile.Sync(); err != nil {
			return &StoreError{Op: "sync cast", Path: s.castFile.Name(), Err: err}
		}
	}
	if len(s.eventsUnw) > 0 {
		n, err := s.events.Write(s.eventsUnw)
		s.eventsUnw = s.eventsUnw[:copy(s.eventsUnw, s.eventsUnw[n:])]
		if err != nil {
			return &StoreError{Op: "write events", Path: s.events.Name(), Err: err}
		}
		if err := s.events.Sync(); err != nil {
			return &StoreError{Op: "sync events", Path: s.events.Name(), Err: err}
		}
	}
	return nil
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
	recErr := s.recordLocked(SessionEnd{ExitCode: exitCode, Reason: reason})
	s.closed = true
	s.mu.Unlock()

	close(s.quit)
	<-s.done

	s.mu.Lock()
	err := s.err
	if err == nil && s.durable < s.seq {
		err = &StoreError{Op: "flush events", Path: s.dir, Err: errors.New("events left unwritten")}
	}
	seq, last := s.seq, s.prev
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
