package recorder

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
)

// storeEntry is one line of store.jsonl, the store-level chain that makes
// creations, seals and deletions (prune) visible. Same chain rules as
// events.jsonl.
type storeEntry struct {
	Type      string   `json:"-"`                    // create, seal, prune
	Session   string   `json:"session,omitempty"`    // create, seal
	LastSeq   uint64   `json:"last_seq,omitempty"`   // seal
	LastHash  string   `json:"last_hash,omitempty"`  // seal
	Sessions  []string `json:"sessions,omitempty"`   // prune: the ids deleted
	OlderThan string   `json:"older_than,omitempty"` // prune
	By        string   `json:"by,omitempty"`         // prune: who asked (local user)
}

// appendStoreLog appends e to store.jsonl under an exclusive file lock, so
// concurrent guardrun processes keep one chain.
func (st *Store) appendStoreLog(e storeEntry) error {
	path := filepath.Join(st.dir, StoreLog)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return &StoreError{Op: "open store log", Path: path, Err: err}
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return &StoreError{Op: "lock store log", Path: path, Err: err}
	}
	defer unlockFile(f)
	seq, prev, err := lastChainLine(f)
	if err != nil {
		return &StoreError{Op: "read store log", Path: path, Err: err}
	}
	line, _, err := chainLine(seq+1, st.opts.Now(), e.Type, e, prev)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return &StoreError{Op: "write store log", Path: path, Err: err}
	}
	if err := f.Sync(); err != nil {
		return &StoreError{Op: "sync store log", Path: path, Err: err}
	}
	return nil
}

// lastChainLine returns the seq and hash of the last complete line of a
// chain file (0, GenesisPrev when empty).
func lastChainLine(f *os.File) (uint64, string, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := fi.Size()
	if size == 0 {
		return 0, GenesisPrev, nil
	}
	chunk := int64(64 << 10)
	for {
		if chunk > size {
			chunk = size
		}
		buf := make([]byte, chunk)
		if _, err := f.ReadAt(buf, size-chunk); err != nil && !errors.Is(err, io.EOF) {
			return 0, "", err
		}
		buf = bytes.TrimRight(buf, "\n")
		i := bytes.LastIndexByte(buf, '\n')
		if i >= 0 || chunk == size {
			pl, problem := parseChainLine(buf[i+1:])
			if problem != "" {
				return 0, "", errors.New("last line " + string(problem))
			}
			return pl.Seq, pl.Hash, nil
		}
		chunk *= 4
	}
}

// readLines calls fn with each line of r (without its newline) and
// whether it ended with a newline.
func readLines(r io.Reader, fn func(n int, line []byte, complete bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			if complete {
				line = line[:len(line)-1]
			}
			if ferr := fn(n, line, complete); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
