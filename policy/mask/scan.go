package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math/bits"
)

// The scanner makes one pass over a value. Most bytes are letters, spaces and
// digits inside words; only a few byte values can start a detector (the
// trigger table), and each trigger does a cheap local check before any
// validation. No regular expression runs over every value: gitleaks rules run
// only where one of their keywords occurs.

const (
	tNone = iota
	tDigit
	tAt
	tColon
	tEq
	tDash
	tUnder
	tDollar
	tQuote
	tA // AWS key ids
	tJ // JWT: "eyJ"
)

var trig = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = tDigit
	}
	t['@'] = tAt
	t[':'] = tColon
	t['='] = tEq
	t['-'] = tDash
	t['_'] = tUnder
	t['$'] = tDollar
	t['\''] = tQuote
	t['A'] = tA
	t['J'] = tJ
	return
}()

const (
	cDigit = 1 << iota
	cUpper
	cLower
	cWord  // letters, digits, '_'
	cB64   // base64: letters, digits, + /
	cB64U  // base64url: letters, digits, - _
	cLocal // email local part: letters, digits, . _ % + -
	cHashC // password hash body: letters digits . / + = $ , : -
	cKey   // assignment key: letters digits _ . -
)

var class = func() (t [256]uint16) {
	for c := 0; c < 256; c++ {
		var v uint16
		switch {
		case c >= '0' && c <= '9':
			v |= cDigit | cWord | cB64 | cB64U | cLocal | cHashC | cKey
		case c >= 'A' && c <= 'Z':
			v |= cUpper | cWord | cB64 | cB64U | cLocal | cHashC | cKey
		case c >= 'a' && c <= 'z':
			v |= cLower | cWord | cB64 | cB64U | cLocal | cHashC | cKey
		}
		switch c {
		case '_':
			v |= cWord | cB64U | cLocal | cKey
		case '-':
			v |= cB64U | cLocal | cHashC | cKey
		case '+':
			v |= cB64 | cLocal | cHashC
		case '/':
			v |= cB64 | cHashC
		case '.':
			v |= cLocal | cHashC | cKey
		case '%':
			v |= cLocal
		case '=', '$', ',', ':':
			v |= cHashC
		}
		t[c] = v
	}
	return
}()

func isDigit(c byte) bool { return c-'0' < 10 }
func isUpper(c byte) bool { return c-'A' < 26 }
func isAlpha(c byte) bool { return class[c]&(cUpper|cLower) != 0 }
func isAlnum(c byte) bool { return class[c]&(cUpper|cLower|cDigit) != 0 }
func isWord(c byte) bool  { return class[c]&cWord != 0 }
func is(c byte, k uint16) bool {
	return class[c]&k != 0
}

func lower(c byte) byte {
	if isUpper(c) {
		return c + 32
	}
	return c
}

// match is one masked span of a value.
type match struct {
	start, end int
	det        int // detector, or -1 for a column rule's match
	aux        int // detector-specific: length of a public prefix kept by partial
	rule       int // statement text only: index+1 of the column rule that masks this literal
}

type hmacState struct{ h hash.Hash }

// scanner holds the scratch state of one goroutine's scans.
type scanner struct {
	m       *Masker
	matches []match
	en      uint32 // enabled built-in detectors (bit per det)
	last    int    // end of the last match: no new match may start before it
	awsCtx  bool   // an AWS key id was seen in this value
	lowerv  []byte
	run     numRun
	hm      hmacState
	sum     []byte
}

func (s *scanner) on(d det) bool { return s.en&(1<<d) != 0 }

// enabled is the bit set of the built-in detectors that are not Off.
func (m *Masker) enabled() uint32 {
	var en uint32
	for d := det(0); d < numBuiltin; d++ {
		if m.strat[d] != Off {
			en |= 1 << d
		}
	}
	return en
}

// add records a match unless it overlaps an earlier one.
func (s *scanner) add(start, end int, d det, aux int) bool {
	if start < s.last || end <= start || s.m.strat[d] == Off {
		return false
	}
	s.matches = append(s.matches, match{start: start, end: end, det: int(d), aux: aux})
	s.last = end
	return true
}

