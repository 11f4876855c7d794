package sql

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestScanKey(t *testing.T) {
	key := func(s string) (string, bool) {
		toks, ok := scan(s, nil)
		if !ok {
			return "", false
		}
		return string(appendKey(nil, s, toks, false)), true
	}
	same := [][2]string{
		{"SELECT * FROM t WHERE id = 1", "select  *\nfrom T where ID=2 -- c"},
		{"SELECT 'a', $$b$$, E'\\'x'", "select 'zz', 'q', e'y'"},
		{"SELECT 1.5, 1e3", "SELECT 2.0, .5"},
		{"/* a /* b */ c */ SELECT 1", "SELECT 99"},
		{"SELECT a$$b$$ FROM t", "select A$$b$$ from t"},
	}
	for _, p := range same {
		a, okA := key(p[0])
		b, okB := key(p[1])
		if !okA || !okB || a != b {
			t.Errorf("%q and %q: keys %q (%v) and %q (%v), want equal", p[0], p[1], a, okA, b, okB)
		}
	}
	differ := [][2]string{
		{"SELECT 1", "SELECT 2147483648"},        // ICONST vs FCONST
		{"SELECT 1", "SELECT '1'"},               // number vs string
		{"SELECT \"T\"", "SELECT t"},             // quoted identifiers keep case
		{"SELECT a<=b", "SELECT a< =b"},          // operator boundaries
		{"SELECT x::int", "SELECT x: :int"},      // typecast is one token
		{"SELECT B'1'", "SELECT '1'"},            // bit string vs string
		{"COPY t FROM 'f'", "COPY t FROM STDIN"}, // keyword vs literal
		{"SELECT a FROM t", "SELECT a FROM t; SELECT 1"},
	}
	for _, p := range differ {
		a, okA := key(p[0])
		b, okB := key(p[1])
		if okA && okB && a == b {
			t.Errorf("%q and %q share key %q", p[0], p[1], a)
		}
	}
	bail := []string{
		"SELECT U&\"d!0061ta\" UESCAPE '!'", "SELECT 'a'\n'b'", "SELECT 123abc", "SELECT 0x1F",
		"SELECT 1_000", "SELECT 'open", "SELECT $$open", "/* open", "\\d", "SELECT CAST(x AS float(10))",
		"SELECT $1abc", "SELECT 1..2", "SELECT \x00",
	}
	for _, s := range bail {
		if k, ok := key(s); ok {
			t.Errorf("%q: got key %q, want the scanner to give up", s, k)
		}
	}
}

func TestTextIsTheStatementsOwn(t *testing.T) {
	text := "  /* lead */ SELECT 1 ; -- between\n DELETE FROM t /* trail */ ;  "
	for name, got := range map[string][]Statement{"uncached": Classify(text), "cached": NewClassifier(8).Classify(text)} {
		if len(got) != 2 || got[0].Text != "SELECT 1" || got[1].Text != "DELETE FROM t" {
			t.Errorf("%s: texts %q", name, texts(got))
		}
	}
}

func texts(st []Statement) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Text)
	}
	return out
}

func TestShapeIgnoresLiteralsOnly(t *testing.T) {
	a := Classify("SELECT * FROM t WHERE id = 1")[0].Shape
	b := Classify("select * from t where id = 42")[0].Shape
	c := Classify("SELECT * FROM u WHERE id = 1")[0].Shape
	if a != b {
		t.Errorf("shapes differ for the same statement with other literals")
	}
	if a == c {
		t.Errorf("shapes equal for statements on different tables")
	}
	// A literal that decides the verdict is part of the shape.
	r := Classify("SELECT set_config('role', 'x', false)")[0].Shape
	s := Classify("SELECT set_config('search_path', 'x', false)")[0].Shape
	if r == s {
		t.Errorf("set_config('role') and set_config('search_path') share a shape")
	}
}

func TestSummary(t *testing.T) {
	cases := map[string][]string{
		"DELETE FROM public.orders": {"writes public.orders", "DELETE on public.orders has no WHERE clause"},
		"SELECT u.id FROM public.users u JOIN orders o ON true WHERE lower(u.email) = 'x'": {"reads orders, public.users", "calls lower"},
		"SELECT pg_read_file('/etc/passwd')":                                               {"calls pg_read_file (server-side file access)"},
		"PREPARE p AS DELETE FROM t WHERE id = $1":                                         {"prepares p: DELETE on t", "writes t"},
		"SELEC 1":                      {`the PostgreSQL parser rejected it: syntax error at or near "SELEC"`},
		"BEGIN":                        {"BEGIN"},
		"DROP TABLE public.t, u":       {"DROP TABLE public.t, u"},
		"GRANT SELECT ON users TO bob": {"GRANT on TABLE users", "GRANT changes privileges on users"},
		"COPY orders FROM STDIN":       {"writes orders", "COPY FROM loads rows into orders"},
		"EXECUTE p(1)":                 {"executes prepared statement p (judged by what was prepared)"},
		"SET ROLE admin":               {"SET ROLE changes the role the session acts as"},
	}
	for sql, want := range cases {
		got := Classify(sql)[0].Summary()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: Summary() = %q, want %q", sql, got, want)
		}
	}
}

