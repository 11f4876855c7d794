package mask

import (
	"bytes"
	"net/netip"
)

// Numbers: a run of digit groups joined by short separators is read once;
// then windows of consecutive groups are tried as card, SSN, phone and IPv4,
// longest first, leftmost first. The run's own structure (group sizes,
// separators) does most of the rejecting before any checksum.

const maxGroups = 12

type group struct{ s, e int }

// separator kinds
const (
	sepNone  = 0
	sepParen = 'p' // any of "(", ")", ") ", " (" ...
	sepMixed = 'x'
)

type numRun struct {
	g     [maxGroups]group
	cum   [maxGroups + 1]int // cum[k]: digits in groups before k
	sep   [maxGroups]byte    // sep[k] joins g[k] and g[k+1]
	n     int
	plus  bool // '+' right before the first group
	paren bool // '(' right before the first group
	endOK bool // the run is not followed by a word character
}

func (r *numRun) size(k int) int { return r.g[k].e - r.g[k].s }

func (r *numRun) digits(a, b int) int { return r.cum[b+1] - r.cum[a] }

// sameSep reports whether the separators inside groups a..b are all c.
func (r *numRun) sameSep(a, b int, c byte) bool {
	for k := a; k < b; k++ {
		if r.sep[k] != c {
			return false
		}
	}
	return true
}

// mayBeSSNOrPhone: some group has 9 digits, or 4 digits after 3 and 2-3.
func (r *numRun) mayBeSSNOrPhone() bool {
	for k := 0; k < r.n; k++ {
		switch r.size(k) {
		case 9:
			return true
		case 4:
			if k >= 2 && r.size(k-2) == 3 && (r.size(k-1) == 3 || r.size(k-1) == 2) {
				return true
			}
		}
	}
	return false
}

func (r *numRun) endsOK(b int) bool { return b < r.n-1 || r.endOK }

func (s *scanner) numeric(v []byte, i int) int {
	n := len(v)
	r := &s.run
	r.n = 0
	r.plus = i > 0 && v[i-1] == '+'
	r.paren = i > 0 && v[i-1] == '('
	j := i
	for {
		k := j
		for k < n && isDigit(v[k]) {
			k++
		}
		r.g[r.n] = group{j, k}
		r.cum[r.n+1] = r.cum[r.n] + k - j
		r.n++
		if r.n == maxGroups || k >= n {
			break
		}
		p := k
		kind := byte(sepNone)
		for p < n && p-k < 3 {
			c := v[p]
			if c != ' ' && c != '-' && c != '.' && c != '(' && c != ')' {
				break
			}
			switch {
			case c == '(' || c == ')':
				kind = sepParen
			case kind == sepNone:
				kind = c
			case kind != sepParen && kind != c:
				kind = sepMixed
			}
			p++
		}
		if p == k || p >= n || !isDigit(v[p]) || (p-k > 1 && kind != sepParen) {
			break
		}
		r.sep[r.n-1] = kind
		j = p
	}
	end := r.g[r.n-1].e
	r.endOK = end >= n || !isWord(v[end])
	if end < n && v[end] == '@' {
		return end // digits of an email's local part
	}
	if r.cum[r.n] < 8 && !(r.cum[r.n] >= 4 && s.on(detIPv4)) {
		return end // too few digits for any number we look for
	}
	if r.cum[r.n] < 13 && !r.plus && v[i] != '0' && !s.on(detIPv4) && !r.mayBeSSNOrPhone() {
		return end // no card, and no 3-2-4 / 3-3-4 / 9-digit shape: a date, a time, a code
	}
	for a := 0; a < r.n; {
		if b, ok := s.tryWindows(v, r, a); ok {
			a = b + 1
			continue
		}
		a++
	}
	return end
}

