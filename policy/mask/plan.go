package mask

import "strings"

// Column describes one result column. Schema and Table may be empty when
// unknown (an expression, or a table the proxy did not resolve).
type Column struct {
	Schema, Table, Name string
	TypeOID             uint32
	Binary              bool // values are in the binary format
}

type action uint8

const (
	aSkip     action = iota // never scanned
	aScan                   // scanned, rewritten in place
	aScanNull               // scanned; any hit makes the value NULL (binary, unknown layout)
	aWhole                  // masked whole by a column rule
	aIP                     // inet/cidr with IP detectors on: NULL
)

type valueKind uint8

const (
	kText      valueKind = iota // the bytes are the text
	kJSON                       // JSON text: replacements outside strings are quoted
	kJSONB                      // binary jsonb: version byte then JSON text
	kNullOnly                   // a placeholder would not decode: NULL
	kTypedText                  // text format of a type whose syntax is unknown
)

type colPlan struct {
	act   action
	kind  valueKind
	strat Strategy
	label string
	det   int // detector of a column rule's label, -1 if none
	key   int // index in Plan.colCounts
}

// Plan masks the rows of one result set. It is made once per result set by
// Masker.Plan and is not safe for concurrent use: one goroutine (the
// connection's server-to-client side) applies it row by row.
//
// Buffer ownership: Row and Value may replace values with slices of a
// scratch buffer owned by the Plan; they stay valid until the next Row,
// Reset or CopyData on the same Plan, so the caller encodes the row before
// that. CopyData's result is valid until the next CopyData. Input slices
// are never written to.
type Plan struct {
	m         *Masker
	cols      []colPlan
	extra     colPlan // columns beyond the plan (fail closed: scanned)
	sc        scanner
	buf       []byte
	copyBuf   []byte
	unesc     []byte
	detCounts []int
	colKeys   []string
	colCounts []int
}

// Known type OIDs (pg_type.dat).
func typeClass(oid uint32) (scan bool, textLike bool, kind valueKind) {
	switch oid {
	case 25, 1043, 1042, 19, 18, 705, 0, 3614, 1009, 1015, 1014, 1003:
		// text, varchar, bpchar, name, char, unknown, tsvector, text-ish arrays
		return true, true, kText
	case 114, 199, 3807:
		return true, true, kJSON
	case 3802:
		return true, true, kJSON
	case 142:
		return true, true, kNullOnly
	case 16, 17, 20, 21, 23, 24, 26, 27, 28, 29, 700, 701, 790, 1700, 1082, 1083, 1114, 1184, 1186, 1266,
		2950, 1560, 1562, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 5069, 3220,
		600, 601, 602, 603, 604, 628, 718, 829, 774, 3904, 3906, 3908, 3910, 3912, 3926,
		1000, 1001, 1005, 1007, 1016, 1021, 1022, 1231, 1182, 1115, 1185, 2951, 1183, 1270, 1187:
		return false, false, kNullOnly
	case 869, 650, 1041, 651:
		return false, false, kNullOnly
	}
	return true, false, kTypedText
}

// rawBinary: the binary format of these types is the text itself (jsonb
// after its version byte). Any other binary value has a layout of its own
// (arrays, tsvector, ...) that an in-place rewrite would corrupt.
func rawBinary(oid uint32) bool {
	switch oid {
	case 25, 1043, 1042, 19, 18, 705, 114, 142, 3802:
		return true
	}
	return false
}

func isInet(oid uint32) bool { return oid == 869 || oid == 650 || oid == 1041 || oid == 651 }

// Plan decides, once per result set, how each column is treated.
func (m *Masker) Plan(cols []Column) *Plan {
	p := &Plan{m: m}
	p.sc.m = m
	p.sc.en = m.enabled()
	p.detCounts = make([]int, len(m.names))
	p.cols = make([]colPlan, len(cols))
	p.extra = colPlan{act: aScan, kind: kText, det: -1}
	if m.disabled {
		for i := range p.cols {
			p.cols[i].act = aSkip
		}
		p.extra.act = aSkip
		return p
	}
	if !m.anyScan {
		p.extra.act = aSkip
	}
	for i, c := range cols {
		p.cols[i] = m.planColumn(c, p)
	}
	return p
}

func (m *Masker) planColumn(c Column, p *Plan) colPlan {
	scan, textLike, kind := typeClass(c.TypeOID)
	if kind == kJSON && c.TypeOID == 3802 && c.Binary {
		kind = kJSONB
	}
	cp := colPlan{det: -1}
	opaque := c.Binary && !rawBinary(c.TypeOID) // a binary layout we cannot rewrite
	if r := m.matchColumn(c, textLike || !isScalar(c.TypeOID)); r != nil {
		st := m.columnStrategy(r)
		if st == Off {
			cp.act = aSkip
			return cp
		}
		cp.act, cp.strat, cp.label, cp.det = aWhole, st, r.label, r.det
		cp.kind = kind
		if opaque || (!textLike && kind != kTypedText) {
			cp.kind = kNullOnly
		}
		cp.key = len(p.colKeys)
		p.colKeys = append(p.colKeys, "column:"+qualified(c))
		p.colCounts = append(p.colCounts, 0)
		return cp
	}
	if isInet(c.TypeOID) && (m.strat[detIPv4] != Off || m.strat[detIPv6] != Off) {
		cp.act = aIP
		return cp
	}
	if !scan || !m.anyScan {
		cp.act = aSkip
		return cp
	}
	cp.act, cp.kind = aScan, kind
	if opaque || kind == kNullOnly {
		cp.act = aScanNull
	}
	if kind == kTypedText {
		cp.kind = kText
	}
	return cp
}

