package mask

import (
	"strings"
	"testing"
)

func TestTextStatements(t *testing.T) {
	c := DefaultConfig()
	c.Columns = []ColumnRule{{Match: "users.email", Strategy: Hash}, {Match: "*_code", Strategy: Redact}}
	m, err := New(c, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"SELECT * FROM users WHERE ssn = '123456789'", "SELECT * FROM users WHERE ssn = '<ssn>'"},
		{"SELECT 1 FROM p WHERE p.ssn <> '078-05-1120'", "SELECT 1 FROM p WHERE p.ssn <> '<ssn>'"},
		{"UPDATE users SET dob = '1990-01-01', name = 'Bob' WHERE id = 3", "UPDATE users SET dob = '<dob>', name = 'Bob' WHERE id = 3"},
		{"select * from t where promo_code like 'SPRING%'", "select * from t where promo_code like '<code>'"},
		{"SELECT 1 WHERE api_token IN ('abc', 'def') AND x = 1", "SELECT 1 WHERE api_token IN ('<token>', '<token>') AND x = 1"},
		{`INSERT INTO public.users (id, "password_hash", ssn, note) VALUES (1, crypt('pw', gen_salt('bf')), 78051120, 'hi'), (2, 'x', NULL, 'it''s')`,
			`INSERT INTO public.users (id, "password_hash", ssn, note) VALUES (1, crypt('<password>', gen_salt('<password>')), <ssn>, 'hi'), (2, '<password>', NULL, 'it''s')`},
		{"SELECT id FROM users WHERE id = 5 AND name = 'bob' -- ssn = '1'", "SELECT id FROM users WHERE id = 5 AND name = 'bob' -- ssn = '1'"},
		{"DO $$ BEGIN PERFORM 1; END $$; SELECT $t$ssn = '1'$t$", "DO $$ BEGIN PERFORM 1; END $$; SELECT $t$ssn = '1'$t$"},
		{"SELECT E'\\'' AS q, secret_answer = 'blue' FROM t", "SELECT E'\\'' AS q, secret_answer = '<secret>' FROM t"},
	} {
		got, _ := m.Text(tc.in)
		if got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// a table-qualified rule with a hash: stable, and the detector's partial form does not win
	got, counts := m.Text("DELETE FROM users WHERE users.email = 'bob@example.com'")
	if !strings.Contains(got, "'<email:") || strings.Contains(got, "example.com") || counts["column:email"] != 1 {
		t.Errorf("qualified rule: %q %v", got, counts)
	}
}