func (s *scanner) tryWindows(v []byte, r *numRun, a int) (int, bool) {
	if a > 0 && (r.sep[a-1] == '.' || r.sep[a-1] == sepMixed) {
		return 0, false // "1.2345..." is a decimal, not the start of a number
	}
	left := r.cum[r.n] - r.cum[a]
	if left < 4 {
		return 0, false
	}
	if s.on(detCard) && left >= 13 {
		for b := min(r.n-1, a+5); b >= a; b-- {
			if r.endsOK(b) && cardWin(v, r, a, b) && s.add(r.g[a].s, r.g[b].e, detCard, 0) {
				return b, true
			}
		}
	}
	if s.on(detSSN) && left >= 9 {
		if a+2 < r.n && r.endsOK(a+2) && ssnWin(v, r, a) && s.add(r.g[a].s, r.g[a+2].e, detSSN, 0) {
			return a + 2, true
		}
		if r.size(a) == 9 && r.endsOK(a) && (a == r.n-1 || r.sep[a] != '-') && ssnContext(v, r.g[a].s) &&
			ssnValid(v[r.g[a].s:], v[r.g[a].s+3:], v[r.g[a].s+5:]) && s.add(r.g[a].s, r.g[a].e, detSSN, 0) {
			return a, true
		}
	}
	if s.on(detPhone) && left >= 8 {
		if b, st, ok := phoneWin(v, r, a); ok && s.add(st, r.g[b].e, detPhone, 0) {
			return b, true
		}
	}
	if s.on(detIPv4) && a+3 < r.n && r.endsOK(a+3) && (a+3 == r.n-1 || r.sep[a+3] != '.') && r.sameSep(a, a+3, '.') {
		ok := true
		for k := a; k <= a+3; k++ {
			if r.size(k) > 3 || atoi(v[r.g[k].s:r.g[k].e]) > 255 {
				ok = false
			}
		}
		if ok && s.add(r.g[a].s, r.g[a+3].e, detIPv4, 0) {
			return a + 3, true
		}
	}
	return 0, false
}

func atoi(b []byte) int {
	x := 0
	for _, c := range b {
		x = x*10 + int(c-'0')
	}
	return x
}

func cardWin(v []byte, r *numRun, a, b int) bool {
	d := r.digits(a, b)
	if d < 13 || d > 19 {
		return false
	}
	if a < b {
		c := r.sep[a]
		if (c != ' ' && c != '-') || !r.sameSep(a, b, c) {
			return false
		}
		ok := true
		for k := a; k < b; k++ {
			if r.size(k) != 4 {
				ok = false
			}
		}
		if !ok || r.size(b) > 4 {
			// Amex 4-6-5, Diners 4-6-4
			if !(b == a+2 && r.size(a) == 4 && r.size(a+1) == 6 && (r.size(b) == 5 || r.size(b) == 4)) {
				return false
			}
		}
	}
	// issuer prefix
	var p [4]int
	k, o := a, r.g[a].s
	for x := 0; x < 4; x++ {
		for o >= r.g[k].e {
			k++
			o = r.g[k].s
		}
		p[x] = int(v[o] - '0')
		o++
	}
	p2 := p[0]*10 + p[1]
	p4 := p2*100 + p[2]*10 + p[3]
	switch {
	case p[0] == 4: // Visa
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
	case p2 == 34 || p2 == 37: // Amex
	case p2 == 35 || p2 == 36 || p2 == 38 || p2 == 39 || (p2 == 30): // JCB, Diners
	case p4 == 6011 || p2 == 65 || (p4 >= 6440 && p4 <= 6499) || p2 == 62 || p2 == 60 || p2 == 64: // Discover, UnionPay, RuPay
	case p2 == 50 || (p2 >= 56 && p2 <= 58) || p2 == 63 || p2 == 67 || p2 == 22: // Maestro, Mir
	default:
		return false
	}
	return luhn(v, r, a, b)
}

