package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guardrun/guardrun/policy/sql"
	"gopkg.in/yaml.v3"
)

func judge(t *testing.T, p *Policy, text string, in Input) Decision {
	t.Helper()
	st := sql.Classify(text)
	if len(st) != 1 {
		t.Fatalf("%q: %d statements", text, len(st))
	}
	in.Statement = st[0]
	if in.Connection == "" {
		in.Connection = "app"
	}
	in.ConnType = "postgres"
	return p.Evaluate(in)
}

func TestBaseline(t *testing.T) {
	p := Baseline()
	cases := []struct {
		sql    string
		action Action
		rule   string
		reason string // a substring of one reason, when given
	}{
		{"SELECT * FROM users WHERE id = 1", Allow, "default", ""},
		{"INSERT INTO orders VALUES (1)", Allow, "default", ""},
		{"UPDATE users SET plan = 'pro' WHERE id = 1", Allow, "default", ""},
		{"DELETE FROM orders WHERE id = 1", Allow, "default", ""},
		{"BEGIN", Allow, "default", ""},
		{"SET search_path TO app", Allow, "default", ""},
		{"COPY users TO STDOUT", Allow, "default", ""},
		{"EXPLAIN DELETE FROM users", Allow, "default", ""},
		{"PREPARE q AS SELECT 1", Allow, "default", ""},
		{"SELECT pg_read_file('/etc/passwd')", Deny, "server-io", "calls pg_read_file (server-side file access)"},
		{"UPDATE t SET x = pg_read_file('/x') WHERE id = 1", Deny, "server-io", "pg_read_file"},
		{"COPY t TO PROGRAM 'id'", Deny, "server-io", "runs a program on the database server"},
		{"COPY t FROM '/etc/passwd'", Deny, "server-io", "file"},
		{"SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", Deny, "server-io", "dblink"},
		{"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", Deny, "server-io", ""},
		{"CREATE USER MAPPING FOR bob SERVER s", Deny, "server-io", ""},
		{"CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p", Deny, "server-io", ""},
		{"CREATE TABLESPACE ts LOCATION '/x'", Deny, "server-io", ""},
		{"ALTER SYSTEM SET work_mem = '1GB'", Deny, "alter-system", "ALTER SYSTEM"},
		{"GRANT SELECT ON users TO bob", Deny, "privilege", "GRANT"},
		{"REVOKE ALL ON users FROM bob", Deny, "privilege", ""},
		{"CREATE ROLE bob", Deny, "privilege", ""},
		{"ALTER ROLE bob SUPERUSER", Deny, "privilege", ""},
		{"DROP ROLE bob", Deny, "privilege", ""},
		{"SET ROLE admin", Deny, "privilege", "changes the role"},
		{"SET SESSION AUTHORIZATION bob", Deny, "privilege", ""},
		{"SELECT set_config('role', 'admin', false)", Deny, "privilege", "set_config('role'"},
		{"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", Deny, "privilege", ""},
		{"DROP DATABASE prod", Deny, "drop-database", "DROP DATABASE prod"},
		{"CREATE TABLE t (x int)", Approve, "ddl", "changes the schema"},
		{"DROP TABLE users", Approve, "ddl", ""},
		{"ALTER TABLE users ADD COLUMN x int", Approve, "ddl", ""},
		{"TRUNCATE orders", Approve, "truncate", "TRUNCATE on orders"},
		{"DELETE FROM public.users", Approve, "no-where", "DELETE on public.users has no WHERE clause"},
		{"UPDATE users SET plan = 'free'", Approve, "no-where", "UPDATE on users has no WHERE clause"},
		{"WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", Approve, "no-where", "DELETE on orders has no WHERE clause"},
		{"PREPARE p AS DELETE FROM orders", Approve, "no-where", "DELETE on orders"},
		{"EXPLAIN ANALYZE DELETE FROM orders", Approve, "no-where", ""},
		{"DO $$ BEGIN NULL; END $$", Approve, "procedural", "DO runs procedural code"},
		{"CALL archive()", Approve, "procedural", ""},
		{"CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", Approve, "ddl", ""},
		{"SELEC 1", Approve, "unknown", "the PostgreSQL parser rejected it"},
		{"COPY orders FROM STDIN", Approve, "copy-from", "COPY FROM loads rows into orders"},
		{"SELECT query_to_xml('select 1', true, true, '')", Approve, "dynamic-sql", ""},
	}
	for _, c := range cases {
		d := judge(t, p, c.sql, Input{})
		if d.Action != c.action || d.Rule != c.rule {
			t.Errorf("%q: %s by %s (%v), want %s by %s", c.sql, d.Action, d.Rule, d.Reasons, c.action, c.rule)
			continue
		}
		if c.reason != "" && !strings.Contains(strings.Join(d.Reasons, "|"), c.reason) {
			t.Errorf("%q: reasons %q, want one containing %q", c.sql, d.Reasons, c.reason)
		}
		if c.action != Allow && len(d.Reasons) == 0 {
			t.Errorf("%q: %s without a reason", c.sql, d.Action)
		}
		if c.action == Approve && d.Timeout != 2*time.Minute {
			t.Errorf("%q: timeout %s, want 2m", c.sql, d.Timeout)
		}
	}
}

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := LoadFile("guardrun.yaml", []byte(src))
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	return p
}

