package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrNotCanonical is returned when a value cannot be written canonically
// (a fractional or out-of-range number) or a stored line is not in canonical
// form.
var ErrNotCanonical = errors.New("not canonical JSON")

// Canonical returns the canonical JSON encoding of v (see the package
// documentation): v is marshalled with encoding/json, then re-encoded with
// sorted keys, no insignificant whitespace, ASCII-only strings and integer
// numbers only.
func Canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return CanonicalJSON(raw)
}

// CanonicalJSON re-encodes one JSON text in canonical form.
func CanonicalJSON(raw []byte) ([]byte, error) {
	val, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(raw))
	if err := appendCanonical(&b, val); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var val any
	if err := dec.Decode(&val); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrNotCanonical)
	}
	return val, nil
}

func appendCanonical(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case json.Number:
		s := string(v)
		if strings.ContainsAny(s, ".eE") {
			return fmt.Errorf("%w: number %s is not an integer", ErrNotCanonical, s)
		}
		if _, err := v.Int64(); err != nil {
			return fmt.Errorf("%w: number %s out of range", ErrNotCanonical, s)
		}
		if s == "-0" {
			s = "0"
		}
		b.WriteString(s)
	case string:
		appendString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := appendCanonical(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 = code point order
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			appendString(b, k)
			b.WriteByte(':')
			if err := appendCanonical(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("%w: unexpected %T", ErrNotCanonical, v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s the way Python's json.dumps does with its default
// ensure_ascii=True: \" \\ \b \f \n \r \t, other control characters and all
// non-ASCII as \u00xx / \uxxxx (lower-case hex, UTF-16 surrogate pairs);
// invalid UTF-8 becomes U+FFFD, as encoding/json makes it.
func appendString(b *bytes.Buffer, s string) {
	b.Write(appendStr(b.AvailableBuffer(), s))
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

func utf16Encode(r rune) (rune, rune) { return utf16.EncodeRune(r) }