func isScalar(oid uint32) bool {
	scan, _, kind := typeClass(oid)
	return !scan && kind == kNullOnly && oid != 17
}

func qualified(c Column) string {
	if c.Table != "" {
		return c.Table + "." + c.Name
	}
	return c.Name
}

func (m *Masker) matchColumn(c Column, textish bool) *compiledRule {
	name := strings.ToLower(c.Name)
	table := strings.ToLower(c.Table)
	schema := strings.ToLower(c.Schema)
	for i := range m.columns {
		r := &m.columns[i]
		if r.TextOnly && !textish {
			continue
		}
		ps := r.parts
		if !glob(ps[len(ps)-1], name) {
			continue
		}
		if len(ps) >= 2 && table != "" && !glob(ps[len(ps)-2], table) {
			continue
		}
		if len(ps) >= 3 && schema != "" && table != "" && !glob(ps[len(ps)-3], schema) {
			continue
		}
		return r
	}
	return nil
}

// glob matches * and ? (no character classes), both sides lower-case.
func glob(pat, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextPx >= 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// Row masks one DataRow in place: values[i] may be replaced by a slice of
// the Plan's scratch buffer, or by nil (SQL NULL). Values beyond the planned
// columns are scanned as text.
func (p *Plan) Row(values [][]byte) {
	p.buf = p.buf[:0]
	for i, v := range values {
		if v == nil {
			continue
		}
		c := &p.extra
		if i < len(p.cols) {
			c = &p.cols[i]
		}
		if c.act == aSkip {
			continue
		}
		values[i] = p.value(c, v, false)
	}
}

// Value masks value i of a row and returns what the client gets (nil = SQL
// NULL), following the same ownership rules as Row. It does not reset the
// scratch buffer: call Row for whole rows, or Reset between rows.
func (p *Plan) Value(i int, v []byte) []byte {
	if v == nil {
		return nil
	}
	c := &p.extra
	if i < len(p.cols) {
		c = &p.cols[i]
	}
	if c.act == aSkip {
		return v
	}
	return p.value(c, v, false)
}

// Reset releases the slices returned since the last Row or Reset.
func (p *Plan) Reset() { p.buf = p.buf[:0] }

func (p *Plan) value(c *colPlan, v []byte, copyText bool) []byte {
	switch c.act {
	case aWhole:
		p.colCounts[c.key]++
		if c.strat == Null || c.kind == kNullOnly {
			return nil
		}
		st := len(p.buf)
		switch c.kind {
		case kJSON:
			p.buf = append(p.buf, '"')
			p.buf = p.sc.render(p.buf, v, c.det, c.label, 0, c.strat)
			p.buf = append(p.buf, '"')
		case kJSONB:
			p.buf = append(p.buf, 1, '"')
			p.buf = p.sc.render(p.buf, v, c.det, c.label, 0, c.strat)
			p.buf = append(p.buf, '"')
		default:
			p.buf = p.sc.render(p.buf, v, c.det, c.label, 0, c.strat)
		}
		return p.buf[st:len(p.buf):len(p.buf)]
	case aIP:
		if copyText {
			p.detCounts[detIPv4]++
			return nil
		}
		p.detCounts[detIPv4]++
		return nil
	case aScan, aScanNull:
		body, prefix := v, 0
		if c.kind == kJSONB && len(v) > 0 {
			body, prefix = v[1:], 1
		}
		p.sc.scan(body)
		if len(p.sc.matches) == 0 {
			return v
		}
		if c.act == aScanNull {
			for _, mt := range p.sc.matches {
				p.detCounts[mt.det]++
			}
			return nil
		}
		st := len(p.buf)
		p.buf = append(p.buf, v[:prefix]...)
		var null bool
		p.buf, null = p.sc.rewrite(p.buf, body, c.kind == kJSON || c.kind == kJSONB, false, p.detCounts)
		if null {
			p.buf = p.buf[:st]
			return nil
		}
		return p.buf[st:len(p.buf):len(p.buf)]
	}
	return v
}

// Counts returns what this Plan masked so far, per detector and per column
// rule ("column:users.password"); nil when nothing.
func (p *Plan) Counts() Counts {
	var c Counts
	for d, n := range p.detCounts {
		if n > 0 {
			if c == nil {
				c = Counts{}
			}
			c[p.m.names[d]] += n
		}
	}
	for k, n := range p.colCounts {
		if n > 0 {
			if c == nil {
				c = Counts{}
			}
			c[p.colKeys[k]] += n
		}
	}
	return c
}

// Text masks free text: statement text before it is recorded or shown,
// error and notice messages and details, NOTIFY payloads. Besides the
// detectors, SQL literals compared with or inserted into a column that a
// column rule masks are masked (see sqltext.go), counted as
// "column:<label>". The Null strategy behaves like Redact here.
func (m *Masker) Text(s string) (string, Counts) {
	if m.disabled || s == "" {
		return s, nil
	}
	sc := scanner{m: m, en: m.enabled()}
	v := []byte(s)
	sc.scan(v)
	sc.mergeColumnMatches(sc.sqlColumnMatches(v, nil))
	if len(sc.matches) == 0 {
		return s, nil
	}
	counts := make([]int, len(m.names))
	var c Counts
	for _, mt := range sc.matches {
		if mt.rule > 0 {
			if c == nil {
				c = Counts{}
			}
			c["column:"+m.columns[mt.rule-1].label]++
		}
	}
	out, _ := sc.rewrite(make([]byte, 0, len(v)+16), v, false, true, counts)
	for d, n := range counts {
		if n > 0 {
			if c == nil {
				c = Counts{}
			}
			c[m.names[d]] += n
		}
	}
	return string(out), c
}
