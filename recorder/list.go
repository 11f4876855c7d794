package recorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// List verifies every session in the store and returns their summaries,
// oldest first. A record that does not verify is listed with State
// TAMPERED and Problem saying where.
func (st *Store) List() ([]Summary, error) {
	ids, err := st.ids()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(ids))
	for _, id := range ids {
		rep, err := st.Verify(id)
		if err != nil {
			return nil, err
		}
		out = append(out, rep.Summary)
	}
	return out, nil
}

// idTime is the start time encoded in a session id.
func idTime(id string) (time.Time, bool) {
	if len(id) < 10 {
		return time.Time{}, false
	}
	var ms uint64
	for i := 0; i < 10; i++ {
		v := -1
		for j := 0; j < len(crockford); j++ {
			if crockford[j] == id[i] {
				v = j
				break
			}
		}
		if v < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(v)
	}
	return time.UnixMilli(int64(ms)), true
}

// Prune deletes the sessions that started more than olderThan ago and are
// not being recorded, and returns their ids. The deletion is first written
// to the store log (store.jsonl), so that it stays visible.
func (st *Store) Prune(olderThan time.Duration) ([]string, error) {
	if olderThan <= 0 {
		return nil, errors.New("recorder: prune needs a positive age")
	}
	ids, err := st.ids()
	if err != nil {
		return nil, err
	}
	cutoff := st.opts.Now().Add(-olderThan)
	var doomed []string
	for _, id := range ids {
		t, ok := idTime(id)
		if !ok || !t.Before(cutoff) || st.live(st.sessionDir(id)) {
			continue
		}
		doomed = append(doomed, id)
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	if err := st.appendStoreLog(storeEntry{Type: "prune", Sessions: doomed, OlderThan: olderThan.String(), By: st.opts.User}); err != nil {
		return nil, err
	}
	var removed []string
	for _, id := range doomed {
		if err := os.RemoveAll(st.sessionDir(id)); err != nil {
			return removed, &StoreError{Op: "remove session", Path: st.sessionDir(id), Err: err}
		}
		removed = append(removed, id)
	}
	return removed, nil
}

// StoreLogEntry is one line of store.jsonl as VerifyLog reads it.
type StoreLogEntry struct {
	Line     int
	Time     time.Time
	Type     string // create, seal, prune
	Session  string
	Sessions []string
}

// VerifyLog verifies the store log's chain and returns its entries. A
// broken chain is a *TamperError naming store.jsonl and the line.
func (st *Store) VerifyLog() ([]StoreLogEntry, error) {
	f, err := os.Open(filepath.Join(st.dir, StoreLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []StoreLogEntry
	prev := GenesisPrev
	var tamper *TamperError
	err = readLines(f, func(n int, line []byte, complete bool) error {
		if !complete {
			tamper = &TamperError{File: StoreLog, Line: n, What: "is cut short"}
			return errStop
		}
		pl, problem := parseChainLine(line)
		switch {
		case problem != "":
			tamper = &TamperError{File: StoreLog, Line: n, What: string(problem)}
		case pl.Seq != uint64(n):
			tamper = &TamperError{File: StoreLog, Line: n, What: fmt.Sprintf("has seq %d where %d was expected (a line was deleted, duplicated or moved)", pl.Seq, n)}
		case pl.Prev != prev:
			tamper = &TamperError{File: StoreLog, Line: n, What: "does not follow the line before it"}
		}
		if tamper != nil {
			return errStop
		}
		prev = pl.Hash
		var e storeEntry
		_ = json.Unmarshal(line, &e)
		out = append(out, StoreLogEntry{Line: n, Time: pl.Time, Type: pl.Type, Session: e.Session, Sessions: e.Sessions})
		return nil
	})
	if tamper != nil {
		return out, tamper
	}
	if err != nil && !errors.Is(err, errStop) {
		return out, err
	}
	return out, nil
}
