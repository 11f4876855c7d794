package mask

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"bob@example.com", "4242 4242 4242 4242", "123-45-6789", "(555) 123-4567", "+14155552671",
	"DE89 3704 0044 0532 0130 00", awsKey + " " + awsSec, jwtHS256, pemKey, bcryptH, argonH,
	"postgres://u:p#w@h/db", `{"password": "x", "n": 4242424242424242}`, "PASSWORD 'a''b'",
	"-----BEGIN RSA PRIVATE KEY-----\nMII", `{"k": "-----BEGIN PRIVATE KEY-----`, `{"k": "-----BEGIN PRIVATE KEY----- x"}`, `{"a": "password=x\"y"}`, "fe80::1 10.0.0.1",
	"a\tb\\nc\\\\d\n", "INSERT INTO users (email, ssn) VALUES ('a@b.co', '123456789'), (", "SELECT $a$ x", "/* ssn = '1", "WHERE ssn IN ('1', ", "1,\"x\"\"y\",z\r\n", "", "\x00\xff\xfe", "$2b$", "sk-ant-", "eyJhbGciOi.x.y",
}

func fuzzMaskers(t testing.TB) []*Masker {
	c := DefaultConfig()
	c.Detect["all"] = Inherit
	c.Detect["email"] = Hash
	c.Detect["phone"] = Null
	all, err := New(c, []byte("fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	def, _ := New(DefaultConfig(), []byte("fuzz"))
	return []*Masker{all, def}
}

func FuzzText(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	ms := fuzzMaskers(f)
	f.Fuzz(func(t *testing.T, s string) {
		ParseCopyFormat(s) // must not panic
		for _, m := range ms {
			out, c := m.Text(s)
			if c == nil && out != s {
				t.Fatalf("changed without counting: %q -> %q", s, out)
			}
			if utf8.ValidString(s) && !utf8.ValidString(out) {
				t.Fatalf("broke UTF-8: %q -> %q", s, out)
			}
		}
	})
}

// FuzzRow: random values in columns of every kind never panic, keep the
// row's shape, keep valid JSON valid and binary jsonb's version byte.
func FuzzRow(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(0))
	}
	ms := fuzzMaskers(f)
	cols := []Column{
		{Name: "t", TypeOID: 25}, {Name: "j", TypeOID: 114}, {Name: "jb", TypeOID: 3802, Binary: true},
		{Name: "u", TypeOID: 16400}, {Name: "ub", TypeOID: 16400, Binary: true}, {Name: "password", TypeOID: 3802},
		{Name: "n", TypeOID: 23},
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		for _, m := range ms {
			p := m.Plan(cols)
			vals := make([][]byte, len(cols))
			for i := range vals {
				vals[i] = data
			}
			vals[2] = append([]byte{1}, data...)
			if split%7 == 0 {
				vals[3] = nil
			}
			in := bytes.Clone(data)
			p.Row(vals)
			if !bytes.Equal(in, data) {
				t.Fatal("input modified")
			}
			if len(vals) != len(cols) {
				t.Fatal("row shape changed")
			}
			if vals[2] != nil && (len(vals[2]) == 0 || vals[2][0] != 1) {
				t.Fatalf("jsonb version byte lost: %q", vals[2])
			}
			if json.Valid(data) {
				for _, i := range []int{1, 5} {
					if vals[i] != nil && !json.Valid(vals[i]) {
						t.Fatalf("valid JSON became invalid:\n in  %q\n out %q", data, vals[i])
					}
				}
				if vals[2] != nil && !json.Valid(vals[2][1:]) {
					t.Fatalf("valid jsonb became invalid:\n in  %q\n out %q", data, vals[2])
				}
			}
			if !bytes.Equal(vals[6], data) {
				t.Fatal("an int column was touched")
			}
		}
	})
}

// FuzzCopy: COPY data, encoded as PostgreSQL writes it from fuzzed field
// values (split at 0x1f, rows at 0x1e), keeps its rows and fields.
func FuzzCopy(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s+"\x1f"+s+"\x1e1\x1f"+s), false)
		f.Add([]byte(s+"\x1f"+s), true)
	}
	ms := fuzzMaskers(f)
	f.Fuzz(func(t *testing.T, raw []byte, csv bool) {
		cf := CopyFormat{CSV: csv}
		nf := cf.norm()
		var data []byte
		for _, row := range bytes.Split(raw, []byte{0x1e}) {
			for i, field := range bytes.Split(row, []byte{0x1f}) {
				if i > 0 {
					data = append(data, nf.Delimiter)
				}
				if csv {
					data = csvQuote(data, field, nf, len(field) == 0)
				} else {
					data = textEscape(data, field, nf.Delimiter)
				}
			}
			data = append(data, '\n')
		}
		for _, m := range ms {
			out := m.Plan([]Column{{Name: "a"}, {Name: "password"}}).CopyData(data, cf)
			a, b := copyFieldCounts(data, cf), copyFieldCounts(out, cf)
			if len(a) != len(b) {
				t.Fatalf("rows %d -> %d:\n in  %q\n out %q", len(a), len(b), data, out)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("row %d fields %d -> %d:\n in  %q\n out %q", i, a[i], b[i], data, out)
				}
			}
		}
	})
}

// scanBytewise is the reference for scan: the same dispatch, one byte at a
// time, without the 8-byte skipping.
func scanBytewise(s *scanner, v []byte) []match {
	s.matches, s.last, s.awsCtx = s.matches[:0], 0, false
	for i := 0; i < len(v); i++ {
		if t := trig[v[i]]; t != tNone {
			if nx := s.dispatch(v, i, t); nx > i {
				i = nx - 1
			}
		}
	}
	if s.awsCtx && s.on(detAWSSecretKey) {
		s.awsSecrets(v)
	}
	return append([]match(nil), s.matches...)
}

func sameScan(t *testing.T, m *Masker, v []byte) {
	a := scanner{m: m, en: m.enabled()}
	a.scan(v)
	b := scanner{m: m, en: m.enabled()}
	want := scanBytewise(&b, v)
	if len(a.matches) != len(want) {
		t.Fatalf("%q: skipping scan found %v, bytewise %v", v, a.matches, want)
	}
	for i := range want {
		if a.matches[i] != want[i] {
			t.Fatalf("%q: skipping scan found %v, bytewise %v", v, a.matches, want)
		}
	}
}

func FuzzScanSkippingMatchesBytewise(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	m := fuzzMaskers(f)[0]
	f.Fuzz(func(t *testing.T, s string) { sameScan(t, m, []byte(s)) })
}

func TestScanSkippingMatchesBytewise(t *testing.T) {
	m := allOn(t)
	r := rand.New(rand.NewPCG(9, 9))
	for _, p := range plantedValues() {
		for range 200 {
			sameScan(t, m, []byte(plant(r, p)))
		}
	}
	rows, _ := benchRows(256, true)
	for _, row := range rows {
		for _, v := range row {
			sameScan(t, m, v)
		}
	}
}
