package mask

// Statement text: besides the detectors, literals bound to a column that a
// column rule masks are masked too, so a statement records what the result
// would have hidden:
//
//	WHERE ssn = '123456789'          col = / <> / != / LIKE / ILIKE literal
//	WHERE u.email IN ('a', 'b')      col IN (literals)
//	UPDATE users SET dob = '1990-01-01'
//	INSERT INTO users (email, password_hash) VALUES ('...', '...'), (...)
//
// The tokenizer is small and forgiving: it knows quoted identifiers, string
// literals (with '' and E'\” escapes), dollar quotes, numbers and comments;
// whatever it does not understand it skips.

type tokKind uint8

const (
	tkIdent tokKind = iota + 1
	tkQIdent
	tkString
	tkNumber
	tkOp
	tkPunct
)

type token struct {
	kind       tokKind
	start, end int // the whole token
	vs, ve     int // content: inside quotes for strings and quoted identifiers
}

const maxTokens = 4096 // statements longer than this are scanned by the detectors only

func sqlTokens(v []byte, toks []token) []token {
	n := len(v)
	for i := 0; i < n && len(toks) < maxTokens; {
		c := v[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && i+1 < n && v[i+1] == '-':
			for i < n && v[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && v[i+1] == '*':
			depth := 0
			for i < n {
				if v[i] == '/' && i+1 < n && v[i+1] == '*' {
					depth++
					i += 2
				} else if v[i] == '*' && i+1 < n && v[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		case c == '\'' || ((c == 'E' || c == 'e') && i+1 < n && v[i+1] == '\''):
			st := i
			esc := c != '\''
			if esc {
				i++
			}
			i++
			vs := i
			for i < n {
				if esc && v[i] == '\\' {
					i += 2
					continue
				}
				if v[i] == '\'' {
					if i+1 < n && v[i+1] == '\'' {
						i += 2
						continue
					}
					break
				}
				i++
			}
			ve := min(i, n)
			i = min(i+1, n)
			toks = append(toks, token{tkString, st, i, vs, ve})
		case c == '"':
			st := i
			i++
			vs := i
			for i < n && !(v[i] == '"' && (i+1 >= n || v[i+1] != '"')) {
				if v[i] == '"' {
					i++
				}
				i++
			}
			ve := min(i, n)
			i = min(i+1, n)
			toks = append(toks, token{tkQIdent, st, i, vs, ve})
		case c == '$' && i+1 < n && (v[i+1] == '$' || isAlpha(v[i+1]) || v[i+1] == '_'):
			// $tag$ ... $tag$
			j := i + 1
			for j < n && (isWord(v[j])) {
				j++
			}
			if j >= n || v[j] != '$' {
				i++
				continue
			}
			tag := v[i : j+1]
			k := j + 1
			end := -1
			for p := k; p+len(tag) <= n; p++ {
				if v[p] == '$' && string(v[p:p+len(tag)]) == string(tag) {
					end = p
					break
				}
			}
			if end < 0 {
				end = n
			}
			stop := min(end+len(tag), n)
			toks = append(toks, token{tkString, i, stop, k, end})
			i = stop
		case isAlpha(c) || c == '_' || c >= 0x80:
			st := i
			for i < n && (isWord(v[i]) || v[i] == '$' || v[i] >= 0x80) {
				i++
			}
			toks = append(toks, token{tkIdent, st, i, st, i})
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(v[i+1])):
			st := i
			for i < n && (isAlnum(v[i]) || v[i] == '.' || ((v[i] == '+' || v[i] == '-') && (v[i-1] == 'e' || v[i-1] == 'E'))) {
				i++
			}
			toks = append(toks, token{tkNumber, st, i, st, i})
		case c == '(' || c == ')' || c == ',' || c == '.' || c == ';' || c == '[' || c == ']':
			toks = append(toks, token{tkPunct, i, i + 1, i, i + 1})
			i++
		default:
			st := i
			for i < n && isOpChar(v[i]) {
				i++
			}
			if i == st {
				i++
			}
			toks = append(toks, token{tkOp, st, i, st, i})
		}
	}
	return toks
}

func isOpChar(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?', ':':
		return true
	}
	return false
}

func (t token) is(v []byte, kind tokKind, s string) bool {
	return t.kind == kind && t.end-t.start == len(s) && hasPrefixFold(v[t.start:t.end], s)
}

func (t token) text(v []byte) string { return string(v[t.vs:t.ve]) }

// sqlColumnMatches returns the literals of v bound to columns a rule masks,
// in order and without overlaps; match.rule is the rule's index + 1.
func (s *scanner) sqlColumnMatches(v []byte, out []match) []match {
	if len(s.m.columns) == 0 {
		return out
	}
	toks := sqlTokens(v, nil)
	ruleFor := func(table, name string) int {
		r := s.m.matchColumn(Column{Table: table, Name: name}, true)
		if r == nil || s.m.columnStrategy(r) == Off {
			return 0
		}
		for i := range s.m.columns {
			if &s.m.columns[i] == r {
				return i + 1
			}
		}
		return 0
	}
	lit := func(t token) bool { return t.kind == tkString || t.kind == tkNumber }
	addLit := func(t token, rule int) {
		if t.ve > t.vs && (len(out) == 0 || out[len(out)-1].end <= t.vs) {
			out = append(out, match{start: t.vs, end: t.ve, det: -1, rule: rule})
		}
	}
	// name reads a possibly qualified column reference ending at token i.
	name := func(i int) (table, col string, ok bool) {
		t := toks[i]
		if t.kind != tkIdent && t.kind != tkQIdent {
			return "", "", false
		}
		col = t.text(v)
		if i >= 2 && toks[i-1].is(v, tkPunct, ".") && (toks[i-2].kind == tkIdent || toks[i-2].kind == tkQIdent) {
			table = toks[i-2].text(v)
		}
		return table, col, true
	}
	for i := 0; i+2 < len(toks); i++ {
		// INSERT INTO t (cols) VALUES (...), (...)
		if toks[i].is(v, tkIdent, "insert") && toks[i+1].is(v, tkIdent, "into") {
			i = s.sqlInsert(v, toks, i+2, ruleFor, addLit)
			continue
		}
		table, col, ok := name(i)
		if !ok {
			continue
		}
		op := toks[i+1]
		isCmp := op.kind == tkOp && (op.is(v, tkOp, "=") || op.is(v, tkOp, "<>") || op.is(v, tkOp, "!=")) ||
			op.is(v, tkIdent, "like") || op.is(v, tkIdent, "ilike")
		if isCmp && lit(toks[i+2]) {
			if r := ruleFor(table, col); r > 0 {
				addLit(toks[i+2], r)
			}
			i += 2
			continue
		}
		if op.is(v, tkIdent, "in") && toks[i+2].is(v, tkPunct, "(") {
			r := ruleFor(table, col)
			j := i + 3
			for ; j < len(toks) && !toks[j].is(v, tkPunct, ")"); j++ {
				if r > 0 && lit(toks[j]) {
					addLit(toks[j], r)
				}
			}
			i = j
		}
	}
	return out
}

// sqlInsert handles "table (cols) VALUES (...), ..." from token i and
// returns the last token it read.
func (s *scanner) sqlInsert(v []byte, toks []token, i int, ruleFor func(string, string) int, addLit func(token, int)) int {
	table := ""
	if i < len(toks) && (toks[i].kind == tkIdent || toks[i].kind == tkQIdent) {
		table = toks[i].text(v)
		i++
		for i+1 < len(toks) && toks[i].is(v, tkPunct, ".") && (toks[i+1].kind == tkIdent || toks[i+1].kind == tkQIdent) {
			table = toks[i+1].text(v)
			i += 2
		}
	}
	if i < len(toks) && toks[i].is(v, tkIdent, "as") {
		i += 2
	}
	if i >= len(toks) || !toks[i].is(v, tkPunct, "(") {
		return i
	}
	var rules []int
	i++
	for ; i < len(toks) && !toks[i].is(v, tkPunct, ")"); i++ {
		if toks[i].kind == tkIdent || toks[i].kind == tkQIdent {
			rules = append(rules, ruleFor(table, toks[i].text(v)))
		}
	}
	i++
	if i >= len(toks) || !toks[i].is(v, tkIdent, "values") {
		return i
	}
	i++
	for i < len(toks) && toks[i].is(v, tkPunct, "(") {
		col, depth := 0, 0
		i++
		for ; i < len(toks); i++ {
			t := toks[i]
			if t.is(v, tkPunct, "(") {
				depth++
				continue
			}
			if t.is(v, tkPunct, ")") {
				if depth == 0 {
					break
				}
				depth--
				continue
			}
			if depth == 0 && t.is(v, tkPunct, ",") {
				col++
				continue
			}
			if (t.kind == tkString || t.kind == tkNumber) && col < len(rules) && rules[col] > 0 {
				addLit(t, rules[col])
			}
		}
		i++
		if i < len(toks) && toks[i].is(v, tkPunct, ",") {
			i++
		}
	}
	return i
}

// mergeColumnMatches puts the column-rule matches cm into s.matches; a
// detector match that overlaps one of them is dropped (the rule decides).
func (s *scanner) mergeColumnMatches(cm []match) {
	if len(cm) == 0 {
		return
	}
	out := make([]match, 0, len(s.matches)+len(cm))
	j := 0
	for _, d := range s.matches {
		for j < len(cm) && cm[j].end <= d.start {
			out = append(out, cm[j])
			j++
		}
		if j < len(cm) && cm[j].start < d.end {
			continue // overlaps the next column match
		}
		if len(out) > 0 && out[len(out)-1].end > d.start {
			continue // overlaps the previous column match
		}
		out = append(out, d)
	}
	out = append(out, cm[j:]...)
	s.matches = out
}