// triggerMask marks (high bit of each byte) the bytes of x that may be a
// trigger: in 0x24..0x40 ($ ' - digits : = @ and some punctuation), or 'A',
// 'J', '_'. Letters other than A and J, spaces, '"' and UTF-8 sequences are
// not, so most of a text is skipped 8 bytes at a time and only the marked
// bytes are looked up (bit-twiddling "hasbetween", exact per byte, and
// "haszero", which may also mark a byte right after a match: harmless).
func triggerMask(x uint64) uint64 {
	const (
		ones = 0x0101010101010101
		low7 = 0x7f7f7f7f7f7f7f7f
		high = 0x8080808080808080
		m    = 0x23 // exclusive bounds
		n    = 0x41
	)
	t := x & low7
	r := (ones*(127+n) - t) &^ x & (t + ones*(127-m))
	a, j, u := x^(ones*'A'), x^(ones*'J'), x^(ones*'_')
	r |= (a-ones)&^a | (j-ones)&^j | (u-ones)&^u
	return r & high
}

// scan finds the matches in v, in order, without overlaps.
func (s *scanner) scan(v []byte) {
	s.matches = s.matches[:0]
	s.last = 0
	s.awsCtx = false
	n := len(v)
	i := 0
	for i+8 <= n {
		m := triggerMask(binary.LittleEndian.Uint64(v[i:]))
		base := i
		i += 8
		skip := base // candidates before skip were consumed by a match
		for m != 0 {
			j := base + bits.TrailingZeros64(m)>>3
			m &= m - 1
			if j < skip {
				continue
			}
			t := trig[v[j]]
			if t == tNone {
				continue
			}
			if nx := s.dispatch(v, j, t); nx > j {
				skip = nx
			}
		}
		i = max(i, skip)
	}
	for ; i < n; i++ {
		t := trig[v[i]]
		if t == tNone {
			continue
		}
		if nx := s.dispatch(v, i, t); nx > i {
			i = nx - 1
		}
	}
	if s.awsCtx && s.on(detAWSSecretKey) {
		s.awsSecrets(v)
	}
	if len(s.m.rules) > 0 {
		s.extraRules(v)
	}
}

// dispatch runs the detector a trigger byte starts and returns where the
// scan continues (i or less: at i+1).
func (s *scanner) dispatch(v []byte, i int, t uint8) int {
	n := len(v)
	switch t {
	case tDigit:
		if i > 0 && isWord(v[i-1]) {
			if i >= 2 && isUpper(v[i-1]) && isUpper(v[i-2]) && (i == 2 || !isWord(v[i-3])) && s.on(detIBAN) {
				return s.iban(v, i-2)
			}
			return i
		}
		// Most numbers are one short group (a count, a price, a year):
		// nothing we look for is a single group of fewer than 8 digits.
		k := i + 1
		for k < n && k-i < 8 && isDigit(v[k]) {
			k++
		}
		if k-i < 8 && (k >= n || !isNumSep(v[k]) || k+1 >= n || !(isDigit(v[k+1]) || v[k+1] == '(' || v[k+1] == ' ')) {
			return k
		}
		return s.numeric(v, i)
	case tAt:
		return s.email(v, i)
	case tColon:
		if i+2 < n && v[i+1] == '/' && v[i+2] == '/' {
			return s.urlPassword(v, i)
		}
		if s.on(detIPv6) && i+1 < n && (v[i+1] == ':' || is(v[i+1], cWord)) {
			if e := s.ipv6(v, i); e > i {
				return e
			}
		}
		return s.assignment(v, i)
	case tEq:
		return s.assignment(v, i)
	case tDash:
		return s.dash(v, i)
	case tUnder:
		return s.under(v, i)
	case tDollar:
		return s.dollar(v, i)
	case tQuote:
		return s.sqlPassword(v, i)
	case tA:
		return s.awsKeyID(v, i)
	case tJ:
		return s.jwt(v, i)
	}
	return i
}

// insert adds a match found out of order (second passes), keeping order and
// refusing overlaps.
func (s *scanner) insert(mt match) {
	if s.m.strat[mt.det] == Off || mt.end <= mt.start {
		return
	}
	i := len(s.matches)
	for i > 0 && s.matches[i-1].start >= mt.start {
		i--
	}
	if i > 0 && s.matches[i-1].end > mt.start {
		return
	}
	if i < len(s.matches) && s.matches[i].start < mt.end {
		return
	}
	s.matches = append(s.matches, match{})
	copy(s.matches[i+1:], s.matches[i:])
	s.matches[i] = mt
}