func luhn(v []byte, r *numRun, a, b int) bool {
	sum, dbl := 0, false
	for k := b; k >= a; k-- {
		for o := r.g[k].e - 1; o >= r.g[k].s; o-- {
			d := int(v[o] - '0')
			if dbl {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			dbl = !dbl
		}
	}
	return sum%10 == 0
}

func ssnWin(v []byte, r *numRun, a int) bool {
	if r.size(a) != 3 || r.size(a+1) != 2 || r.size(a+2) != 4 {
		return false
	}
	c := r.sep[a]
	if (c != '-' && c != ' ') || r.sep[a+1] != c {
		return false
	}
	if a > 0 && (r.sep[a-1] == '-' || r.sep[a-1] == sepMixed) {
		return false // part of a longer dashed code
	}
	if a+3 < r.n && r.sep[a+2] == c {
		return false
	}
	return ssnValid(v[r.g[a].s:], v[r.g[a+1].s:], v[r.g[a+2].s:])
}

func ssnValid(area, grp, ser []byte) bool {
	ar := atoi(area[:3])
	if ar == 0 || ar == 666 || ar >= 900 {
		return false
	}
	if atoi(grp[:2]) == 0 || atoi(ser[:4]) == 0 {
		return false
	}
	return true
}

func ssnContext(v []byte, p int) bool {
	w := v[max(0, p-24):p]
	for i := range w {
		if hasPrefixFold(w[i:], "ssn") || hasPrefixFold(w[i:], "social security") || hasPrefixFold(w[i:], "social_security") {
			return true
		}
	}
	return false
}

// phoneWin tries E.164, NANP and 0-leading national numbers starting at
// group a. It returns the last group and the start offset of the match.
func phoneWin(v []byte, r *numRun, a int) (int, int, bool) {
	st := r.g[a].s
	if a == 0 && r.plus {
		if v[st] == '0' {
			return 0, 0, false
		}
		for b := r.n - 1; b >= a; b-- {
			d := r.digits(a, b)
			if d >= 8 && d <= 15 && r.endsOK(b) {
				ok := true
				for k := a; k < b; k++ {
					if r.sep[k] == sepMixed {
						ok = false
					}
				}
				if ok {
					return b, st - 1, true
				}
			}
		}
		return 0, 0, false
	}
	// international with the 00 prefix: 0044 20 7946 0958
	if a == 0 && r.size(0) >= 2 && v[st] == '0' && v[st+1] == '0' && r.size(0) <= 5 {
		for b := r.n - 1; b > a; b-- {
			d := r.digits(a, b) - 2
			if d >= 8 && d <= 15 && r.endsOK(b) && r.sameSep(a, b, r.sep[a]) && r.sep[a] != '.' {
				return b, st, true
			}
		}
	}
	// NANP, with an optional leading 1
	x := a
	lead := r.size(a) == 1 && v[st] == '1' && a+1 < r.n && r.sep[a] != '.' && r.sep[a] != sepMixed
	if lead {
		x = a + 1
	}
	if x+2 < r.n && r.size(x) == 3 && r.size(x+1) == 3 && r.size(x+2) == 4 && r.endsOK(x+2) &&
		v[r.g[x].s] >= '2' && (x+3 == r.n || r.sep[x+2] == ' ' || r.sep[x+2] == sepParen) {
		s1, s2 := r.sep[x], r.sep[x+1]
		parenArea := r.g[x].s > 0 && v[r.g[x].s-1] == '('
		okSep := s2 == '-' || s2 == '.' || s2 == ' '
		switch {
		case s1 == sepParen:
			okSep = okSep && (s2 == '-' || s2 == ' ') && parenArea
		case s1 == s2:
		case s1 == ' ' && s2 == '-':
		default:
			okSep = false
		}
		if okSep && !lead && !parenArea && a > 0 && (r.sep[a-1] == s1 || r.sep[a-1] == s2) {
			okSep = false // glued to the digits before it: part of a longer code
		}
		if okSep {
			if parenArea && !lead {
				st--
			}
			return x + 2, st, true
		}
	}
	// national numbers that start with a trunk 0
	if v[st] == '0' && v[st+1] != '0' && a == 0 && a+1 < r.n {
		c := r.sep[a]
		if c != ' ' && c != '-' {
			return 0, 0, false
		}
		for b := min(r.n-1, a+5); b > a; b-- {
			d := r.digits(a, b)
			if d < 10 || d > 11 || !r.endsOK(b) || !r.sameSep(a, b, c) {
				continue
			}
			ok := true
			for k := a; k <= b; k++ {
				if z := r.size(k); z < 2 || z > 6 {
					ok = false
				}
			}
			if ok && (b == r.n-1 || r.sep[b] != c) {
				return b, st, true
			}
		}
	}
	return 0, 0, false
}

// ibanLen is the IBAN length of a country, 0 if it has none.
func ibanLen(a, b byte) int {
	switch string([]byte{a, b}) {
	case "NO":
		return 15
	case "BE":
		return 16
	case "DK", "FI", "FO", "GL", "NL":
		return 18
	case "MK", "SI":
		return 19
	case "AT", "BA", "EE", "KZ", "LT", "LU", "XK":
		return 20
	case "CH", "CR", "HR", "LI", "LV":
		return 21
	case "BG", "BH", "DE", "GB", "GE", "IE", "ME", "RS":
		return 22
	case "AE", "GI", "IL", "IQ", "TL":
		return 23
	case "AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG":
		return 24
	case "PT", "ST":
		return 25
	case "IS", "TR":
		return 26
	case "FR", "GR", "IT", "MC", "MR", "SM":
		return 27
	case "AL", "AZ", "BY", "CY", "DO", "GT", "HU", "LB", "PL", "SV":
		return 28
	case "BR", "EG", "PS", "QA", "UA":
		return 29
	case "JO", "KW", "MU":
		return 30
	case "MT", "SC":
		return 31
	case "LC":
		return 32
	case "RU":
		return 33
	}
	return 0
}

func (s *scanner) iban(v []byte, st int) int {
	L := ibanLen(v[st], v[st+1])
	if L == 0 || st < s.last {
		return st + 2
	}
	var buf [34]byte
	cnt, p, n := 0, st, len(v)
	for p < n && cnt < L {
		c := v[p]
		if isUpper(c) || isDigit(c) {
			buf[cnt] = c
			cnt++
			p++
			continue
		}
		if c == ' ' && cnt%4 == 0 && p+1 < n && isAlnum(v[p+1]) {
			p++
			continue
		}
		break
	}
	if cnt != L || (p < n && isAlnum(v[p])) || !isDigit(buf[2]) || !isDigit(buf[3]) {
		return st + 2
	}
	rem := 0
	for k := 0; k < L; k++ {
		c := buf[(k+4)%L]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	if rem != 1 {
		return p // shaped like an IBAN: its digits are not read as a card or a phone
	}
	if s.add(st, p, detIBAN, 0) {
		return p
	}
	return st + 2
}

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// ipv6 at a ':'; returns the end of the match or i.
func (s *scanner) ipv6(v []byte, i int) int {
	st := i
	for st > s.last && i-st < 40 && (isHex(v[st-1]) || v[st-1] == ':') {
		st--
	}
	if st > 0 && (isWord(v[st-1]) || v[st-1] == '.') {
		return i
	}
	e := i
	for e < len(v) && e-st < 46 && (isHex(v[e]) || v[e] == ':' || v[e] == '.') {
		e++
	}
	for e > i && (v[e-1] == '.' || (v[e-1] == ':' && (e < 2 || v[e-2] != ':'))) {
		e--
	}
	if e < len(v) && isWord(v[e]) {
		return i
	}
	colons, hex := 0, false
	for _, c := range v[st:e] {
		if c == ':' {
			colons++
		} else if isHex(c) {
			hex = true
		}
	}
	if colons < 2 || !hex || (colons < 7 && !bytes.Contains(v[st:e], []byte("::"))) {
		return i
	}
	a, err := netip.ParseAddr(string(v[st:e]))
	if err != nil || !a.Is6() {
		return i
	}
	if s.add(st, e, detIPv6, 0) {
		return e
	}
	return i
}
