package mask

import (
	"bytes"
	"testing"
)

func TestCopyData(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	cases := []struct {
		name string
		cols []Column
		f    CopyFormat
		in   string
		want string
	}{
		{"text", nil, CopyFormat{}, "1\tbob@example.com\t\\N\n2\tnone\tx\n", "1\t***@example.com\t\\N\n2\tnone\tx\n"},
		{"text no hits is returned as is", nil, CopyFormat{}, "1\talice\t42\n", "1\talice\t42\n"},
		{"text escaped PEM", nil, CopyFormat{}, "k\t-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\tz\n", "k\t<private-key>\\n\tz\n"},
		{"text escaped tab inside a field", nil, CopyFormat{}, "a\\tbob@example.com\tb\n", "a\\t***@example.com\tb\n"},
		{"text null strategy", []Column{{Name: "id"}, {Name: "notes", Table: "t"}}, CopyFormat{}, "1\tsecret\n", "1\t\\N\n"},
		{"csv", nil, CopyFormat{CSV: true}, "1,bob@example.com,\"a, b\"\n", "1,***@example.com,\"a, b\"\n"},
		{"csv quoted with quotes", nil, CopyFormat{CSV: true}, "1,\"{\"\"password\"\": \"\"hunter2\"\"}\",x\n", "1,\"{\"\"password\"\": \"\"<secret>\"\"}\",x\n"},
		{"csv newline inside quotes", nil, CopyFormat{CSV: true}, "1,\"line1\nbob@example.com\",2\n", "1,\"line1\n***@example.com\",2\n"},
		{"csv crlf", nil, CopyFormat{CSV: true}, "a,bob@example.com\r\nb,c\r\n", "a,***@example.com\r\nb,c\r\n"},
		{"csv custom delimiter", nil, CopyFormat{CSV: true, Delimiter: ';'}, "x;555-123-4567;y\n", "x;<phone>;y\n"},
		{"password column by name", []Column{{Name: "id"}, {Name: "password"}}, CopyFormat{}, "1\thunter2\n2\t\\N\n", "1\t<password>\n2\t\\N\n"},
	}
	for _, c := range cases {
		mm := m
		if c.name == "text null strategy" {
			cfg := DefaultConfig()
			cfg.Columns = []ColumnRule{{Match: "t.notes", Strategy: Null}}
			mm, _ = New(cfg, nil)
		}
		p := mm.Plan(c.cols)
		in := []byte(c.in)
		got := p.CopyData(in, c.f)
		if string(got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if string(in) != c.in {
			t.Errorf("%s: input modified", c.name)
		}
		if c.in == c.want && len(got) > 0 && &got[0] != &in[0] {
			t.Errorf("%s: unchanged data was copied", c.name)
		}
	}
	if got := m.CopyLine([]byte("x\tbob@example.com\n"), CopyFormat{}); string(got) != "x\t***@example.com\n" {
		t.Errorf("CopyLine: %q", got)
	}
}

// fields counts the fields of each row of COPY data.
func copyFieldCounts(data []byte, f CopyFormat) []int {
	f = f.norm()
	var counts []int
	i := 0
	for i < len(data) {
		n := 1
		inQ := false
		for i < len(data) {
			c := data[i]
			if f.CSV && c == f.Quote {
				if inQ && i+1 < len(data) && data[i+1] == f.Quote {
					i += 2
					continue
				}
				inQ = !inQ
			} else if !f.CSV && c == '\\' {
				i += 2
				continue
			} else if !inQ && c == f.Delimiter {
				n++
			} else if !inQ && c == '\n' {
				i++
				break
			}
			i++
		}
		counts = append(counts, n)
	}
	return counts
}

func TestCopyKeepsFields(t *testing.T) {
	m, _ := New(DefaultConfig(), []byte("k"))
	p := m.Plan(nil)
	for _, f := range []CopyFormat{{}, {CSV: true}} {
		d := "\t"
		if f.CSV {
			d = ","
		}
		in := []byte("a" + d + "password=x" + d + "4242 4242 4242 4242" + d + "postgres://u:p@h/d\nb" + d + d + "x@example.com\n")
		out := p.CopyData(in, f)
		if bytes.Equal(in, out) {
			t.Fatalf("nothing masked in %q", in)
		}
		if a, b := copyFieldCounts(in, f), copyFieldCounts(out, f); len(a) != len(b) || a[0] != b[0] || a[1] != b[1] {
			t.Errorf("field counts changed: %v -> %v (%q)", a, b, out)
		}
	}
}

func TestParseCopyFormat(t *testing.T) {
	for _, c := range []struct {
		sql    string
		want   CopyFormat
		binary bool
		ok     bool
	}{
		{"COPY users TO STDOUT", CopyFormat{}, false, true},
		{"copy public.users (id, email) to stdout with (format csv, header true, delimiter ';')", CopyFormat{CSV: true, Delimiter: ';'}, false, true},
		{"COPY (SELECT 'null' AS format, 1) TO STDOUT WITH CSV DELIMITER AS '|' NULL AS 'NULL' QUOTE AS '''' ESCAPE '\\'", CopyFormat{CSV: true, Delimiter: '|', Null: "NULL", NullSet: true, Quote: '\'', Escape: '\\'}, false, true},
		{"COPY t TO STDOUT (FORMAT 'csv')", CopyFormat{CSV: true}, false, true},
		{"COPY t TO STDOUT WITH (FORMAT binary)", CopyFormat{}, true, true},
		{"COPY t TO STDOUT BINARY", CopyFormat{}, true, true},
		{"COPY t TO STDOUT WITH DELIMITER E'\\t' NULL ''", CopyFormat{Delimiter: '\t', NullSet: true}, false, true},
		{"SELECT 1", CopyFormat{}, false, false},
	} {
		f, bin, ok := ParseCopyFormat(c.sql)
		if f != c.want || bin != c.binary || ok != c.ok {
			t.Errorf("%q: got %+v binary=%v ok=%v, want %+v %v %v", c.sql, f, bin, ok, c.want, c.binary, c.ok)
		}
	}
	// NULL '' in the text format: an empty field is NULL and stays so
	f, _, _ := ParseCopyFormat("COPY t TO STDOUT NULL ''")
	cfg := DefaultConfig()
	cfg.Columns = []ColumnRule{{Match: "b", Strategy: Null}}
	mn, _ := New(cfg, nil)
	if got := mn.Plan([]Column{{Name: "a"}, {Name: "b"}}).CopyData([]byte("x\tsecret\n"), f); string(got) != "x\t\n" {
		t.Errorf("NULL '': %q", got)
	}
}