// wordBack returns the start of the run of class k that ends at i, not going
// before s.last nor more than max bytes back.
func (s *scanner) runBack(v []byte, i int, k uint16, max int) int {
	j := i
	for j > s.last && i-j < max && is(v[j-1], k) {
		j--
	}
	return j
}

func runFwd(v []byte, i int, k uint16) int {
	for i < len(v) && is(v[i], k) {
		i++
	}
	return i
}

// maxToken bounds the forward runs that a trigger reads, so that a value
// made of many near-triggers ("sk-sk-sk-...") stays linear. Real tokens,
// keys and hashes are far shorter; a longer run is cut, still masked.
const maxToken = 512

func runFwdMax(v []byte, i int, k uint16) int {
	return runFwd(v[:min(len(v), i+maxToken)], i, k)
}

func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lower(b[i]) != p[i] {
			return false
		}
	}
	return true
}

// email: local@domain.tld, found at the '@'.
func (s *scanner) email(v []byte, at int) int {
	if !s.on(detEmail) {
		return at
	}
	j := s.runBack(v, at, cLocal, 64)
	for j < at && (v[j] == '.' || v[j] == '-' || v[j] == '+') {
		j++
	}
	if j == at || v[at-1] == '.' {
		return at
	}
	if j > 0 && (v[j-1] == '/' || v[j-1] == '@') {
		return at // URL user info, or a second '@'
	}
	n := len(v)
	k, lastDot, label := at+1, -1, at+1
	for k < n && k-at <= 255 {
		c := v[k]
		if isAlnum(c) || c == '-' {
			k++
			continue
		}
		if c == '.' && k > label && k+1 < n && isAlnum(v[k+1]) {
			lastDot = k
			k++
			label = k
			continue
		}
		break
	}
	for k > at+1 && v[k-1] == '-' {
		k--
	}
	if lastDot < 0 || k-lastDot-1 < 2 {
		return at
	}
	if k+1 < n && v[k] == ':' && (v[k+1] == '/' || isAlnum(v[k+1])) && k < n && (j == 0 || v[j-1] != ':') {
		return k // git@github.com:org/repo.git is an SSH remote
	}
	for p := lastDot + 1; p < k; p++ {
		if !isAlpha(v[p]) {
			return at
		}
	}
	if s.add(j, k, detEmail, 0) {
		return k
	}
	return at
}

// urlPassword: scheme://user:password@host; only the password is masked.
// Passwords in the wild carry unencoded '#', '?', '/' and '@', so the
// password runs from the first ':' of the user info to the last '@' of the
// URL; the user name itself may not hold '/', '?' or '#'.
func (s *scanner) urlPassword(v []byte, colon int) int {
	if colon == 0 || !isAlpha(v[colon-1]) {
		return colon + 3
	}
	st := colon + 3
	at, pc := -1, -1
	k := st
	for lim := min(len(v), st+maxToken); k < lim; k++ {
		c := v[k]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '\\' || c == '`' {
			break
		}
		switch c {
		case '@':
			if pc >= 0 {
				at = k
			}
		case ':':
			if pc < 0 {
				pc = k
			}
		case '/', '?', '#':
			if pc < 0 {
				k = len(v) // a path before any ':': no user info
			}
		}
	}
	if at < 0 || pc+1 >= at {
		return st
	}
	s.add(pc+1, at, detURLPassword, 0)
	return at + 1
}

// hasSuffixKey reports whether key ends with the word suf (lower-case, no
// separators), ignoring case and the separators '_', '-' and '.' inside the
// key, so "clientSecret", "client_secret" and "CLIENT-SECRET" all end with
// "secret". The suffix must start a word: the key's start, after a
// separator, or at a lower-to-upper case change.
func hasSuffixKey(key []byte, suf string) bool {
	k := len(key)
	for j := len(suf) - 1; j >= 0; j-- {
		for k > 0 && (key[k-1] == '_' || key[k-1] == '-' || key[k-1] == '.') {
			k--
		}
		if k == 0 || lower(key[k-1]) != suf[j] {
			return false
		}
		k--
	}
	if k == 0 || len(suf) >= 5 {
		return true // PGPASSWORD, dbpassword: long words need no boundary
	}
	c := key[k-1]
	return c == '_' || c == '-' || c == '.' || (isUpper(key[k]) && !isUpper(c))
}

func isLower(c byte) bool { return c-'a' < 26 }

