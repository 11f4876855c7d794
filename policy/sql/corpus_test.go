package sql

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type wantStmt struct {
	Kind      Kind      `yaml:"kind"`
	Object    string    `yaml:"object"`
	Reads     []string  `yaml:"reads"`
	Writes    []string  `yaml:"writes"`
	Functions []string  `yaml:"functions"`
	Flags     []Flag    `yaml:"flags"`
	Name      string    `yaml:"name"`
	Kinds     []Kind    `yaml:"kinds"`
	Text      *string   `yaml:"text"`
	Inner     *wantStmt `yaml:"inner"`
}

type corpusEntry struct {
	SQL      string `yaml:"sql"`
	wantStmt `yaml:",inline"`
	Stmts    *[]wantStmt `yaml:"stmts"`
	line     int
}

func loadCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	data, err := os.ReadFile("testdata/corpus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var out []corpusEntry
	for _, n := range doc.Content[0].Content {
		var e corpusEntry
		if err := n.Decode(&e); err != nil {
			t.Fatalf("corpus.yaml:%d: %v", n.Line, err)
		}
		e.line = n.Line
		out = append(out, e)
	}
	return out
}

func (e corpusEntry) want() []wantStmt {
	if e.Stmts != nil {
		return *e.Stmts
	}
	return []wantStmt{e.wantStmt}
}

func same[T comparable](got, want []T) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return slices.Equal(got, want)
}

func checkStmt(got Statement, want wantStmt) []string {
	var bad []string
	f := func(field string, g, w any) { bad = append(bad, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.Kind != want.Kind {
		f("kind", got.Kind, want.Kind)
	}
	if got.Object != want.Object {
		f("object", got.Object, want.Object)
	}
	if !same(got.Reads, want.Reads) {
		f("reads", got.Reads, want.Reads)
	}
	if !same(got.Writes, want.Writes) {
		f("writes", got.Writes, want.Writes)
	}
	if !same(got.Functions, want.Functions) {
		f("functions", got.Functions, want.Functions)
	}
	if !same(got.Flags, want.Flags) {
		f("flags", got.Flags, want.Flags)
	}
	if got.Name != want.Name {
		f("name", got.Name, want.Name)
	}
	if want.Kinds != nil && !same(got.Kinds, want.Kinds) {
		f("kinds", got.Kinds, want.Kinds)
	}
	if want.Text != nil && got.Text != *want.Text {
		f("text", fmt.Sprintf("%q", got.Text), fmt.Sprintf("%q", *want.Text))
	}
	if want.Inner != nil {
		if got.Inner == nil {
			f("inner", nil, want.Inner.Kind)
		} else if got.Inner.Kind != want.Inner.Kind {
			f("inner.kind", got.Inner.Kind, want.Inner.Kind)
		}
	}
	if got.Shape == "" {
		bad = append(bad, "empty shape")
	}
	if got.Kind == Unknown && !got.Has(FlagUnknown) {
		bad = append(bad, "unknown kind without the unknown flag")
	}
	return bad
}

func TestCorpus(t *testing.T) {
	entries := loadCorpus(t)
	if len(entries) < 200 {
		t.Fatalf("corpus has %d entries, want at least 200", len(entries))
	}
	for _, e := range entries {
		got := Classify(e.SQL)
		want := e.want()
		if len(got) != len(want) {
			t.Errorf("corpus.yaml:%d: %q: %d statements, want %d: %+v", e.line, e.SQL, len(got), len(want), got)
			continue
		}
		for i := range got {
			if bad := checkStmt(got[i], want[i]); len(bad) > 0 {
				t.Errorf("corpus.yaml:%d: %q statement %d:\n\t%s", e.line, e.SQL, i, strings.Join(bad, "\n\t"))
			}
		}
	}
}

// varyLiterals rewrites every literal of text to another value of the same
// lexical class, so that the text has the same shape key.
func varyLiterals(text string) (string, bool) {
	toks, ok := scan(text, nil)
	if !ok {
		return text, false
	}
	var b strings.Builder
	last := 0
	changed := false
	for _, tk := range toks {
		var repl string
		switch tk.class {
		case tkInt:
			repl = "7"
		case tkNum:
			repl = "9.25"
		case tkStr:
			repl = "'zz''q'"
		case tkBit:
			repl = "B'01'"
		case tkHex:
			repl = "X'AB'"
		default:
			continue
		}
		b.WriteString(text[last:tk.start])
		b.WriteString(repl)
		last = int(tk.end)
		changed = true
	}
	b.WriteString(text[last:])
	return b.String(), changed
}

// TestCacheNeverChangesAVerdict runs the corpus through a Classifier twice
// (cold, then warm), then again with every literal changed, and compares
// each answer with the uncached classification.
func TestCacheNeverChangesAVerdict(t *testing.T) {
	entries := loadCorpus(t)
	c := NewClassifier(1024)
	var texts []string
	for _, e := range entries {
		texts = append(texts, e.SQL)
	}
	for _, e := range entries {
		if v, ok := varyLiterals(e.SQL); ok {
			texts = append(texts, v)
		}
	}
	texts = append(texts,
		"SELECT set_config('role', 'x', false)", "SELECT set_config('search_path', 'x', false)",
		"SELECT set_config('role', 'x', false)", "EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t",
		"COPY t FROM '/x'", "COPY t FROM STDIN", "SELECT CAST(x AS float(10))", "SELECT CAST(x AS float(100))")
	hits := 0
	uncached := make(map[string][]Statement, len(texts))
	for _, text := range texts {
		uncached[text] = Classify(text)
	}
	for pass := 0; pass < 3; pass++ {
		for _, text := range texts {
			before := c.Len()
			got := c.Classify(text)
			if c.Len() == before {
				hits++
			}
			want := uncached[text]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("pass %d: %q:\ncached   %+v\nuncached %+v", pass, text, got, want)
			}
		}
	}
	if hits < len(texts) {
		t.Errorf("only %d lookups did not add a shape; the cache is not being used", hits)
	}
	// The literal variants must really share keys with their originals.
	shared := 0
	for _, e := range entries {
		if v, ok := varyLiterals(e.SQL); ok {
			t1, _ := scan(e.SQL, nil)
			t2, _ := scan(v, nil)
			if string(appendKey(nil, e.SQL, t1, false)) == string(appendKey(nil, v, t2, false)) {
				shared++
			}
		}
	}
	if shared < 100 {
		t.Errorf("only %d literal variants share a key with their original", shared)
	}
}