func TestClassifierConcurrent(t *testing.T) {
	c := NewClassifier(64) // smaller than the working set: eviction under load
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				text := fmt.Sprintf("SELECT * FROM t%d WHERE id = %d", i%100, i)
				if i%3 == 0 {
					text = fmt.Sprintf("DELETE FROM t%d", i%100)
				}
				got := c.Classify(text)
				want := Classify(text)
				if len(got) != 1 || got[0].Kind != want[0].Kind || got[0].Text != text || got[0].Shape != want[0].Shape {
					errs <- fmt.Sprintf("%q: got %+v want %+v", text, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := c.Len(); n > 64+16 {
		t.Errorf("cache holds %d shapes, bound is about 64", n)
	}
}

func FuzzClassify(f *testing.F) {
	for _, e := range loadCorpus(f) {
		f.Add(e.SQL)
	}
	c := NewClassifier(128)
	f.Fuzz(func(t *testing.T, text string) {
		got := Classify(text)
		for _, s := range got {
			if s.Kind == "" || s.Shape == "" {
				t.Fatalf("%q: empty kind or shape: %+v", text, s)
			}
			if s.Kind == Unknown && !s.Has(FlagUnknown) {
				t.Fatalf("%q: unknown without the flag", text)
			}
			if s.Has(FlagUnknown) && s.Kind != Unknown {
				t.Fatalf("%q: flag unknown on kind %s", text, s.Kind)
			}
			_ = s.Summary()
		}
		if _, err := parse(text); err != nil && (len(got) != 1 || got[0].Kind != Unknown) {
			t.Fatalf("%q: the parser rejects it but it classified as %+v", text, got)
		}
		cached := c.Classify(text)
		if !reflect.DeepEqual(cached, got) {
			t.Fatalf("%q: cached %+v, uncached %+v", text, cached, got)
		}
	})
}

var benchText = "SELECT id, email, created_at FROM public.users WHERE id = 4711 AND status = 'active' ORDER BY created_at DESC LIMIT 10"

func BenchmarkClassifyWarm(b *testing.B) {
	c := NewClassifier(1024)
	c.Classify(benchText)
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = strings.Replace(benchText, "4711", fmt.Sprint(i*7919), 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Classify(texts[i%len(texts)])
	}
}

func BenchmarkClassifyCold(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Classify(benchText)
	}
}

// FuzzShapeKey checks the cache's promise directly: a text whose literals
// were all changed has the same key, and the classification cached for the
// original must equal what parsing the variant says.
func FuzzShapeKey(f *testing.F) {
	for _, e := range loadCorpus(f) {
		f.Add(e.SQL)
	}
	f.Fuzz(func(t *testing.T, text string) {
		v, ok := varyLiterals(text)
		if !ok {
			return
		}
		c := NewClassifier(8)
		c.Classify(text)
		if got, want := c.Classify(v), Classify(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %q, %q:\ncached   %+v\nuncached %+v", text, v, got, want)
		}
	})
}

func TestClassifierMemoryBound(t *testing.T) {
	c := NewClassifier(100000)
	long := "SELECT 1 /* " + strings.Repeat("x", maxCachedText) + " */"
	if got := c.Classify(long); len(got) != 1 || got[0].Kind != "select" || c.Len() != 0 {
		t.Errorf("a %d-byte text: %d statements, cache holds %d", len(long), len(got), c.Len())
	}
	// Many distinct large keys: the byte budget, not the entry count, binds.
	res := &result{}
	for i := 0; i < 2000; i++ {
		c.put(fmt.Sprintf("%d %s", i, strings.Repeat("k", 60<<10)), res)
	}
	total := 0
	for i := range c.shards {
		total += c.shards[i].bytes
	}
	if total > maxCacheBytes || c.Len() >= 2000 || c.Len() == 0 {
		t.Errorf("cache holds %d entries, %d bytes; budget %d", c.Len(), total, maxCacheBytes)
	}
}
