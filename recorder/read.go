package recorder

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Record is one event as read back from events.jsonl.
type Record struct {
	Line  int
	Seq   uint64
	Time  time.Time
	Type  string
	Event Event // a pointer to the typed event; nil for an unknown type
	Raw   []byte
}

// Read iterates the events of session id (or a unique prefix) in order. It
// decodes but does not verify (Verify does); a torn last line is skipped.
func (st *Store) Read(id string) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		full, err := st.Find(id)
		if err != nil {
			yield(Record{}, err)
			return
		}
		f, err := os.Open(filepath.Join(st.sessionDir(full), EventsFile))
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer f.Close()
		for r, err := range ReadEvents(f) {
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

// ReadEvents iterates the events of an events.jsonl stream.
func ReadEvents(r io.Reader) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		err := readLines(r, func(n int, line []byte, complete bool) error {
			if !complete {
				return nil
			}
			var env struct {
				Seq  uint64    `json:"seq"`
				Time time.Time `json:"time"`
				Type string    `json:"type"`
			}
			if err := json.Unmarshal(line, &env); err != nil {
				return fmt.Errorf("%s line %d: %w", EventsFile, n, err)
			}
			ev, err := decodeEvent(env.Type, line)
			if err != nil {
				return fmt.Errorf("%s line %d: %w", EventsFile, n, err)
			}
			raw := append([]byte(nil), line...)
			if !yield(Record{Line: n, Seq: env.Seq, Time: env.Time, Type: env.Type, Event: ev, Raw: raw}, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(Record{}, err)
		}
	}
}

// Events reads all events of session id.
func (st *Store) Events(id string) ([]Record, error) {
	var out []Record
	for r, err := range st.Read(id) {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// OpenCast opens session id's terminal.cast; fs.ErrNotExist when the
// session has none.
func (st *Store) OpenCast(id string) (io.ReadCloser, error) {
	full, err := st.Find(id)
	if err != nil {
		return nil, err
	}
	return os.Open(filepath.Join(st.sessionDir(full), CastFile))
}

// CastHeader is an asciicast v2 header.
type CastHeader struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Env       map[string]string `json:"env,omitempty"`
}

// CastEvent is one asciicast v2 event: Time in seconds from the start,
// Code "o" (output), "r" (resize "COLSxROWS"), "m" (marker), "i" (input).
type CastEvent struct {
	Time float64
	Code string
	Data string
}

// ParseCast reads an asciicast v2 stream. A torn last line (crash) is
// ignored.
func ParseCast(r io.Reader) (CastHeader, []CastEvent, error) {
	var h CastHeader
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return h, nil, err
	}
	if err := json.Unmarshal(first, &h); err != nil || h.Version != 2 {
		return h, nil, errors.New("terminal.cast is not asciicast v2")
	}
	var evs []CastEvent
	err = readLines(br, func(n int, line []byte, complete bool) error {
		if !complete || len(line) == 0 {
			return nil
		}
		var raw [3]json.RawMessage
		if err := json.Unmarshal(line, &raw); err != nil {
			return fmt.Errorf("%s line %d: %w", CastFile, n+1, err)
		}
		var e CastEvent
		ts := string(raw[0])
		t, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			return fmt.Errorf("%s line %d: bad time %q", CastFile, n+1, ts)
		}
		e.Time = t
		if json.Unmarshal(raw[1], &e.Code) != nil || json.Unmarshal(raw[2], &e.Data) != nil {
			return fmt.Errorf("%s line %d: malformed event", CastFile, n+1)
		}
		evs = append(evs, e)
		return nil
	})
	return h, evs, err
}
