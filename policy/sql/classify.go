package sql

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Classify classifies every statement of text with PostgreSQL's parser,
// without a cache. A text the parser rejects is one statement of Kind
// Unknown with FlagUnknown; a text with no statement (empty, only
// comments) gives none.
func Classify(text string) []Statement {
	toks, ok := scan(text, nil)
	stmts, _ := classifyText(text, toks, ok)
	return stmts
}

// span is where one statement sits in the token list of its text.
type span struct{ from, to int } // tokens [from, to)

// result is a classification that can be reused for every text with the
// same key: statements without Text, and where each one sits in the tokens.
type result struct {
	stmts     []Statement
	spans     []span
	sens      []bool // this statement read a literal: its shape keeps literals
	sensitive bool   // some statement read a literal: key the cache by literals too
	cacheable bool
}

// classifyText parses text and classifies each statement. toks are the
// shape scanner's tokens when scanOK; then Text and Shape are derived from
// them, so a cached and an uncached classification agree exactly.
func classifyText(text string, toks []token, scanOK bool) ([]Statement, *result) {
	tree, err := parse(text)
	if err != nil {
		return []Statement{parseFailure(text, err)}, &result{}
	}
	res := &result{cacheable: scanOK}
	type raw struct{ begin, end int }
	raws := make([]raw, 0, len(tree.Stmts))
	for _, rs := range tree.Stmts {
		st, sens := classifyNode(rs.Stmt)
		res.sensitive = res.sensitive || sens
		res.sens = append(res.sens, sens)
		begin, end := int(rs.StmtLocation), len(text)
		if rs.StmtLen > 0 {
			end = begin + int(rs.StmtLen)
		}
		if begin < 0 || begin > end || end > len(text) {
			begin, end = 0, len(text)
			res.cacheable = false
		}
		raws = append(raws, raw{begin, end})
		var sp span
		if res.cacheable {
			var ok bool
			sp, ok = tokenSpan(toks, begin, end)
			res.spans = append(res.spans, sp)
			res.cacheable = ok
		}
		if st.Kind == "copy" && (st.Object == "from stdin" || st.Object == "to stdout") {
			hasWord := func(w string) bool { return strings.Contains(strings.ToLower(text[begin:end]), w) }
			if res.cacheable {
				hasWord = func(w string) bool { return spanHasWord(text, toks[sp.from:sp.to], w) }
			}
			fixCopyTarget(&st, hasWord)
		}
		res.stmts = append(res.stmts, st)
	}
	out := make([]Statement, len(res.stmts))
	if res.cacheable {
		for i := range res.stmts {
			setShape(&res.stmts[i], text, toks[res.spans[i].from:res.spans[i].to], res.sens[i])
			out[i] = instantiate(res.stmts[i], text, toks, res.spans[i])
		}
		return out, res
	}
	// The scanner could not follow this text: no cache, and each
	// statement's text and shape come from the raw bytes.
	for i, st := range res.stmts {
		st.Text = strings.TrimSpace(text[raws[i].begin:raws[i].end])
		st.Shape = hashShape("raw", st.Text)
		if st.Inner != nil {
			in := *st.Inner
			in.Text, in.Shape = st.Text, st.Shape
			st.Inner = &in
		}
		out[i] = st
	}
	return out, res
}

// fixCopyTarget tells COPY with an empty file name (a string literal with
// nothing in it, which the parse tree cannot tell from STDIN) from COPY ...
// FROM STDIN.
func fixCopyTarget(st *Statement, hasWord func(string) bool) {
	dir, word := "from", "stdin"
	if st.Object == "to stdout" {
		dir, word = "to", "stdout"
	}
	if hasWord(word) {
		return
	}
	st.Object = dir + " file"
	st.notes = sortNotes(append(slices.Clip(st.notes), note{flag: FlagServerIO, text: fmt.Sprintf("COPY %s a file on the database server's file system", strings.ToUpper(dir))}))
	if !st.Has(FlagServerIO) {
		st.Flags = append(slices.Clip(st.Flags), FlagServerIO)
		slices.Sort(st.Flags)
	}
}

func spanHasWord(text string, toks []token, w string) bool {
	for _, t := range toks {
		if t.class == tkWord && strings.EqualFold(text[t.start:t.end], w) {
			return true
		}
	}
	return false
}