func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		if hasPrefixFold(b[i:], w) {
			return true
		}
	}
	return false
}

// keyKind classifies an assignment key by its last word(s).
func keyKind(key []byte) (det, bool) {
	if len(key) > 48 {
		key = key[len(key)-48:]
	}
	h := func(suf string) bool { return hasSuffixKey(key, suf) }
	secret := false
	switch lower(key[len(key)-1]) {
	case 'd':
		if h("privatekeyid") {
			return detGCP, true
		}
		secret = h("password") || h("passwd") || h("pwd")
	case 'e':
		secret = h("passphrase")
	case 't':
		secret = h("secret")
	case 'n':
		secret = h("token") || h("authorization")
	case 's':
		secret = h("credentials")
	case 'y':
		switch {
		case h("privatekey"):
			return detGCP, true
		case h("accountkey"):
			return detAzure, true
		case h("secretaccesskey"), h("awssecretkey"):
			return detAWSSecretKey, true
		}
		secret = h("secretkey") || h("apikey") || h("accesskey") || h("signingkey") || h("encryptionkey")
	}
	if !secret {
		return 0, false
	}
	if containsFold(key, "aws") && !h("token") {
		return detAWSSecretKey, true
	}
	return detSecret, true
}

func isNumSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func endOfBare(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ';', ',', '&', '"', '\'', '}', ']', ')', '<', '>', '\\':
		return true
	}
	return false
}

// quotedEnd finds the end of a quoted value starting after the opening quote
// q at k. esc: the quote was itself escaped (\"), so the closing is \" too.
func quotedEnd(v []byte, k int, q byte, esc bool) int {
	for k < len(v) {
		c := v[k]
		if esc {
			if c == '\\' && k+1 < len(v) && v[k+1] == q {
				return k
			}
			k++
			continue
		}
		if c == '\\' && q == '"' {
			k += 2
			continue
		}
		if c == q {
			if q == '\'' && k+1 < len(v) && v[k+1] == q {
				k += 2
				continue
			}
			return k
		}
		k++
	}
	return len(v)
}

func trivialValue(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	switch b[0] {
	case '<', '*', '{', '[', '/':
		return true
	}
	if len(b) > 8 {
		return false
	}
	var l [8]byte
	for i, c := range b {
		l[i] = lower(c)
	}
	switch string(l[:len(b)]) {
	case "true", "false", "null", "none", "nil", "yes", "no", "required", "optional", "redacted", "string", "text", "varchar", "bool", "boolean":
		return true
	}
	return false
}

// assignment: key=value, key: value, "key": "value" where the key names a
// secret; the value is masked.
func (s *scanner) assignment(v []byte, i int) int {
	if !s.on(detSecret) && !s.on(detGCP) && !s.on(detAzure) && !s.on(detAWSSecretKey) {
		return i
	}
	n := len(v)
	if v[i] == '=' && i+1 < n && v[i+1] == '=' {
		return i + 2
	}
	if v[i] == ':' && i+1 < n && v[i+1] == '=' {
		return i + 1 // the '=' will see the key
	}
	j := i
	for sk := 0; j > s.last && sk < 4 && (v[j-1] == ' ' || v[j-1] == '"' || v[j-1] == '\'' || v[j-1] == '\\' || v[j-1] == '`' || v[j-1] == ':'); sk++ {
		j--
	}
	ks := s.runBack(v, j, cKey, 48)
	if j-ks < 3 {
		return i
	}
	d, ok := keyKind(v[ks:j])
	if !ok {
		return i
	}
	if v[i] == ':' && !structuredKey(v, ks) && englishWord(v[ks:j]) {
		return i // prose: "the secret: nobody knows" (but "my password: x" is masked)
	}
	k := i + 1
	for sk := 0; k < n && sk < 4 && (v[k] == ' ' || v[k] == '\t'); sk++ {
		k++
	}
	esc := false
	if k+1 < n && v[k] == '\\' && (v[k+1] == '"' || v[k+1] == '\'') {
		esc = true
		k++
	}
	var vs, ve int
	if k < n && (v[k] == '"' || v[k] == '\'') {
		vs = k + 1
		ve = quotedEnd(v, vs, v[k], esc)
	} else if hasSuffixKey(v[ks:j], "authorization") {
		// Authorization: Basic ..., Bearer ...: the credentials after the scheme
		vs = k
		for w := k; w < n && w-k < 16 && isAlpha(v[w]); w++ {
			if w+1 < n && v[w+1] == ' ' {
				vs = w + 2
			}
		}
		ve = vs
		for ve < n && v[ve] != '\n' && v[ve] != '\r' && v[ve] != '"' && v[ve] != '\'' && v[ve] != '\\' {
			ve++
		}
		for ve > vs && v[ve-1] == ' ' {
			ve--
		}
	} else {
		vs = k
		ve = k
		for ve < n && !endOfBare(v[ve]) {
			ve++
		}
	}
	val := v[vs:ve]
	if trivialValue(val) {
		return i + 1
	}
	if s.specific(v, vs, ve) {
		return ve
	}
	switch d {
	case detAzure:
		if ve-vs < 40 {
			d = detSecret
		}
	case detGCP:
		if !s.on(detGCP) {
			d = detSecret
		}
	case detAWSSecretKey:
		if !s.on(detAWSSecretKey) {
			d = detSecret
		}
	}
	if s.add(vs, ve, d, 0) {
		return ve
	}
	return i + 1
}

