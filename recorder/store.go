package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside a session directory and the store.
const (
	EventsFile = "events.jsonl"
	CastFile   = "terminal.cast"
	SealFile   = "seal.json"
	StoreLog   = "store.jsonl"
)

// Sentinel errors.
var (
	ErrNotFound  = errors.New("no such session")
	ErrAmbiguous = errors.New("session prefix is ambiguous")
	ErrClosed    = errors.New("session is closed")
	ErrStopped   = errors.New("session recording stopped after a store failure")
	ErrBacklog   = errors.New("session store is failing and the in-memory backlog is full")
)

// FailMode says what a Session does when its store cannot be written.
type FailMode int

const (
	// FailStop: the first write failure stops the recording; every later
	// Record returns an error wrapping ErrStopped, and the caller ends the
	// session.
	FailStop FailMode = iota
	// FailWarn: events are kept in memory (up to MaxBacklog events) and
	// written when the store recovers; a Warning event then says how long it
	// failed. Record fails only when the backlog is full.
	FailWarn
)

// StoreOptions configure a Store. The zero value works.
type StoreOptions struct {
	Signer Signer       // signs seals; nil = unsigned seals
	Logger *slog.Logger // nil = discard
	Now    func() time.Time
	// SyncInterval bounds how long a recorded event or cast output waits
	// before it is durable. Default (and maximum) 50 ms.
	SyncInterval time.Duration
	// CheckpointInterval is how often the cast digest is bound into the
	// chain while output flows (also at every statement). Default 5 s.
	CheckpointInterval time.Duration
	OnError            FailMode
	// OnFailure, if set, is called (from the session's writer goroutine)
	// when writing first fails, and again with nil when it recovers.
	OnFailure func(session string, err error)
	// User names who works the store (a local user or an email); the store
	// log records it with a prune.
	User string
	// MaxBacklog caps the events held in memory: in FailWarn mode while
	// the store fails Record returns ErrBacklog beyond it; otherwise Record
	// waits for the writer (back-pressure, never a drop). Default 262144.
	MaxBacklog int
}

// Store is a directory of session records.
type Store struct {
	dir  string
	opts StoreOptions
	log  *slog.Logger
	// fault, when set (tests only), is asked before every write and sync
	// of a session's files; a non-nil error stands for a full disk.
	fault func(op string) error
}

// OpenStore opens (creating, mode 0700) the session store at dir.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if dir == "" {
		return nil, errors.New("recorder: empty store directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &StoreError{Op: "create store", Path: dir, Err: err}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SyncInterval <= 0 || opts.SyncInterval > 50*time.Millisecond {
		opts.SyncInterval = 50 * time.Millisecond
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 5 * time.Second
	}
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = 1 << 18
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{dir: dir, opts: opts, log: log}, nil
}

// Dir is the store's directory.
func (st *Store) Dir() string { return st.dir }

// StoreError is a failure to read or write the store's files.
type StoreError struct {
	Op   string // "write events", "sync cast", ...
	Path string
	Err  error
}

func (e *StoreError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// ids returns the session ids in the store, oldest first.
func (st *Store) ids() ([]string, error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &StoreError{Op: "read store", Path: st.dir, Err: err}
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == IDLen && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Find resolves a session id or a unique prefix of one.
func (st *Store) Find(prefix string) (string, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if !validID(prefix) {
		return "", fmt.Errorf("%w: %q", ErrNotFound, prefix)
	}
	ids, err := st.ids()
	if err != nil {
		return "", err
	}
	var match []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w: %q", ErrNotFound, prefix)
	case 1:
		return match[0], nil
	}
	return "", &AmbiguousError{Prefix: prefix, Matches: match}
}

// AmbiguousError is returned by Find when several sessions share a prefix.
type AmbiguousError struct {
	Prefix  string
	Matches []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q names %d sessions", e.Prefix, len(e.Matches))
}
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

func (st *Store) sessionDir(id string) string { return filepath.Join(st.dir, id) }

// IDs lists the session ids in the store, oldest first, without reading
// the records.
func (st *Store) IDs() ([]string, error) { return st.ids() }
