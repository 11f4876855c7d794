package mask

// ParseCopyFormat reads the format options of a COPY ... TO STDOUT statement
// (both the WITH (FORMAT csv, DELIMITER ';', ...) and the older CSV /
// DELIMITER AS ';' spellings), for Plan.CopyData. binary is true for the
// binary format, which CopyData does not handle: the caller must not pass
// such data through unmasked. ok is false when sql is not a COPY statement.
func ParseCopyFormat(sql string) (f CopyFormat, binary, ok bool) {
	v := []byte(sql)
	toks := sqlTokens(v, nil)
	i := 0
	for i < len(toks) && !toks[i].is(v, tkIdent, "copy") {
		i++
	}
	if i >= len(toks) {
		return f, false, false
	}
	i++
	// the table (and its column list) or a parenthesised query
	skipParens := func(i int) int {
		depth := 0
		for ; i < len(toks); i++ {
			if toks[i].is(v, tkPunct, "(") {
				depth++
			} else if toks[i].is(v, tkPunct, ")") {
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	if i < len(toks) && toks[i].is(v, tkPunct, "(") {
		i = skipParens(i)
	} else {
		for i < len(toks) && (toks[i].kind == tkIdent || toks[i].kind == tkQIdent || toks[i].is(v, tkPunct, ".")) &&
			!toks[i].is(v, tkIdent, "to") && !toks[i].is(v, tkIdent, "from") {
			i++
		}
		if i < len(toks) && toks[i].is(v, tkPunct, "(") {
			i = skipParens(i)
		}
	}
	ok = true
	str := func(t token) (byte, string) {
		s := copyString(v, t)
		if len(s) == 0 {
			return 0, s
		}
		return s[0], s
	}
	for ; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tkIdent {
			continue
		}
		next := func() (token, bool) {
			j := i + 1
			if j < len(toks) && toks[j].is(v, tkIdent, "as") {
				j++
			}
			if j < len(toks) {
				i = j
				return toks[j], true
			}
			return token{}, false
		}
		switch {
		case t.is(v, tkIdent, "binary"):
			binary = true
		case t.is(v, tkIdent, "csv"):
			f.CSV = true
		case t.is(v, tkIdent, "format"):
			if n, ok := next(); ok {
				switch {
				case n.is(v, tkIdent, "csv") || (n.kind == tkString && hasPrefixFold(v[n.vs:n.ve], "csv") && n.ve-n.vs == 3):
					f.CSV = true
				case n.is(v, tkIdent, "binary") || (n.kind == tkString && hasPrefixFold(v[n.vs:n.ve], "binary") && n.ve-n.vs == 6):
					binary = true
				}
			}
		case t.is(v, tkIdent, "delimiter"):
			if n, ok := next(); ok && n.kind == tkString {
				f.Delimiter, _ = str(n)
			}
		case t.is(v, tkIdent, "quote"):
			if n, ok := next(); ok && n.kind == tkString {
				f.Quote, _ = str(n)
			}
		case t.is(v, tkIdent, "escape"):
			if n, ok := next(); ok && n.kind == tkString {
				f.Escape, _ = str(n)
			}
		case t.is(v, tkIdent, "null"):
			if n, ok := next(); ok && n.kind == tkString {
				_, f.Null = str(n)
				f.NullSet = true
			}
		}
	}
	return f, binary, ok
}

// copyString decodes a string literal token: ” doubling, and the common
// backslash escapes of E'...' strings.
func copyString(v []byte, t token) string {
	raw := v[t.vs:t.ve]
	e := v[t.start] == 'E' || v[t.start] == 'e'
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\'' && i+1 < len(raw) && raw[i+1] == '\'' {
			i++
		} else if e && c == '\\' && i+1 < len(raw) {
			i++
			switch raw[i] {
			case 't':
				c = '\t'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			default:
				c = raw[i]
			}
		}
		out = append(out, c)
	}
	return string(out)
}