func TestPrecedenceAndMatching(t *testing.T) {
	p := mustParse(t, `
connections: []
policy:
  approval_timeout: 90s
  rules:
    - name: prod-writes
      connection: [prod, prod-*]
      kinds: [insert, update, delete, merge]
      action: approve
      message: writes on prod need a human
    - name: no-secrets
      tables: [secret.*, public.api_keys]
      action: deny
      message: secrets stay secret
    - name: contractors
      user: "*@contractor.example"
      flags: [write]
      action: deny
    - name: sleepy
      functions: [pg_sleep*]
      action: approve
    - name: dev-ddl
      connection: dev
      flags: [ddl]
      action: allow
    - name: ddl
      kinds: [drop]
      action: approve
    - name: big-in
      when: 'size(tables) > 2 && conn_type == "postgres"'
      action: approve
`)
	jane := Identity{Email: "jane@acme.example", Verified: true}
	cases := []struct {
		sql, conn string
		who       Identity
		action    Action
		rule      string
		rules     []string
	}{
		{"DELETE FROM orders WHERE id = 1", "prod", jane, Approve, "prod-writes", []string{"prod-writes"}},
		{"DELETE FROM orders WHERE id = 1", "prod-eu", jane, Approve, "prod-writes", nil},
		{"DELETE FROM orders WHERE id = 1", "staging", jane, Allow, "default", nil},
		{"WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING 1) SELECT * FROM d", "prod", jane, Approve, "prod-writes", nil},
		// deny beats approve; every matching rule is named
		{"DELETE FROM secret.tokens WHERE id = 1", "prod", jane, Deny, "no-secrets", []string{"prod-writes", "no-secrets"}},
		{"SELECT * FROM api_keys", "dev", jane, Deny, "no-secrets", nil},
		{"SELECT * FROM other.api_keys", "dev", jane, Allow, "default", nil},
		{"SELECT * FROM SECRET.x JOIN users ON true", "dev", jane, Deny, "no-secrets", nil},
		{"UPDATE t SET x = 1 WHERE id = 2", "dev", Identity{Email: "Bob@Contractor.example"}, Deny, "contractors", nil},
		{"SELECT 1", "dev", Identity{Email: "bob@contractor.example"}, Allow, "default", nil},
		{"SELECT pg_sleep(10)", "dev", jane, Approve, "sleepy", nil},
		// dev-ddl allows, but the most restrictive wins: baseline ddl was
		// replaced by the project's ddl rule (drop only)
		{"CREATE TABLE t (x int)", "dev", jane, Allow, "dev-ddl", []string{"dev-ddl"}},
		{"CREATE TABLE t (x int)", "staging", jane, Allow, "default", nil},
		{"DROP TABLE t", "dev", jane, Approve, "ddl", []string{"dev-ddl", "ddl"}},
		{"SELECT * FROM a, b, c", "dev", jane, Approve, "big-in", nil},
		{"SELECT pg_read_file('x')", "dev", jane, Deny, "server-io", nil},
	}
	for _, c := range cases {
		d := judge(t, p, c.sql, Input{Connection: c.conn, Identity: c.who})
		if d.Action != c.action || d.Rule != c.rule {
			t.Errorf("%q on %s: %s by %s (rules %v, %v), want %s by %s", c.sql, c.conn, d.Action, d.Rule, d.Rules, d.Reasons, c.action, c.rule)
		}
		if c.rules != nil && !slices.Equal(d.Rules, c.rules) {
			t.Errorf("%q on %s: rules %v, want %v", c.sql, c.conn, d.Rules, c.rules)
		}
		if d.Action == Approve && d.Timeout != 90*time.Second {
			t.Errorf("%q: timeout %s, want 90s", c.sql, d.Timeout)
		}
	}
	d := judge(t, p, "DELETE FROM orders WHERE id = 1", Input{Connection: "prod", Identity: jane})
	if d.Message != "writes on prod need a human" || len(d.Reasons) == 0 || d.Reasons[0] != "DELETE on orders" {
		t.Errorf("message %q reasons %q", d.Message, d.Reasons)
	}
}

