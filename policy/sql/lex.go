package sql

import (
	"strings"
	"unicode/utf8"
)

// This file is the shape scanner: a small, conservative PostgreSQL lexer
// that turns a text into the cache key its classification is stored under.
//
// The key is the text with comments and whitespace collapsed, ASCII letters
// folded outside quotes, and each literal replaced by a placeholder of the
// same lexical class (int32 integer, other numeric, string, bit string, hex
// string). Two texts with the same key therefore lex into the same
// PostgreSQL token sequence up to the values of their literals, so they
// parse into the same tree up to constants; the walker marks the few
// classifications that read a constant (EXPLAIN option values, set_config's
// parameter name) as literal-sensitive, and those are cached under a key
// that keeps the literals.
//
// Whenever the scanner meets something whose lexing it is not sure of
// (Unicode escapes, adjacent string literals, numeric junk, control bytes,
// an unterminated quote or comment), it gives up and the caller parses the
// text without the cache. Giving up is always safe; a wrong key is not.

// Token classes.
const (
	tkWord   = iota // keyword or unquoted identifier (folded)
	tkQIdent        // "quoted identifier" (verbatim)
	tkOp            // operator characters and punctuation (verbatim)
	tkParam         // $1 (verbatim)
	tkInt           // integer literal that fits in int32
	tkNum           // any other numeric literal
	tkStr           // string literal: '...', E'...', $$...$$
	tkBit           // B'...'
	tkHex           // X'...'
	tkNStr          // N'...'
	tkSemi          // ;
)

type token struct {
	start, end int32 // byte range in the text
	class      uint8
}

// placeholder is what a literal of each class becomes in the key.
var placeholders = [...]string{tkInt: "0", tkNum: "0.0", tkStr: "''", tkBit: "b''", tkHex: "x''", tkNStr: "n''"}

func isLiteral(c uint8) bool {
	return c == tkInt || c == tkNum || c == tkStr || c == tkBit || c == tkHex || c == tkNStr
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isOpChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}