// specific reports whether one specific detector (a JWT, a token with a
// known prefix, a password hash...) covers the whole value v[vs:ve]; it then
// keeps that match so the value is labelled by what it is. Otherwise the
// value is left to the caller, whole: a partial match inside a password
// must not leave the rest of it visible.
func (s *scanner) specific(v []byte, vs, ve int) bool {
	n0, last0 := len(s.matches), s.last
	w := v[:ve]
	for k := vs; k < ve; k++ {
		t := trig[w[k]]
		if t == tNone || t == tEq || t == tColon || t == tQuote {
			continue
		}
		if nx := s.dispatch(w, k, t); nx > k {
			k = nx - 1
		}
	}
	if len(s.matches) == n0+1 && s.matches[n0].start == vs && s.matches[n0].end == ve {
		return true
	}
	s.matches, s.last = s.matches[:n0], last0
	return false
}

// structuredKey reports whether the key starting at ks begins a field of
// structured text (JSON, YAML, headers, key: value lists) rather than a word
// in a sentence.
func structuredKey(v []byte, ks int) bool {
	j := ks
	if j > 0 && (v[j-1] == '"' || v[j-1] == '\'' || v[j-1] == '`') {
		return true // a quoted key
	}
	for j > 0 && (v[j-1] == ' ' || v[j-1] == '\t') {
		j--
	}
	if j == 0 {
		return true
	}
	switch v[j-1] {
	case '{', ',', ';', '[', '(', '\n', '\r', '"', '\'', '&', '?', '|':
		return true
	}
	return false
}

// englishWord: key words that are common in prose.
func englishWord(key []byte) bool {
	for _, w := range [...]string{"secret", "secrets", "token", "credentials"} {
		if len(key) == len(w) && hasPrefixFold(key, w) {
			return true
		}
	}
	return false
}

// sqlPassword: PASSWORD 'literal' in CREATE/ALTER ROLE statements.
func (s *scanner) sqlPassword(v []byte, q int) int {
	if !s.on(detSecret) || q < 9 || v[q-1] != ' ' {
		return q
	}
	j := q
	for j > s.last && v[j-1] == ' ' {
		j--
	}
	ks := s.runBack(v, j, cWord, 9)
	if j-ks != 8 || !hasPrefixFold(v[ks:j], "password") || (ks > 0 && isWord(v[ks-1])) {
		return q
	}
	e := quotedEnd(v, q+1, '\'', false)
	if q+1 < len(v) && v[q+1] == '$' {
		if h := s.dollar(v, q+1); h > q+1 {
			return h
		}
	}
	if s.add(q+1, e, detSecret, 0) {
		return e + 1
	}
	return q + 1
}

// awsKeyID: AKIA... at an 'A'.
func (s *scanner) awsKeyID(v []byte, i int) int {
	if i+20 > len(v) || !isUpper(v[i+2]) || bytes.IndexByte([]byte("KSGIRNBC"), v[i+1]) < 0 || (i > 0 && isAlnum(v[i-1])) {
		return i
	}
	switch string(v[i : i+4]) {
	case "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA":
	default:
		return i
	}
	for p := i + 4; p < i+20; p++ {
		if !isUpper(v[p]) && !isDigit(v[p]) {
			return i
		}
	}
	if i+20 < len(v) && isAlnum(v[i+20]) {
		return i
	}
	s.awsCtx = true
	if s.add(i, i+20, detAWSAccessKey, 4) {
		return i + 20
	}
	return i + 1
}

