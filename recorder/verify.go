package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is a session record's condition.
type State string

const (
	StateSealed    State = "sealed"           // closed cleanly; chain, cast and seal verify
	StateAbnormal  State = "ended abnormally" // no seal (crash, kill): the prefix verifies
	StateRecording State = "recording"        // a live guardrun still writes it
	StateTampered  State = "TAMPERED"         // something does not verify; see Report.Err
)

// TamperError says where a record stops verifying.
type TamperError struct {
	Session string
	File    string // events.jsonl, terminal.cast, seal.json, SHA256SUMS, ...
	Line    int    // 1-based line in File; 0 when the problem is the whole file
	What    string // "was changed after it was written", ...
}

func (e *TamperError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d %s", e.File, e.Line, e.What)
	}
	return fmt.Sprintf("%s %s", e.File, e.What)
}

// Report is the outcome of verifying one record. Summary is filled as far
// as the record could be read, even when it does not verify.
type Report struct {
	Summary
	Lines       int    // event lines that verified
	LastHash    string // hash of the last verified line
	Signed      bool   // the seal carries a valid signature
	PublicKey   string // hex ed25519 key of the seal (or of session_start)
	CastBytes   int64  // size of terminal.cast
	CastBound   int64  // bytes of it bound by a checkpoint or the seal
	Checkpoints int
	TornTail    bool  // a partial last line (crash while writing)
	Err         error // *TamperError when State is StateTampered
}

// OK reports whether the record verifies (sealed, ended abnormally or
// still recording, without tampering).
func (r *Report) OK() bool { return r.Err == nil }

// Summary is what `sessions list` shows of a session.
type Summary struct {
	ID          string        `json:"id"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"duration_ns"`
	Who         string        `json:"who"`
	Verified    bool          `json:"identity_verified"`
	Command     []string      `json:"command"`
	Agent       string        `json:"agent"`
	Connections []string      `json:"connections"`
	Clients     int           `json:"clients"`
	Statements  int           `json:"statements"`
	Denied      int           `json:"denied"`
	Approved    int           `json:"approved"`
	Masked      int           `json:"masked"`
	ExitCode    *int          `json:"exit_code,omitempty"`
	HasCast     bool          `json:"terminal"`
	State       State         `json:"state"`
	Problem     string        `json:"problem,omitempty"` // the TamperError in words
}

// opener opens a record's file by name; fs.ErrNotExist when absent.
type opener func(name string) (io.ReadCloser, error)

func dirOpener(dir string) opener {
	return func(name string) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, name)) }
}

// Verify checks session id (or a unique prefix) in the store: the chain,
// the cast against every checkpoint and the seal, the seal's signature,
// and the store log's memory of the seal. A record that fails is reported
// with Report.Err set (a *TamperError) and a nil error; the error is for
// a store that cannot be read.
func (st *Store) Verify(id string) (*Report, error) {
	id, err := st.Find(id)
	if err != nil {
		return nil, err
	}
	dir := st.sessionDir(id)
	rep, err := verifyRecord(id, dirOpener(dir))
	if err != nil {
		return nil, err
	}
	if rep.Err == nil {
		st.crossCheck(rep)
	}
	if rep.Err == nil && rep.State == StateAbnormal && st.live(dir) {
		rep.State = StateRecording
	}
	return rep, nil
}

// live reports whether a running guardrun holds the session's lock.
func (st *Store) live(dir string) bool {
	f, err := os.Open(filepath.Join(dir, EventsFile))
	if err != nil {
		return false
	}
	defer f.Close()
	if tryLock(f) {
		unlockFile(f)
		return false
	}
	return true
}

