package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Placeholders use only characters that are safe unquoted in every place a
// value can sit: JSON strings, array literals, COPY text and CSV fields
// (letters, digits, < > : * - . @ $ / _).

const hashBytes = 6 // 48 bits: no collision expected below ~16 million distinct values

func (s *scanner) hashHex(dst []byte, name string, val []byte) []byte {
	if s.hm.h == nil {
		s.hm = hmacState{h: hmac.New(sha256.New, s.m.key)}
	}
	h := s.hm.h
	h.Reset()
	s.sum = append(append(append(s.sum[:0], name...), 0), val...)
	h.Write(s.sum)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	var x [2 * hashBytes]byte
	hex.Encode(x[:], out[:hashBytes])
	return append(dst, x[:]...)
}

func placeholder(dst []byte, name string) []byte {
	return append(append(append(dst, '<'), name...), '>')
}

// render appends the replacement of val found by detector d (or a column
// rule labelled name, d < 0 when the label names no detector).
func (s *scanner) render(dst, val []byte, d int, name string, aux int, st Strategy) []byte {
	switch st {
	case Hash:
		dst = append(append(dst, '<'), name...)
		dst = append(dst, ':')
		return append(s.hashHex(dst, name, val), '>')
	case Partial:
		if d >= 0 {
			if out, ok := partial(dst, val, det(d), aux); ok {
				return out
			}
		}
	}
	return placeholder(dst, name)
}

func lastDigits(val []byte, k int) ([]byte, bool) {
	var b [4]byte
	n := 0
	for i := len(val) - 1; i >= 0 && n < k; i-- {
		if isDigit(val[i]) {
			n++
			b[k-n] = val[i]
		}
	}
	if n < k {
		return nil, false
	}
	return b[:k:k], true
}

func partial(dst, val []byte, d det, aux int) ([]byte, bool) {
	switch d {
	case detEmail:
		for i := len(val) - 1; i >= 0; i-- {
			if val[i] == '@' {
				return append(append(dst, "***"...), val[i:]...), true
			}
		}
	case detCard:
		if l, ok := lastDigits(val, 4); ok {
			return append(append(dst, "****-****-****-"...), l...), true
		}
	case detSSN:
		if l, ok := lastDigits(val, 4); ok {
			return append(append(dst, "***-**-"...), l...), true
		}
	case detPhone:
		if l, ok := lastDigits(val, 2); ok {
			return append(append(dst, "***-***-**"...), l...), true
		}
	case detIBAN:
		var last [4]byte
		n := 0
		for i := len(val) - 1; i >= 0 && n < 4; i-- {
			if isAlnum(val[i]) {
				n++
				last[4-n] = val[i]
			}
		}
		if len(val) >= 2 && n == 4 {
			return append(append(append(dst, val[:2]...), "****"...), last[:]...), true
		}
	case detIPv4:
		dots := 0
		for i, c := range val {
			if c == '.' {
				dots++
				if dots == 2 {
					return append(append(dst, val[:i]...), ".*.*"...), true
				}
			}
		}
	case detIPv6:
		colons := 0
		for i, c := range val {
			if c == ':' {
				colons++
				if colons == 2 {
					return append(append(dst, val[:i+1]...), '*'), true
				}
			}
		}
	case detDOB:
		if len(val) >= 4 && isDigit(val[0]) && isDigit(val[1]) && isDigit(val[2]) && isDigit(val[3]) && (len(val) == 4 || !isDigit(val[4])) {
			return append(append(dst, val[:4]...), "-**-**"...), true
		}
	case detURLPassword, detSecret, detAWSSecretKey, detAzure, detGCP:
		return append(dst, "****"...), true
	case detPrivateKey:
		return dst, false
	default:
		if aux > 0 && aux < len(val) {
			return append(append(dst, val[:aux]...), "****"...), true
		}
		return append(dst, "****"...), true
	}
	return dst, false
}

// inJSONString reports whether offset p of a JSON text is inside a string.
func inJSONString(v []byte, p int) bool {
	in := false
	for i := 0; i < p && i < len(v); i++ {
		switch v[i] {
		case '\\':
			if in {
				i++
			}
		case '"':
			in = !in
		}
	}
	return in
}

// crossesJSONString reports whether b holds an unescaped '"'.
func crossesJSONString(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' {
			i++
		} else if b[i] == '"' {
			return true
		}
	}
	return false
}

// rewrite appends v with every match replaced to dst. null reports that a
// match's strategy is Null (the caller then drops the whole value). counts
// receives one per match per detector.
func (s *scanner) rewrite(dst, v []byte, json, text bool, counts []int) (out []byte, null bool) {
	prev := 0
	for _, mt := range s.matches {
		if mt.rule > 0 {
			r := &s.m.columns[mt.rule-1]
			st := s.m.columnStrategy(r)
			if st == Null {
				st = Redact
			}
			dst = append(dst, v[prev:mt.start]...)
			dst = s.render(dst, v[mt.start:mt.end], r.det, r.label, 0, st)
			prev = mt.end
			continue
		}
		st := s.m.strat[mt.det]
		if counts != nil {
			counts[mt.det]++
		}
		if st == Null {
			if !text {
				null = true
				continue
			}
			st = Redact
		}
		if json && crossesJSONString(v[mt.start:mt.end]) {
			null = true // a match that runs past a string's end: the value is not safe to keep
			continue
		}
		dst = append(dst, v[prev:mt.start]...)
		q := json && !inJSONString(v, mt.start)
		if q {
			dst = append(dst, '"')
		}
		dst = s.render(dst, v[mt.start:mt.end], mt.det, s.m.names[mt.det], mt.aux, st)
		if q {
			dst = append(dst, '"')
		}
		prev = mt.end
	}
	return append(dst, v[prev:]...), null
}