// awsSecrets: 40 base64 characters, with mixed classes, in a value that
// also holds an AWS key id.
func (s *scanner) awsSecrets(v []byte) {
	for i := 0; i < len(v); {
		if !is(v[i], cB64) {
			i++
			continue
		}
		j := runFwd(v, i, cB64)
		if j-i == 40 && (j == len(v) || v[j] != '=') {
			var k uint16
			for _, c := range v[i:j] {
				k |= class[c] & (cUpper | cLower | cDigit)
			}
			if k == cUpper|cLower|cDigit {
				s.insert(match{start: i, end: j, det: int(detAWSSecretKey)})
			}
		}
		i = j
	}
}

// jwt: header.payload.signature at the 'J' of "eyJ".
func (s *scanner) jwt(v []byte, j int) int {
	if j < 2 || v[j-1] != 'y' || v[j-2] != 'e' || !s.on(detJWT) {
		return j
	}
	st := j - 2
	if st < s.last || (st > 0 && is(v[st-1], cB64U)) {
		return j
	}
	he := runFwdMax(v, st, cB64U)
	if he-st < 10 || he >= len(v) || v[he] != '.' {
		return j
	}
	pe := runFwdMax(v, he+1, cB64U)
	if pe-he-1 < 2 {
		return j
	}
	end := pe
	if pe < len(v) && v[pe] == '.' {
		end = runFwdMax(v, pe+1, cB64U)
	} else {
		return j
	}
	if end < len(v) && (v[end] == '.' || isAlnum(v[end])) {
		return j
	}
	var buf [768]byte
	h := v[st:he]
	if len(h) > 1024 {
		h = h[:1024]
	}
	h = h[:len(h)/4*4+min(len(h)%4, 3)]
	if len(h)%4 == 1 {
		h = h[:len(h)-1]
	}
	nd, err := base64.RawURLEncoding.Decode(buf[:], h)
	if err != nil && nd == 0 {
		return j
	}
	if !bytes.Contains(buf[:nd], []byte(`"alg"`)) {
		return j
	}
	if s.add(st, end, detJWT, he-st+1) {
		return end
	}
	return j
}

func wordBefore(v []byte, i, last, max int) []byte {
	j := i
	for j > last && i-j < max && isAlnum(v[j-1]) {
		j--
	}
	if j > 0 && isAlnum(v[j-1]) {
		return nil
	}
	return v[j:i]
}

// dash: PEM blocks, glpat-, xox?-, sk-, sk-ant-.
func (s *scanner) dash(v []byte, i int) int {
	n := len(v)
	if i+10 <= n && v[i+1] == '-' && string(v[i:i+10]) == "-----BEGIN" {
		return s.pem(v, i)
	}
	w := wordBefore(v, i, s.last, 6)
	if len(w) < 2 {
		return i
	}
	st := i - len(w)
	switch {
	case string(w) == "glpat":
		e := runFwdMax(v, i+1, cB64U)
		if e-i-1 >= 20 && (e == n || !isAlnum(v[e])) && s.add(st, e, detGitLab, 6) {
			return e
		}
	case len(w) == 4 && w[0] == 'x' && w[1] == 'o' && w[2] == 'x' && bytes.IndexByte([]byte("baprse"), w[3]) >= 0:
		e := runFwdMax(v, i+1, cB64U)
		if e-i-1 >= 10 && s.add(st, e, detSlack, 5) {
			return e
		}
	case string(w) == "sk":
		if i+5 < n && string(v[i+1:i+5]) == "ant-" {
			e := runFwdMax(v, i+5, cB64U)
			if e-i-5 >= 32 && s.add(st, e, detAnthropic, 7) {
				return e
			}
			return i
		}
		e := runFwdMax(v, i+1, cB64U)
		if e-i-1 < 20 || (e < n && v[e] == '@') {
			return i
		}
		var k uint16
		for _, c := range v[i+1 : e] {
			k |= class[c] & (cUpper | cLower | cDigit)
		}
		if k&cDigit == 0 || k&(cUpper|cLower) == 0 {
			return i
		}
		keep := 3
		if e-i > 6 && string(v[i+1:i+6]) == "proj-" {
			keep = 8
		}
		if s.add(st, e, detOpenAI, keep) {
			return e
		}
	}
	return i
}