// crossCheck compares a record with what store.jsonl remembers of it: a
// seal recorded there must still be present and agree.
func (st *Store) crossCheck(rep *Report) {
	f, err := os.Open(filepath.Join(st.dir, StoreLog))
	if err != nil {
		return
	}
	defer f.Close()
	_ = readLines(f, func(n int, line []byte, complete bool) error {
		var e struct {
			Type     string `json:"type"`
			Session  string `json:"session"`
			LastSeq  uint64 `json:"last_seq"`
			LastHash string `json:"last_hash"`
		}
		if json.Unmarshal(line, &e) != nil || e.Type != "seal" || e.Session != rep.ID {
			return nil
		}
		switch {
		case rep.State != StateSealed:
			rep.fail(&TamperError{Session: rep.ID, File: SealFile, What: fmt.Sprintf("was deleted (the store log recorded the seal at line %d)", n)})
		case e.LastSeq != rep.LastSeqSeen() || e.LastHash != rep.LastHash:
			rep.fail(&TamperError{Session: rep.ID, File: SealFile, What: fmt.Sprintf("does not match the seal the store log recorded at line %d", n)})
		}
		return io.EOF
	})
}

// LastSeqSeen is the seq of the last verified line.
func (r *Report) LastSeqSeen() uint64 { return uint64(r.Lines) }

func (r *Report) fail(e *TamperError) {
	if r.Err != nil {
		return
	}
	e.Session = r.ID
	r.Err = e
	r.State = StateTampered
	r.Problem = e.Error()
}

// verifyRecord verifies one record read through open. id is the name the
// record is filed under.
func verifyRecord(id string, open opener) (*Report, error) {
	rep := &Report{Summary: Summary{ID: id, State: StateAbnormal}}
	ef, err := open(EventsFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			rep.fail(&TamperError{File: EventsFile, What: "is missing"})
			return rep, nil
		}
		return nil, err
	}
	var (
		prev     = GenesisPrev
		seen     = map[string]int{} // hash -> line
		ckpts    []ckpt
		tornLine int
		startKey string
		ended    bool
		acc      summaryAcc
		lastTime time.Time
	)
	// From the break on nothing verifies, but the summary still says what
	// the record claims, so a person can tell which record it is.
	bestEffort := func(line []byte) {
		var env struct {
			Type string    `json:"type"`
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(line, &env) == nil {
			if ev, err := decodeEvent(env.Type, line); err == nil && ev != nil {
				acc.add(&rep.Summary, env.Time, ev)
				lastTime = env.Time
			}
		}
	}
	err = readLines(ef, func(n int, line []byte, complete bool) error {
		if rep.Err != nil {
			if complete {
				bestEffort(line)
			}
			return nil
		}
		if tornLine > 0 {
			// A torn line followed by more data is not a crash.
			rep.fail(&TamperError{File: EventsFile, Line: tornLine, What: "is cut short in the middle of the log"})
			return nil
		}
		if !complete {
			tornLine = n
			return nil
		}
		pl, problem := parseChainLine(line)
		if problem != "" {
			rep.fail(&TamperError{File: EventsFile, Line: n, What: string(problem)})
			bestEffort(line)
			return nil
		}
		want := uint64(n)
		switch {
		case pl.Seq > want:
			rep.fail(&TamperError{File: EventsFile, Line: n, What: fmt.Sprintf("has seq %d where %d was expected (a line before it was deleted or moved)", pl.Seq, want)})
			bestEffort(line)
			return nil
		case pl.Seq < want:
			if k, dup := seen[pl.Hash]; dup {
				rep.fail(&TamperError{File: EventsFile, Line: n, What: fmt.Sprintf("duplicates line %d", k)})
			} else {
				rep.fail(&TamperError{File: EventsFile, Line: n, What: fmt.Sprintf("is out of order (seq %d where %d was expected)", pl.Seq, want)})
			}
			return nil
		case pl.Prev != prev:
			rep.fail(&TamperError{File: EventsFile, Line: n, What: "does not follow the line before it (its prev hash does not match)"})
			bestEffort(line)
			return nil
		}
		if n == 1 && pl.Type != TypeSessionStart {
			rep.fail(&TamperError{File: EventsFile, Line: 1, What: "is not a session start"})
			bestEffort(line)
			return nil
		}
		if ended {
			rep.fail(&TamperError{File: EventsFile, Line: n, What: "comes after the session end"})
			bestEffort(line)
			return nil
		}
		ev, err := decodeEvent(pl.Type, line)
		if err != nil {
			rep.fail(&TamperError{File: EventsFile, Line: n, What: "cannot be read: " + err.Error()})
			bestEffort(line)
			return nil
		}
		switch ev := ev.(type) {
		case *SessionStart:
			if n != 1 {
				rep.fail(&TamperError{File: EventsFile, Line: n, What: "is a second session start"})
				bestEffort(line)
				return nil
			}
			if ev.Session != id {
				rep.fail(&TamperError{File: EventsFile, Line: 1, What: fmt.Sprintf("belongs to session %s, not %s", ev.Session, id)})
				bestEffort(line)
				return nil
			}
			startKey = ev.PublicKey
		case *Checkpoint:
			ckpts = append(ckpts, ckpt{line: n, bytes: ev.CastBytes, sum: ev.CastSHA256})
		case *SessionEnd:
			ended = true
		}
		acc.add(&rep.Summary, pl.Time, ev)
		seen[pl.Hash] = n
		prev = pl.Hash
		lastTime = pl.Time
		rep.Lines = n
		rep.LastHash = pl.Hash
		return nil
	})
	ef.Close()
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	acc.finish(&rep.Summary, lastTime)
	rep.PublicKey = startKey
	rep.Checkpoints = len(ckpts)
	if rep.Err != nil {
		return rep, nil
	}
	if rep.Lines == 0 && tornLine == 0 {
		rep.fail(&TamperError{File: EventsFile, What: "is empty"})
		return rep, nil
	}
	rep.TornTail = tornLine > 0

	// The cast, against every checkpoint (and below, the seal).
	castSum, castLen, err := verifyCast(rep, open, ckpts)
	if err != nil {
		return nil, err
	}
	if rep.Err != nil {
		return rep, nil
	}

	sf, err := open(SealFile)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil // ended abnormally: the prefix verifies
	}
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(sf, 1<<16))
	sf.Close()
	if err != nil {
		return nil, err
	}
	checkSeal(rep, data, startKey, castSum, castLen, ended, tornLine)
	if rep.Err == nil {
		rep.State = StateSealed
	}
	return rep, nil
}