func TestAllowRulesFailClosed(t *testing.T) {
	p := mustParse(t, `
include: []
default: deny
rules:
  - name: read-public
    kinds: [select]
    tables: [public.*]
    action: allow
  - name: admins
    user: "*@acme.example"
    kinds: [select, insert, update, delete]
    action: allow
`)
	verified := Identity{Email: "jane@acme.example", Verified: true}
	cases := []struct {
		sql    string
		who    Identity
		action Action
	}{
		{"SELECT * FROM users", Identity{}, Allow},
		{"SELECT * FROM public.users JOIN public.orders ON true", Identity{}, Allow},
		{"SELECT * FROM public.users JOIN secret.keys ON true", Identity{}, Deny},          // not every table covered
		{"WITH d AS (DELETE FROM public.t RETURNING 1) SELECT * FROM d", Identity{}, Deny}, // a nested DELETE is not a select
		{"SELECT * INTO public.copy FROM public.users", Identity{}, Deny},                  // SELECT INTO creates a table
		{"SELECT 1", Identity{}, Deny},                                                     // no table: the tables condition does not hold
		{"DELETE FROM x WHERE id = 1", verified, Allow},
		{"DELETE FROM x WHERE id = 1", Identity{Email: "jane@acme.example"}, Deny}, // unverified identity cannot unlock an allow
		{"TRUNCATE x", verified, Deny},
	}
	for _, c := range cases {
		d := judge(t, p, c.sql, Input{Identity: c.who})
		if d.Action != c.action {
			t.Errorf("%q as %+v: %s by %s, want %s", c.sql, c.who, d.Action, d.Rule, c.action)
		}
		if d.Action == Deny && d.Rule == "default" && !strings.Contains(strings.Join(d.Reasons, ""), "default is deny") {
			t.Errorf("%q: default deny without saying so: %q", c.sql, d.Reasons)
		}
	}
}

func TestCELRuntimeErrorFailsClosed(t *testing.T) {
	p := mustParse(t, `
include: []
rules:
  - name: odd-deny
    when: 'tables[5] == "x"'
    action: deny
  - name: odd-allow
    when: 'tables[5] == "x"'
    action: allow
`)
	d := judge(t, p, "SELECT * FROM t", Input{})
	if d.Action != Deny || d.Rule != "odd-deny" || !strings.Contains(d.Reasons[0], "could not be evaluated") {
		t.Errorf("got %+v, want deny by odd-deny saying the condition failed", d)
	}
	if slices.Contains(d.Rules, "odd-allow") {
		t.Errorf("an allow rule whose condition failed matched: %v", d.Rules)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"policy:\n  rules:\n    - name: x\n      action: block\n", `guardrun.yaml:4: unknown action "block" (want allow, deny or approve)`},
		{"policy:\n  rules:\n    - name: x\n      kinds: [deletee]\n      action: deny\n", `guardrun.yaml:4: unknown kind "deletee"`},
		{"policy:\n  rules:\n    - name: x\n      flags: [nowhere]\n      action: deny\n", `guardrun.yaml:4: unknown flag "nowhere"`},
		{"policy:\n  rules:\n    - name: x\n      tables: ['secret.[']\n      action: deny\n", `guardrun.yaml:4: tables: bad pattern "secret.["`},
		{"policy:\n  rules:\n    - name: x\n      when: 'kind =='\n      action: deny\n", `guardrun.yaml:4: when: CEL does not compile`},
		{"policy:\n  rules:\n    - name: x\n      when: 'kind'\n      action: deny\n", `guardrun.yaml:4: when: CEL condition must be true or false`},
		{"policy:\n  rules:\n    - name: x\n      when: 'nosuchvar == 1'\n      action: deny\n", `guardrun.yaml:4: when: CEL does not compile`},
		{"policy:\n  rules:\n    - name: x\n      tabels: [a]\n      action: deny\n", `guardrun.yaml:4: unknown rule field "tabels"`},
		{"policy:\n  rules:\n    - name: x\n", `guardrun.yaml:3: rule "x" has no action`},
		{"policy:\n  rulez: []\n", `guardrun.yaml:2: unknown policy field "rulez"`},
		{"policy:\n  default: maybe\n", `guardrun.yaml:2: unknown action "maybe"`},
		{"policy:\n  approval_timeout: soon\n", `guardrun.yaml:2: approval_timeout: want a duration`},
		{"policy:\n  include: [builtin:strict]\n", `guardrun.yaml:2: unknown include "builtin:strict"`},
		{"policy:\n  rules:\n    - {name: a, action: deny}\n    - {name: a, action: allow}\n", `guardrun.yaml:4: rule "a" is defined twice (first on line 3)`},
		{"policy:\n  rules: [\n", `guardrun.yaml:`},
		{"policy: [1, 2]\n", `guardrun.yaml:1: policy: want a mapping`},
	}
	for _, c := range cases {
		p, err := LoadFile("guardrun.yaml", []byte(c.src))
		if err == nil || p != nil {
			t.Errorf("%q: got a policy (%v), want error %q", c.src, p, c.want)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) || pe.File != "guardrun.yaml" {
			t.Errorf("%q: error %T %v is not a *ParseError with the file", c.src, err, err)
		}
		if !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s...", c.src, err, c.want)
		}
	}
	// Several problems are all reported, each with its line.
	_, err := LoadFile("guardrun.yaml", []byte("policy:\n  default: x\n  rules:\n    - action: y\n"))
	var es ParseErrors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 2 || es[1].Line != 4 {
		t.Errorf("got %v, want two errors on lines 2 and 4", err)
	}
}