func (s *scanner) pem(v []byte, i int) int {
	n := len(v)
	le := bytes.Index(v[i+10:min(n, i+80)], []byte("-----"))
	if le < 0 {
		return i + 10
	}
	label := v[i+10 : i+10+le]
	if !bytes.Contains(label, []byte("PRIVATE KEY")) {
		return i + 10 + le + 5
	}
	end := n
	if e := bytes.Index(v[i+10+le:], []byte("-----END")); e >= 0 {
		p := i + 10 + le + e + 8
		if c := bytes.Index(v[p:min(n, p+80)], []byte("-----")); c >= 0 {
			end = p + c + 5
		}
	}
	if s.add(i, end, detPrivateKey, 0) {
		return end
	}
	return i + 10
}

// under: ghp_ gho_ ghs_ ghu_ ghr_ github_pat_ sk_live_ rk_live_.
func (s *scanner) under(v []byte, i int) int {
	w := wordBefore(v, i, s.last, 6)
	n := len(v)
	st := i - len(w)
	switch string(w) {
	case "ghp", "gho", "ghs", "ghu", "ghr":
		e := runFwdMax(v, i+1, cDigit|cUpper|cLower)
		if e-i-1 >= 30 && (e == n || !isWord(v[e])) && s.add(st, e, detGitHub, 4) {
			return e
		}
	case "github":
		if i+5 < n && string(v[i+1:i+5]) == "pat_" {
			e := runFwdMax(v, i+5, cWord)
			if e-i-5 >= 30 && s.add(st, e, detGitHub, 11) {
				return e
			}
		}
	case "sk", "rk":
		if i+6 < n && string(v[i+1:i+6]) == "live_" {
			e := runFwdMax(v, i+6, cDigit|cUpper|cLower)
			if e-i-6 >= 10 && s.add(st, e, detStripe, 8) {
				return e
			}
		}
	}
	return i
}

var hashIDs = [...]string{"$2a$", "$2b$", "$2y$", "$2x$", "$argon2id$", "$argon2i$", "$argon2d$", "$scrypt$", "$7$", "$y$", "$gy$", "$6$", "$5$", "$1$", "$pbkdf2", "$s0$", "$sha1$", "$md5"}

var hashWords = [...]string{"pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt", "bcrypt_sha256", "scrypt", "SCRAM-SHA-256"}

// dollar: password hashes.
func (s *scanner) dollar(v []byte, i int) int {
	n := len(v)
	if !s.on(detPasswordHash) || i+3 >= n {
		return i
	}
	if c := v[i+1]; isDigit(c) && v[i+2] != '$' && !(c == '2' && v[i+3] == '$') && (i == 0 || !isWord(v[i-1])) {
		return i // "$5", "$120.00": a price, not "$6$" nor "$2b$"
	}
	st := -1
	if bytes.IndexByte([]byte("2asy7g651pm"), v[i+1]) < 0 {
		// not an id we know; Django-style words end right before the '$'
		if i == 0 || !isWord(v[i-1]) {
			return i
		}
	}
	if i == 0 || !is(v[i-1], cHashC) || v[i-1] == '$' || v[i-1] == ',' || v[i-1] == ':' || v[i-1] == '=' {
		for _, id := range hashIDs {
			if i+len(id) <= n && string(v[i:i+len(id)]) == id {
				st = i
				break
			}
		}
	} else {
		j := i
		for j > s.last && i-j < 14 && (isWord(v[j-1]) || v[j-1] == '-') {
			j--
		}
		if j == 0 || !isWord(v[j-1]) {
			for _, w := range hashWords {
				if string(v[j:i]) == w {
					st = j
					break
				}
			}
		}
	}
	if st < 0 || st < s.last {
		return i
	}
	e := runFwdMax(v, i+1, cHashC)
	for e > i && (v[e-1] == ',' || v[e-1] == ':' || v[e-1] == '.') {
		e--
	}
	dollars, last := 0, 0
	for p := st; p < e; p++ {
		if v[p] == '$' {
			dollars++
			if dollars <= 3 {
				last = p
			}
		}
	}
	if e-st < 20 || dollars < 2 {
		return i
	}
	if st == i && string(v[i:min(i+2, n)]) == "$2" && e-st != 60 {
		return i
	}
	if s.add(st, e, detPasswordHash, last+1-st) {
		return e
	}
	return i
}
