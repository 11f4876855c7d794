package mask

import (
	"bytes"
	"fmt"
	"testing"
)

func row(vals ...string) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "\x00NULL" {
			out[i] = []byte(v)
		}
	}
	return out
}

func show(vals [][]byte) string {
	var b bytes.Buffer
	for i, v := range vals {
		if i > 0 {
			b.WriteString(" | ")
		}
		if v == nil {
			b.WriteString("NULL")
		} else {
			fmt.Fprintf(&b, "%q", v)
		}
	}
	return b.String()
}

func TestPlanColumns(t *testing.T) {
	m, err := New(DefaultConfig(), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	cols := []Column{
		{Table: "users", Name: "id", TypeOID: 23},
		{Table: "users", Name: "email", TypeOID: 25},
		{Table: "users", Name: "password_hash", TypeOID: 25},
		{Table: "users", Name: "ssn", TypeOID: 20},                     // bigint, name rule -> NULL
		{Table: "users", Name: "dob", TypeOID: 1082},                   // date, name rule -> NULL
		{Table: "users", Name: "api_token", TypeOID: 25, Binary: true}, // binary text: placeholder
		{Table: "users", Name: "prefs", TypeOID: 3802, Binary: true},   // binary jsonb: scanned
		{Table: "users", Name: "password_changed_at", TypeOID: 1184},   // text-only rule: skipped
		{Name: "notes", TypeOID: 16400},                                // unknown type, text format: scanned
		{Name: "blob", TypeOID: 16401, Binary: true},                   // unknown binary: NULL on a hit
		{Table: "users", Name: "uid", TypeOID: 2950},                   // uuid: never scanned
		{Table: "users", Name: "secret_json", TypeOID: 114},            // json with a name rule
	}
	p := m.Plan(cols)
	in := row("4242424242424242", "bob@example.com", bcryptH, "123456789", "1990-05-17", "ghp_x",
		"\x01{\"contact\": \"eve@example.org\", \"n\": 4242424242424242}", "2024-01-01 00:00:00+00",
		"call 555-123-4567", "\x00\x01 bob@example.com", "4242424242424242", `{"k": 1}`)
	p.Row(in)
	want := `"4242424242424242" | "***@example.com" | "<password>" | NULL | NULL | "<token>" | ` +
		`"\x01{\"contact\": \"***@example.org\", \"n\": \"****-****-****-4242\"}" | "2024-01-01 00:00:00+00" | ` +
		`"call <phone>" | NULL | "4242424242424242" | "\"<secret>\""`
	if got := show(in); got != want {
		t.Errorf("row:\n got %s\nwant %s", got, want)
	}
	c := p.Counts()
	wantCounts := map[string]int{"email": 2, "card": 1, "phone": 1, "column:users.password_hash": 1,
		"column:users.ssn": 1, "column:users.dob": 1, "column:users.api_token": 1, "column:users.secret_json": 1}
	// the unknown binary column's hit is counted under its detector
	wantCounts["email"]++
	if fmt.Sprint(c) != fmt.Sprint(Counts(wantCounts)) {
		t.Errorf("counts:\n got %v\nwant %v", c, wantCounts)
	}
}

func TestPlanInputNotModified(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	p := m.Plan([]Column{{Name: "a", TypeOID: 25}, {Name: "b", TypeOID: 25}})
	a := []byte("mail bob@example.com")
	b := []byte("mail eve@example.com")
	vals := [][]byte{a, b}
	p.Row(vals)
	if string(a) != "mail bob@example.com" || string(b) != "mail eve@example.com" {
		t.Fatalf("input slices were written to: %q %q", a, b)
	}
	if string(vals[0]) != "mail ***@example.com" || string(vals[1]) != "mail ***@example.com" {
		t.Fatalf("got %s", show(vals))
	}
	// both replacements stay intact within the row even though they share the scratch buffer
	vals2 := [][]byte{[]byte("x@example.com " + string(bytes.Repeat([]byte("y"), 5000)) + " z@example.com"), []byte("q@example.com")}
	p.Row(vals2)
	if !bytes.HasPrefix(vals2[0], []byte("***@example.com yyyy")) || string(vals2[1]) != "***@example.com" {
		t.Fatalf("scratch aliasing: %.40q %q", vals2[0], vals2[1])
	}
}

func TestPlanNoAllocsWithoutHits(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	rows, cols := benchRows(64, false)
	p := m.Plan(cols)
	work := make([][]byte, len(cols))
	allocs := testing.AllocsPerRun(20, func() {
		for _, r := range rows {
			copy(work, r)
			p.Row(work)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per 64 rows without hits, want 0", allocs)
	}
	rows, _ = benchRows(64, true)
	for range 2 { // warm the scratch buffers
		for _, r := range rows {
			copy(work, r)
			p.Row(work)
		}
	}
	allocs = testing.AllocsPerRun(20, func() {
		for _, r := range rows {
			copy(work, r)
			p.Row(work)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per 64 rows with hits after warm-up, want 0", allocs)
	}
}

func TestColumnRules(t *testing.T) {
	c := DefaultConfig()
	c.Columns = []ColumnRule{
		{Match: "public.users.email", Strategy: Hash},
		{Match: "orders.note", Strategy: Null},
		{Match: "*.docs.body", Strategy: Off},
		{Match: "*_code", Strategy: Redact, Label: "code"},
	}
	c.Connections = map[string]Override{"analytics": {Columns: []ColumnRule{{Match: "email", Strategy: Redact}}}}
	m, err := New(c, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		m    *Masker
		col  Column
		in   string
		want string
	}{
		{m, Column{Schema: "public", Table: "users", Name: "email", TypeOID: 25}, "bob@example.com", "<email:"},
		{m, Column{Schema: "audit", Table: "users", Name: "email", TypeOID: 25}, "bob@example.com", "***@example.com"}, // other schema: detectors
		{m, Column{Name: "email", TypeOID: 25}, "bob@example.com", "<email:"},                                          // table unknown: the last part decides
		{m, Column{Table: "orders", Name: "note", TypeOID: 25}, "anything", "NULL"},
		{m, Column{Table: "docs", Name: "body", TypeOID: 25}, "bob@example.com", "bob@example.com"}, // exempt
		{m, Column{Table: "t", Name: "promo_CODE", TypeOID: 1043}, "SPRING", "<code>"},
		{m, Column{Table: "t", Name: "user_password", TypeOID: 25}, "x", "<password>"},
		{m, Column{Table: "t", Name: "password_reset", TypeOID: 16}, "t", "t"}, // bool: text-only rule skipped
		{m, Column{Table: "t", Name: "birthday", TypeOID: 25}, "1990-05-17", "<dob>"},
		{m.ForConnection("analytics"), Column{Schema: "public", Table: "users", Name: "email", TypeOID: 25}, "bob@example.com", "<email>"},
		{m.ForConnection("unknown"), Column{Schema: "public", Table: "users", Name: "email", TypeOID: 25}, "bob@example.com", "<email:"},
	}
	for _, tc := range cases {
		p := tc.m.Plan([]Column{tc.col})
		v := [][]byte{[]byte(tc.in)}
		p.Row(v)
		got := "NULL"
		if v[0] != nil {
			got = string(v[0])
		}
		if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
			t.Errorf("%+v %q: got %q, want prefix %q", tc.col, tc.in, got, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		ok     bool
	}{
		{"*password*", "user_password_hash", true},
		{"*password*", "passwd", false},
		{"ssn", "ssn", true},
		{"ssn", "ssn2", false},
		{"*_token", "api_token", true},
		{"*_token", "token", false},
		{"a?c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*", "", true},
	} {
		if glob(c.pat, c.s) != c.ok {
			t.Errorf("glob(%q, %q) = %v", c.pat, c.s, !c.ok)
		}
	}
}

func TestDisabled(t *testing.T) {
	c := DefaultConfig()
	c.Disabled = true
	c.Connections = map[string]Override{"prod": {Enable: true}}
	m, _ := New(c, nil)
	if out, n := m.Text("bob@example.com"); out != "bob@example.com" || n != nil {
		t.Errorf("disabled masker masked: %q", out)
	}
	if out, _ := m.ForConnection("prod").Text("bob@example.com"); out == "bob@example.com" {
		t.Error("connection override did not enable masking")
	}
	p := m.Plan([]Column{{Name: "password", TypeOID: 25}})
	v := [][]byte{[]byte("x")}
	p.Row(v)
	if string(v[0]) != "x" {
		t.Error("disabled plan masked")
	}
}

func TestPlanBinaryLayouts(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	cols := []Column{
		{Name: "tags", TypeOID: 1009, Binary: true}, // text[]: binary array layout
		{Name: "tags_text", TypeOID: 1009},          // text[] in text format: rewritten in place
		{Name: "doc", TypeOID: 142},                 // xml: a placeholder would be a tag
		{Name: "api_key", TypeOID: 1009, Binary: true},
		{Name: "name", TypeOID: 19, Binary: true}, // name: binary is the text
	}
	p := m.Plan(cols)
	vals := row("\x00\x00\x00\x01bob@example.com", `{bob@example.com,x}`, "<a>bob@example.com</a>", "\x00\x01", "eve@example.com")
	p.Row(vals)
	want := `NULL | "{***@example.com,x}" | NULL | NULL | "***@example.com"`
	if got := show(vals); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMaskerConcurrentUse(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	done := make(chan string)
	for g := 0; g < 4; g++ {
		go func() {
			var last string
			for i := 0; i < 200; i++ {
				p := m.Plan([]Column{{Name: "a", TypeOID: 25}})
				v := [][]byte{[]byte("bob@example.com 4242424242424242")}
				p.Row(v)
				out, _ := m.Text("x eve@example.com")
				last = string(v[0]) + " " + out
			}
			done <- last
		}()
	}
	for g := 0; g < 4; g++ {
		if got := <-done; got != "***@example.com ****-****-****-4242 x ***@example.com" {
			t.Errorf("goroutine result %q", got)
		}
	}
}
