package mask

// COPY TO STDOUT in text and CSV formats. Each field is masked on its own so
// the row keeps its column structure; a field is decoded (backslash escapes,
// CSV quotes) before it is scanned and encoded again only when it changed.
// The binary COPY format is not handled here.

// CopyFormat describes a COPY's text or CSV options. The zero value is the
// text format with PostgreSQL's defaults.
type CopyFormat struct {
	CSV       bool
	Delimiter byte   // 0: tab (text) or ',' (CSV)
	Quote     byte   // CSV only; 0: '"'
	Escape    byte   // CSV only; 0: same as Quote
	Null      string // how NULL is written; "" means the default (\N for text, empty for CSV)
	NullSet   bool   // Null is explicit even when empty (NULL '' in the text format)
}

func (f CopyFormat) norm() CopyFormat {
	if f.Delimiter == 0 {
		f.Delimiter = '\t'
		if f.CSV {
			f.Delimiter = ','
		}
	}
	if f.Quote == 0 {
		f.Quote = '"'
	}
	if f.Escape == 0 {
		f.Escape = f.Quote
	}
	if f.Null == "" && !f.CSV && !f.NullSet {
		f.Null = `\N`
	}
	return f
}

// CopyData masks one CopyData message of a COPY TO STDOUT (one or more whole
// rows) and returns the bytes to send: data itself when nothing was masked,
// else a slice of the Plan's scratch buffer, valid until the next call.
// Field i follows column i of the Plan (columns beyond it are scanned).
func (p *Plan) CopyData(data []byte, f CopyFormat) []byte {
	if p.m.disabled || (!p.m.anyScan && len(p.colKeys) == 0) {
		return data
	}
	f = f.norm()
	p.buf = p.buf[:0]
	out := p.copyBuf[:0]
	changed := false
	i, flushed := 0, 0
	for i < len(data) {
		field := 0
		for {
			fs := i
			var fe, next int
			quoted := false
			if f.CSV && i < len(data) && data[i] == f.Quote {
				quoted = true
				fe, next = csvQuotedEnd(data, i+1, f)
			} else {
				fe = i
				for fe < len(data) && data[fe] != f.Delimiter && data[fe] != '\n' && data[fe] != '\r' {
					if !f.CSV && data[fe] == '\\' && fe+1 < len(data) {
						fe++
					}
					fe++
				}
				next = fe
			}
			c := &p.extra
			if field < len(p.cols) {
				c = &p.cols[field]
			}
			if c.act != aSkip {
				if rep, ok := p.copyField(c, data[fs:fe], quoted, f); ok {
					out = append(out, data[flushed:fs]...)
					out = append(out, rep...)
					flushed = fe
					changed = true
				}
			}
			field++
			i = next
			if i < len(data) && data[i] == f.Delimiter {
				i++
				continue
			}
			break
		}
		// end of row: \n or \r\n, or the end of data
		for i < len(data) && data[i] != '\n' {
			i++
		}
		if i < len(data) {
			i++
		}
	}
	if !changed {
		return data
	}
	out = append(out, data[flushed:]...)
	p.copyBuf = out
	return out
}

// csvQuotedEnd returns the offset just past the closing quote of a quoted
// field whose content starts at i, as (fieldEnd, next).
func csvQuotedEnd(data []byte, i int, f CopyFormat) (int, int) {
	for i < len(data) {
		c := data[i]
		if c == f.Escape && f.Escape != f.Quote && i+1 < len(data) {
			i += 2
			continue
		}
		if c == f.Quote {
			if f.Escape == f.Quote && i+1 < len(data) && data[i+1] == f.Quote {
				i += 2
				continue
			}
			return i + 1, i + 1
		}
		i++
	}
	return len(data), len(data)
}

// copyField returns the field's replacement, and false when it is unchanged.
func (p *Plan) copyField(c *colPlan, raw []byte, quoted bool, f CopyFormat) ([]byte, bool) {
	if !quoted && string(raw) == f.Null {
		return nil, false
	}
	val := raw
	decoded := false
	switch {
	case quoted:
		val = csvUnquote(p.unesc[:0], raw, f)
		p.unesc = val[:0]
		decoded = true
	case !f.CSV && indexByte(raw, '\\') >= 0:
		val = textUnescape(p.unesc[:0], raw)
		p.unesc = val[:0]
		decoded = true
	}
	cc := *c
	if cc.act == aScanNull {
		cc.act = aScan
	}
	if cc.kind == kJSONB {
		cc.kind = kJSON
	}
	if cc.kind == kNullOnly && cc.act == aWhole {
		cc.kind = kText
	}
	before := len(p.buf)
	rep := p.value(&cc, val, true)
	if rep == nil {
		return []byte(f.Null), true
	}
	if len(p.buf) == before && !decoded {
		return nil, false // unchanged, not rewritten
	}
	if len(p.buf) == before {
		return nil, false
	}
	st := len(p.buf)
	if f.CSV {
		p.buf = csvQuote(p.buf, rep, f, quoted)
	} else {
		p.buf = textEscape(p.buf, rep, f.Delimiter)
	}
	return p.buf[st:], true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func csvUnquote(dst, raw []byte, f CopyFormat) []byte {
	if len(raw) >= 2 {
		raw = raw[1 : len(raw)-1]
	} else {
		return dst
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == f.Escape && i+1 < len(raw) && (f.Escape != f.Quote || raw[i+1] == f.Quote) {
			i++
			c = raw[i]
		}
		dst = append(dst, c)
	}
	return dst
}

func csvQuote(dst, v []byte, f CopyFormat, force bool) []byte {
	need := force
	for _, c := range v {
		if c == f.Delimiter || c == f.Quote || c == '\n' || c == '\r' || c == f.Escape {
			need = true
		}
	}
	if !need {
		return append(dst, v...)
	}
	dst = append(dst, f.Quote)
	for _, c := range v {
		if c == f.Quote || c == f.Escape {
			dst = append(dst, f.Escape)
		}
		dst = append(dst, c)
	}
	return append(dst, f.Quote)
}

func textUnescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			continue
		}
		i++
		switch e := raw[i]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'v':
			dst = append(dst, '\v')
		case 'x':
			x, k := 0, 0
			for k < 2 && i+1 < len(raw) && isHex(raw[i+1]) {
				i++
				x = x*16 + hexVal(raw[i])
				k++
			}
			if k == 0 {
				dst = append(dst, 'x')
			} else {
				dst = append(dst, byte(x))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			x, k := int(e-'0'), 1
			for k < 3 && i+1 < len(raw) && raw[i+1] >= '0' && raw[i+1] <= '7' {
				i++
				x = x*8 + int(raw[i]-'0')
				k++
			}
			dst = append(dst, byte(x))
		default:
			dst = append(dst, e)
		}
	}
	return dst
}

func hexVal(c byte) int {
	switch {
	case isDigit(c):
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

func textEscape(dst, v []byte, delim byte) []byte {
	for _, c := range v {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\v':
			dst = append(dst, '\\', 'v')
		default:
			if c == delim {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
		}
	}
	return dst
}

// CopyLine masks one or more whole COPY rows with no column names known
// (every field is scanned). It returns line itself when nothing was masked.
// Unlike Plan.CopyData it allocates its result; use a Plan on the hot path.
func (m *Masker) CopyLine(line []byte, f CopyFormat) []byte {
	p := m.Plan(nil)
	out := p.CopyData(line, f)
	if len(out) > 0 && &out[0] != &line[0] {
		return append([]byte(nil), out...)
	}
	return out
}
