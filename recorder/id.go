package recorder

import (
	"crypto/rand"
	"time"
)

// crockford is Crockford's base32 alphabet, lower-case: no i, l, o, u.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// IDLen is the length of a session id; ShortIDLen is how much of it is
// shown and usually enough to name a session.
const (
	IDLen      = 26
	ShortIDLen = 8
)

// newID returns a ULID, lower-case: 48 bits of milliseconds since the Unix
// epoch then 80 random bits, in Crockford base32. Ids sort by start time and
// their first eight characters change every 256 ms.
func newID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails
	// 128 bits as 26 characters: the first carries the top 3 bits.
	var out [IDLen]byte
	var acc uint64
	var bits uint
	// Walk 130 bits (2 leading zero bits) five at a time.
	j := 0
	acc, bits = 0, 2
	for _, c := range b {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = crockford[(acc>>bits)&31]
			j++
		}
	}
	return string(out[:])
}

// validID reports whether s looks like a session id (or a prefix of one).
func validID(s string) bool {
	if s == "" || len(s) > IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') || c == 'i' || c == 'l' || c == 'o' || c == 'u' {
			return false
		}
	}
	return true
}

// ShortID returns the first ShortIDLen characters of id.
func ShortID(id string) string {
	if len(id) > ShortIDLen {
		return id[:ShortIDLen]
	}
	return id
}