func TestLoadFileForms(t *testing.T) {
	bare := mustParse(t, "rules:\n  - {name: r, kinds: [select], action: approve}\n")
	whole := mustParse(t, "connections: []\npolicy:\n  rules:\n    - {name: r, kinds: [select], action: approve}\n")
	if bare.Digest() != whole.Digest() || bare.Describe() != "baseline + 1 rule" {
		t.Errorf("bare %s %q, whole %s %q", bare.Digest(), bare.Describe(), whole.Digest(), whole.Describe())
	}
	none := mustParse(t, "connections: []\n")
	empty := mustParse(t, "")
	if none.Digest() != Baseline().Digest() || empty.Digest() != Baseline().Digest() || none.Describe() != "baseline" {
		t.Errorf("a file without policy is not the baseline: %q", none.Describe())
	}
	off := mustParse(t, "include: []\ndefault: deny\n")
	if off.Describe() != "no rules, default deny" || off.IncludesBaseline() {
		t.Errorf("opted out: %q", off.Describe())
	}
	over := mustParse(t, "rules:\n  - {name: ddl, connection: dev, flags: [ddl], action: allow}\n  - {name: x, action: allow}\n")
	if over.Describe() != "baseline + 2 rules (1 replacing baseline rules)" {
		t.Errorf("override: %q", over.Describe())
	}
	if d := judge(t, over, "CREATE TABLE t (x int)", Input{Connection: "prod"}); d.Action != Allow {
		t.Errorf("the replaced baseline rule still applies: %+v", d)
	}
}

func TestDigestAndMasking(t *testing.T) {
	a := mustParse(t, "# a comment\nrules:\n  - name: r\n    kinds: [delete]\n    action: approve\nmasking:\n  columns: [email]\n")
	b := mustParse(t, "rules: [{name: r, kinds: [delete], action: approve}]\nmasking: {columns: [email]}\n")
	c := mustParse(t, "rules: [{name: r, kinds: [delete], action: deny}]\nmasking: {columns: [email]}\n")
	d := mustParse(t, "rules: [{name: r, kinds: [delete], action: approve}]\nmasking: {columns: [ssn]}\n")
	if a.Digest() != b.Digest() {
		t.Errorf("formatting changed the digest")
	}
	if a.Digest() == c.Digest() || a.Digest() == d.Digest() || a.Digest() == Baseline().Digest() {
		t.Errorf("different policies share a digest")
	}
	if !strings.HasPrefix(a.Digest(), "sha256:") || len(a.Digest()) != len("sha256:")+64 {
		t.Errorf("digest %q", a.Digest())
	}
	m := a.Masking()
	if m == nil || m.Kind != yaml.MappingNode || m.Content[0].Value != "columns" || m.Line != 7 {
		t.Errorf("masking node %+v", m)
	}
	if Baseline().Masking() != nil || Baseline().ApprovalTimeout() != 2*time.Minute {
		t.Errorf("baseline masking/timeout")
	}
}

func TestParseNodeDirectly(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("policy:\n  default: approve\n  rules:\n    - {name: r, action: block}\n"), &doc); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("guardrun.yaml", doc.Content[0].Content[1])
	if err == nil || err.Error() != `guardrun.yaml:4: unknown action "block" (want allow, deny or approve)` {
		t.Errorf("got %v", err)
	}
	p, err := Parse("x.yaml", nil)
	if err != nil || p.Describe() != "baseline" {
		t.Errorf("nil node: %v %v", p, err)
	}
}

func BenchmarkEvaluateBaseline(b *testing.B) {
	p := Baseline()
	st := sql.Classify("SELECT id, email FROM public.users WHERE id = 1")[0]
	in := Input{Connection: "app", ConnType: "postgres", Statement: st}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Evaluate(in)
	}
}