var errStop = errors.New("stop")

type ckpt struct {
	line  int
	bytes int64
	sum   string
}

// verifyCast hashes terminal.cast once, checking the digest at every
// checkpoint; it returns the whole file's digest and size.
func verifyCast(rep *Report, open opener, ckpts []ckpt) (string, int64, error) {
	cf, err := open(CastFile)
	if errors.Is(err, fs.ErrNotExist) {
		if len(ckpts) > 0 {
			rep.fail(&TamperError{File: CastFile, What: fmt.Sprintf("is missing (events.jsonl line %d binds %d bytes of it)", ckpts[0].line, ckpts[0].bytes)})
		}
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer cf.Close()
	rep.HasCast = true
	h := sha256.New()
	var total int64
	for _, c := range ckpts {
		n, err := io.CopyN(h, cf, c.bytes-total)
		total += n
		if errors.Is(err, io.EOF) {
			rep.fail(&TamperError{File: CastFile, What: fmt.Sprintf("is shorter than the %d bytes bound at events.jsonl line %d (truncated)", c.bytes, c.line)})
			return "", 0, nil
		}
		if err != nil {
			return "", 0, err
		}
		if sumOf(h) != c.sum {
			rep.fail(&TamperError{File: CastFile, What: fmt.Sprintf("does not match the checkpoint at events.jsonl line %d (altered or swapped)", c.line)})
			return "", 0, nil
		}
		rep.CastBound = total
	}
	n, err := io.Copy(h, cf)
	if err != nil {
		return "", 0, err
	}
	total += n
	rep.CastBytes = total
	return sumOf(h), total, nil
}

func sumOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func checkSeal(rep *Report, data []byte, startKey, castSum string, castLen int64, ended bool, tornLine int) {
	bad := func(what string) { rep.fail(&TamperError{File: SealFile, What: what}) }
	var seal Seal
	canon, err := CanonicalJSON(bytes.TrimSuffix(data, []byte("\n")))
	if err != nil || !bytes.Equal(append(canon, '\n'), data) || json.Unmarshal(data, &seal) != nil {
		bad("was changed after it was written (not canonical JSON)")
		return
	}
	if seal.Session != rep.ID {
		bad(fmt.Sprintf("belongs to session %s", seal.Session))
		return
	}
	if tornLine > 0 {
		rep.fail(&TamperError{File: EventsFile, Line: tornLine, What: "is cut short although the session was sealed"})
		return
	}
	last := uint64(rep.Lines)
	switch {
	case seal.LastSeq > last:
		rep.fail(&TamperError{File: EventsFile, Line: rep.Lines, What: fmt.Sprintf("is the last line but the seal says the log has %d (truncated)", seal.LastSeq)})
		return
	case seal.LastSeq < last:
		rep.fail(&TamperError{File: EventsFile, Line: int(seal.LastSeq) + 1, What: "was added after the seal"})
		return
	case seal.LastHash != rep.LastHash:
		bad("does not match the last line of events.jsonl")
		return
	case !ended:
		rep.fail(&TamperError{File: EventsFile, Line: rep.Lines, What: "is not a session end although the session was sealed"})
		return
	}
	if castSum == "" {
		castSum = sumOf(sha256.New())
	}
	if seal.CastSHA256 != castSum || seal.CastBytes != castLen {
		rep.fail(&TamperError{File: CastFile, What: "does not match the seal (altered or swapped)"})
		return
	}
	rep.CastBound = castLen
	switch {
	case seal.Signature == "" && seal.PublicKey == "":
		if startKey != "" {
			bad("is unsigned although the session started with a signing key")
		}
		return
	case seal.PublicKey != startKey:
		bad("is signed by a different key than the one the session started with")
		return
	}
	pub, err1 := hex.DecodeString(seal.PublicKey)
	sig, err2 := hex.DecodeString(seal.Signature)
	msg, err3 := seal.SignedBytes()
	if err1 != nil || err2 != nil || err3 != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
		bad("has a bad signature")
		return
	}
	rep.Signed = true
	rep.PublicKey = seal.PublicKey
}

