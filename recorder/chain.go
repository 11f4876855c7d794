package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// GenesisPrev is the "prev" of a chain's first line.
const GenesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// timeLayout is how every line's "time" is written: UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// envelope keys the recorder owns; events may not use them.
var envelopeKeys = [...]string{"seq", "time", "type", "prev", "hash"}

// chainLine builds one canonical line (without the trailing newline) of a
// hash chain: ev's fields plus seq, time, type and prev, and hash =
// sha256(prev + canonical bytes without hash). It returns the line and its
// hash.
func chainLine(seq uint64, t time.Time, typ string, ev any, prev string) ([]byte, string, error) {
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, "", err
	}
	val, err := decodeJSON(raw)
	if err != nil {
		return nil, "", err
	}
	m, ok := val.(map[string]any)
	if !ok {
		return nil, "", fmt.Errorf("%w: event %s is not an object", ErrNotCanonical, typ)
	}
	for _, k := range envelopeKeys {
		if _, ok := m[k]; ok {
			return nil, "", fmt.Errorf("%w: event %s has a field named %q", ErrNotCanonical, typ, k)
		}
	}
	m["seq"] = json.Number(fmt.Sprint(seq))
	m["time"] = t.UTC().Format(timeLayout)
	m["type"] = typ
	m["prev"] = prev
	var b bytes.Buffer
	if err := appendCanonical(&b, m); err != nil {
		return nil, "", err
	}
	body := b.Bytes()
	sum := lineHash(prev, body)
	return insertHash(body, sum), sum, nil
}

// lineHash is hex(sha256(prev || body)).
func lineHash(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// insertHash puts "hash":"<sum>" into a canonical object at its sorted
// place. "prev", "seq", "time" and "type" always follow "hash", so the
// member goes before the first key that sorts after "hash".
func insertHash(body []byte, sum string) []byte {
	member := `"hash":"` + sum + `",`
	off := firstKeyAfter(body, "hash")
	out := make([]byte, 0, len(body)+len(member))
	out = append(out, body[:off]...)
	out = append(out, member...)
	return append(out, body[off:]...)
}

// firstKeyAfter returns the offset of the first top-level key of a
// canonical object that sorts after k.
func firstKeyAfter(body []byte, k string) int {
	depth := 0
	inStr := false
	expectKey := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			if expectKey {
				// Read the key (canonical keys of ours are plain ASCII).
				end := bytes.IndexByte(body[i+1:], '"')
				key := string(body[i+1 : i+1+end])
				if key > k {
					return i
				}
				expectKey = false
			}
			inStr = true
		}
	}
	return len(body) - 1
}

// parsedLine is one line of a chain, checked for form but not for linkage.
type parsedLine struct {
	Seq  uint64
	Time time.Time
	Type string
	Prev string
	Hash string
	Raw  []byte // the line without its newline
}

// lineProblem says what is wrong with a line by itself.
type lineProblem string

// parseChainLine checks that raw is a canonical object carrying a correct
// hash of itself and returns its envelope. It does not check linkage.
func parseChainLine(raw []byte) (parsedLine, lineProblem) {
	val, err := decodeJSON(raw)
	if err != nil {
		return parsedLine{}, "is not valid JSON"
	}
	m, ok := val.(map[string]any)
	if !ok {
		return parsedLine{}, "is not a JSON object"
	}
	var b bytes.Buffer
	if err := appendCanonical(&b, m); err != nil || !bytes.Equal(b.Bytes(), raw) {
		return parsedLine{}, "was changed after it was written (not in canonical form)"
	}
	hash, _ := m["hash"].(string)
	prev, _ := m["prev"].(string)
	typ, _ := m["type"].(string)
	ts, _ := m["time"].(string)
	seqN, _ := m["seq"].(json.Number)
	seq, err := seqN.Int64()
	if hash == "" || prev == "" || typ == "" || err != nil || seq < 1 {
		return parsedLine{}, "lacks seq, type, prev or hash"
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return parsedLine{}, "has no valid time"
	}
	delete(m, "hash")
	b.Reset()
	_ = appendCanonical(&b, m)
	if lineHash(prev, b.Bytes()) != hash {
		return parsedLine{}, "was changed after it was written"
	}
	return parsedLine{Seq: uint64(seq), Time: t, Type: typ, Prev: prev, Hash: hash, Raw: raw}, ""
}