// tokenSpan finds the tokens of the statement at text[begin:end], without a
// leading or trailing semicolon. It fails when a token straddles the
// boundary (the scanner and the parser disagree) or the span is empty.
func tokenSpan(toks []token, begin, end int) (span, bool) {
	from, _ := slices.BinarySearchFunc(toks, begin, func(t token, b int) int { return int(t.start) - b })
	if from > 0 && int(toks[from-1].end) > begin {
		return span{}, false
	}
	to := from
	for to < len(toks) && int(toks[to].start) < end {
		to++
	}
	if to > from && int(toks[to-1].end) > end {
		return span{}, false
	}
	for from < to && toks[from].class == tkSemi {
		from++
	}
	for to > from && toks[to-1].class == tkSemi {
		to--
	}
	if from >= to {
		return span{}, false
	}
	return span{from, to}, true
}

// setShape gives st (and its Inner) the fingerprint of its tokens.
func setShape(st *Statement, text string, toks []token, keepLiterals bool) {
	key := appendKey(nil, text, toks, keepLiterals)
	st.Shape = hashShape("v1", string(key))
	if st.Inner != nil {
		in := *st.Inner
		in.Shape = st.Shape
		st.Inner = &in
	}
}

func hashShape(prefix, s string) string {
	h := sha256.Sum256([]byte(prefix + "\x00" + s))
	return hex.EncodeToString(h[:16])
}

// instantiate gives a cached template the text it is applied to.
func instantiate(tmpl Statement, text string, toks []token, sp span) Statement {
	st := tmpl
	st.Text = text[toks[sp.from].start:toks[sp.to-1].end]
	if st.Inner != nil {
		in := *st.Inner
		in.Text = st.Text
		st.Inner = &in
	}
	return st
}

func parseFailure(text string, err error) Statement {
	msg := err.Error()
	t := strings.TrimSpace(text)
	return Statement{
		Text:  t,
		Kind:  Unknown,
		Flags: []Flag{FlagUnknown},
		Kinds: []Kind{Unknown},
		Shape: hashShape("raw", t),
		notes: []note{{flag: FlagUnknown, text: "the PostgreSQL parser rejected it: " + msg}},
	}
}

// classifyNode classifies one statement node. It reports whether the
// classification read the value of a literal.
func classifyNode(n *pg.Node) (Statement, bool) {
	w := newWalker()
	var kind Kind
	var obj string
	if m := stmtMessage(n); m != nil {
		kind, obj = w.stmt(m)
	} else {
		w.unknownf("an empty statement node")
		kind = Unknown
	}
	return w.result(kind, obj), w.sensitive
}

func stmtMessage(n *pg.Node) protoreflect.Message {
	if n == nil {
		return nil
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil || fd.Kind() != protoreflect.MessageKind {
		return nil
	}
	return m.Get(fd).Message()
}

func (w *walker) result(kind Kind, obj string) Statement {
	if len(w.unknown) > 0 {
		kind = Unknown
		w.flags[FlagUnknown] = true
	}
	st := Statement{Kind: kind, Object: obj, Inner: w.inner, Name: w.name}
	st.Reads = sorted(w.reads)
	st.Writes = sorted(w.writes)
	st.Functions = sorted(w.funcs)
	for _, f := range Flags() {
		if w.flags[f] {
			st.Flags = append(st.Flags, f)
		}
	}
	slices.Sort(st.Flags)
	st.Kinds = []Kind{kind}
	for _, k := range w.dml {
		if !slices.Contains(st.Kinds, k) {
			st.Kinds = append(st.Kinds, k)
		}
	}
	st.notes = sortNotes(w.notes)
	return st
}

// sortNotes orders notes by flag, keeping each flag's notes in the order
// the walker met them, so that equal classifications compare equal.
func sortNotes(ns []note) []note {
	slices.SortStableFunc(ns, func(a, b note) int { return strings.Compare(string(a.flag), string(b.flag)) })
	return ns
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Clip(s)
}

// genericWhy is the reason for a flag that carries no recorded one.
func genericWhy(f Flag, s Statement) string {
	switch f {
	case FlagNoWhere:
		return "an UPDATE or DELETE has no WHERE clause"
	case FlagServerIO:
		return "reaches the database server's files, programs or network"
	case FlagPrivilege:
		return "changes roles or privileges"
	case FlagSetConfig:
		return "calls set_config"
	case FlagUnknown:
		return "guardrun could not classify this statement"
	case FlagDDL:
		return fmt.Sprintf("changes the schema (%s)", headline(s))
	case FlagWrite:
		if len(s.Writes) > 0 {
			return "writes " + strings.Join(s.Writes, ", ")
		}
		return "changes data"
	case FlagProcedural:
		return "runs procedural code"
	case FlagAlterSys:
		return "ALTER SYSTEM changes the server's configuration"
	case FlagDropDB:
		return "drops a database"
	case FlagCopyFrom:
		return "COPY FROM loads rows"
	case FlagDynamicSQL:
		return "runs SQL given as a string"
	}
	return string(f)
}