// decodeEvent decodes a line into its typed event (nil, nil for a type this
// version does not know: it still verifies).
func decodeEvent(typ string, line []byte) (Event, error) {
	ev := newEvent(typ)
	if ev == nil {
		return nil, nil
	}
	if err := json.Unmarshal(line, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// summaryAcc accumulates a Summary over the events.
type summaryAcc struct {
	conns   map[string]bool
	pending map[string]bool // approvals requested, not yet answered
}

func (a *summaryAcc) add(s *Summary, t time.Time, ev Event) {
	switch ev := ev.(type) {
	case *SessionStart:
		s.Started = t
		s.Who = ev.Identity.Who()
		s.Verified = ev.Identity.Verified
		s.Command = ev.Command
		s.Agent = ev.Agent
	case *TunnelOpen:
		a.conn(s, ev.Connection)
	case *ConnOpen:
		a.conn(s, ev.Connection)
		s.Clients++
	case *Statement:
		s.Statements++
		if ev.Decision == "deny" {
			s.Denied++
		}
	case *ApprovalAnswered:
		if ev.Verdict == "deny" {
			s.Denied++
		} else {
			s.Approved++
		}
	case *Result:
		for _, n := range ev.Masked {
			s.Masked += n
		}
	case *CastStart:
		s.HasCast = true
	case *SessionEnd:
		code := ev.ExitCode
		s.ExitCode = &code
	}
}

func (a *summaryAcc) conn(s *Summary, name string) {
	if a.conns == nil {
		a.conns = map[string]bool{}
	}
	if name != "" && !a.conns[name] {
		a.conns[name] = true
		s.Connections = append(s.Connections, name)
	}
}

func (a *summaryAcc) finish(s *Summary, last time.Time) {
	if !s.Started.IsZero() && !last.IsZero() {
		s.Duration = last.Sub(s.Started)
	}
}