// scan tokenizes text. It returns ok=false when it is not sure it lexes the
// text as PostgreSQL would; then nothing it returned may be used.
func scan(text string, toks []token) ([]token, bool) {
	n := len(text)
	if n > 1<<30 || !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
		// Invalid UTF-8 fails to parse (the tree holds protobuf strings)
		// and the parser stops at a NUL byte, whatever the shape: such
		// texts have no business in the cache.
		return toks, false
	}
	i := 0
	prevStr := false // the previous token was a string literal
	for i < n {
		c := text[i]
		switch {
		case isSpace(c):
			i++
			continue
		case c == '-' && i+1 < n && text[i+1] == '-':
			for i < n && text[i] != '\n' && text[i] != '\r' {
				i++
			}
			continue
		case c == '/' && i+1 < n && text[i+1] == '*':
			depth := 0
			for {
				if i+1 >= n {
					return toks, false // unterminated comment
				}
				if text[i] == '/' && text[i+1] == '*' {
					depth++
					i += 2
				} else if text[i] == '*' && text[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			continue
		}
		start := i
		var class uint8
		switch {
		case c == ';':
			class = tkSemi
			i++
		case c == '\'':
			j, ok := skipQuoted(text, i, '\'', false)
			if !ok {
				return toks, false
			}
			class, i = tkStr, j
		case c == '"':
			j, ok := skipQuoted(text, i, '"', false)
			if !ok {
				return toks, false
			}
			class, i = tkQIdent, j
		case (c == 'e' || c == 'E') && i+1 < n && text[i+1] == '\'':
			j, ok := skipQuoted(text, i+1, '\'', true)
			if !ok {
				return toks, false
			}
			class, i = tkStr, j
		case (c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && i+1 < n && text[i+1] == '\'':
			j, ok := skipQuoted(text, i+1, '\'', false)
			if !ok {
				return toks, false
			}
			switch c {
			case 'b', 'B':
				class = tkBit
			case 'x', 'X':
				class = tkHex
			default:
				class = tkNStr
			}
			i = j
		case (c == 'u' || c == 'U') && i+1 < n && text[i+1] == '&':
			return toks, false // Unicode escapes: the value (even of an identifier) depends on UESCAPE
		case isIdentStart(c):
			for i < n && isIdentCont(text[i]) {
				i++
			}
			class = tkWord
			if i-start == 5 && strings.EqualFold(text[start:i], "float") {
				// float(p): the grammar checks p's value and picks float4 or
				// float8 or fails by it; keep such texts out of the cache.
				j := i
				for j < n && isSpace(text[j]) {
					j++
				}
				if j < n && text[j] == '(' {
					return toks, false
				}
			}
		case c == '$':
			if i+1 < n && isDigit(text[i+1]) {
				i++
				for i < n && isDigit(text[i]) {
					i++
				}
				if i < n && (isIdentCont(text[i]) || text[i] == '.') {
					return toks, false
				}
				class = tkParam
				break
			}
			// Dollar quote: $tag$ ... $tag$.
			j := i + 1
			for j < n && text[j] != '$' {
				if !(isIdentStart(text[j]) || j > i+1 && isDigit(text[j])) {
					return toks, false
				}
				j++
			}
			if j >= n {
				return toks, false
			}
			tag := text[i : j+1]
			end := indexFrom(text, j+1, tag)
			if end < 0 {
				return toks, false
			}
			class, i = tkStr, end+len(tag)
		case isDigit(c) || c == '.' && i+1 < n && isDigit(text[i+1]):
			j, cl, ok := scanNumber(text, i)
			if !ok {
				return toks, false
			}
			class, i = cl, j
		case isOpChar(c):
			for i < n && isOpChar(text[i]) {
				if (text[i] == '-' && i+1 < n && text[i+1] == '-') || (text[i] == '/' && i+1 < n && text[i+1] == '*') {
					break
				}
				i++
			}
			class = tkOp
		case c == ':' || c == '.':
			// "::", ":=" and ".." are single tokens to PostgreSQL.
			i++
			if i < n && (text[i] == c || c == ':' && text[i] == '=') {
				i++
			}
			class = tkOp
		case c == '(' || c == ')' || c == ',' || c == '[' || c == ']':
			i++
			class = tkOp
		default:
			return toks, false // backslash, control bytes, anything unexpected
		}
		isStr := class == tkStr || class == tkBit || class == tkHex || class == tkNStr
		if isStr && prevStr {
			// 'a' 'b' separated by a newline is one literal, on one line a
			// syntax error: the key cannot tell, so do not guess.
			return toks, false
		}
		prevStr = isStr
		toks = append(toks, token{start: int32(start), end: int32(i), class: class})
	}
	return toks, true
}

// skipQuoted returns the index after the closing quote that matches the one
// at text[i]. A doubled quote is an escaped quote; with backslash (E'...'),
// a backslash escapes the next byte.
func skipQuoted(text string, i int, q byte, backslash bool) (int, bool) {
	n := len(text)
	i++
	for i < n {
		c := text[i]
		switch {
		case backslash && c == '\\':
			i += 2
		case c == q:
			if i+1 < n && text[i+1] == q {
				i += 2
				continue
			}
			return i + 1, true
		default:
			i++
		}
	}
	return 0, false
}

func indexFrom(s string, from int, sub string) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i] == sub[0] && s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// scanNumber reads a numeric literal at text[i] and says whether it is an
// integer PostgreSQL lexes as ICONST (fits in int32) or anything else.
// Forms it is not sure about (underscores, 0x/0o/0b, trailing junk) fail.
func scanNumber(text string, i int) (int, uint8, bool) {
	n := len(text)
	start := i
	integer := true
	for i < n && isDigit(text[i]) {
		i++
	}
	if i < n && text[i] == '.' {
		if i+1 < n && text[i+1] == '.' {
			return 0, 0, false // 1..2
		}
		integer = false
		i++
		for i < n && isDigit(text[i]) {
			i++
		}
	}
	if i < n && (text[i] == 'e' || text[i] == 'E') {
		j := i + 1
		if j < n && (text[j] == '+' || text[j] == '-') {
			j++
		}
		if j >= n || !isDigit(text[j]) {
			return 0, 0, false
		}
		for j < n && isDigit(text[j]) {
			j++
		}
		integer = false
		i = j
	}
	if i < n && (isIdentCont(text[i]) || text[i] == '.') {
		return 0, 0, false // 0x1f, 1_000, 123abc, 1.2.3: not worth the risk
	}
	if integer {
		// PostgreSQL lexes an integer that does not fit in int32 as a float.
		digits := text[start:i]
		for len(digits) > 1 && digits[0] == '0' {
			digits = digits[1:]
		}
		if len(digits) < 10 || len(digits) == 10 && digits <= "2147483647" {
			return i, tkInt, true
		}
	}
	return i, tkNum, true
}

// appendKey appends the key form of toks to dst: tokens separated by single
// spaces, literals as placeholders unless keepLiterals. A key that keeps
// literals starts with a byte no scanned text contains, so the two kinds of
// key never meet.
func appendKey(dst []byte, text string, toks []token, keepLiterals bool) []byte {
	if keepLiterals {
		dst = append(dst, 1)
	}
	for k, t := range toks {
		if k > 0 {
			dst = append(dst, ' ')
		}
		switch {
		case isLiteral(t.class) && !keepLiterals:
			dst = append(dst, placeholders[t.class]...)
		case t.class == tkWord:
			for _, c := range []byte(text[t.start:t.end]) {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst = append(dst, c)
			}
		case t.class == tkStr || t.class == tkBit || t.class == tkHex || t.class == tkNStr:
			// Kept literal: fold the prefix letter only.
			s := text[t.start:t.end]
			if s[0] != '\'' && s[0] != '$' {
				c := s[0]
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst = append(dst, c)
				s = s[1:]
			}
			dst = append(dst, s...)
		default:
			dst = append(dst, text[t.start:t.end]...)
		}
	}
	return dst
}
