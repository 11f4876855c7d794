package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// policyConfig returns a Config func whose policy is the policy: section of
// src, as the loader would hand it over.
func policyConfig(t *testing.T, src string, conns ...Connection) func() (*Config, error) {
	t.Helper()
	cfg := &Config{ProjectFile: "/p/guardrun.yaml", Connections: conns}
	if src != "" {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		top := doc.Content[0]
		for i := 0; i+1 < len(top.Content); i += 2 {
			if top.Content[i].Value == "policy" {
				cfg.Policy, cfg.PolicyFile = top.Content[i+1], "guardrun.yaml"
			}
		}
	}
	return func() (*Config, error) { return cfg, nil }
}

func testIO(stdin string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: strings.NewReader(stdin), Out: out, ErrOut: errOut}, out, errOut
}

const fourRules = `
policy:
  rules:
    - name: prod-writes
      connection: prod
      kinds: [insert, update, delete]
      action: approve
      message: writes on prod need a human
    - {name: no-secrets, tables: [secret.*], action: deny}
    - {name: dev-ddl, connection: dev, flags: [ddl], action: allow}
    - {name: contractors, user: "*@contractor.example", flags: [write], action: deny}
`

func TestPolicyCheck(t *testing.T) {
	io, out, _ := testIO("")
	err := policyCheckRun(context.Background(), &policyCheckOptions{IO: io, Config: policyConfig(t, fourRules)})
	if err != nil || out.String() != "guardrun.yaml: ok · baseline + 4 rules\n" {
		t.Errorf("check: %v, %q", err, out.String())
	}

	io, out, _ = testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, Config: policyConfig(t, "")})
	if err != nil || out.String() != "guardrun.yaml has no policy section · the built-in baseline applies\n" {
		t.Errorf("no policy: %v, %q", err, out.String())
	}

	bad := "policy:\n  rules:\n    - name: x\n      action: block\n"
	io, out, _ = testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, Config: policyConfig(t, bad)})
	var buf bytes.Buffer
	code := exitCode(&buf, err)
	if code != ExitError || buf.String() != "guardrun: error: guardrun.yaml:4: unknown action \"block\" (want allow, deny or approve)\n"+
		"guardrun: hint: guardrun refuses to open tunnels until the policy loads\n" || out.Len() != 0 {
		t.Errorf("bad policy: exit %d, stderr %q, stdout %q", code, buf.String(), out.String())
	}

	// Several problems: each on its own line, then exit 1.
	dir := t.TempDir()
	file := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(file, []byte("default: nope\nrules:\n  - {name: a, kinds: [delet], action: deny}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	io, out, errOut := testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, File: file, Config: policyConfig(t, "")})
	if !errors.Is(err, errSilent) || strings.Count(errOut.String(), "guardrun: error: "+file) != 2 || !strings.Contains(errOut.String(), `:3: unknown kind "delet"`) {
		t.Errorf("file with two problems: %v\n%s", err, errOut.String())
	}

	// A bare policy file that loads.
	if err := os.WriteFile(file, []byte("include: []\ndefault: deny\nrules:\n  - {name: r, kinds: [select], action: allow}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	io, out, _ = testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, File: file, Config: policyConfig(t, "")})
	if err != nil || out.String() != file+": ok · 1 rule, default deny\n" {
		t.Errorf("bare file: %v %q", err, out.String())
	}

	// Masking is linted too.
	io, _, _ = testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, Config: policyConfig(t, "policy:\n  masking:\n    no_such_field: 1\n")})
	if err == nil {
		t.Errorf("a bad masking section passed the check")
	}

	// A missing file says so.
	io, _, _ = testIO("")
	err = policyCheckRun(context.Background(), &policyCheckOptions{IO: io, File: filepath.Join(dir, "nope.yaml"), Config: policyConfig(t, "")})
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: %v", err)
	}
}

func TestPolicyExplainText(t *testing.T) {
	cfg := policyConfig(t, fourRules, Connection{Name: "prod", Type: "postgres"}, Connection{Name: "dev", Type: "postgres"})
	io, out, _ := testIO("")
	err := policyExplainRun(context.Background(), &policyExplainOptions{IO: io, Config: cfg, Connection: "prod", As: "jane@acme.example",
		Output: "text", SQL: "SELECT 1; DELETE FROM public.orders"})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"policy guardrun.yaml (baseline + 4 rules) · connection prod (postgres) · as jane@acme.example",
		"1  SELECT 1",
		"decision  ALLOW by the policy's default",
		"2  DELETE FROM public.orders",
		"writes    public.orders",
		"flags     no_where, write",
		"rules     prod-writes → approve (guardrun.yaml:",
		"no-where → approve (builtin:baseline)",
		"decision  APPROVE by rule prod-writes · waits up to 2m for a human",
		"because   DELETE on public.orders",
		"DELETE on public.orders has no WHERE clause",
		"message   writes on prod need a human",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explain output lacks %q:\n%s", want, got)
		}
	}

	io, _, _ = testIO("")
	err = policyExplainRun(context.Background(), &policyExplainOptions{IO: io, Config: cfg, Connection: "prd", Output: "text", SQL: "SELECT 1"})
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "prod, dev") {
		t.Errorf("unknown connection: %v", err)
	}
}

func TestPolicyExplainJSON(t *testing.T) {
	cfg := policyConfig(t, fourRules, Connection{Name: "dev", Type: "postgres"})
	io, out, _ := testIO("CREATE TABLE t (x int);\nSELECT * FROM secret.keys;\nSELECT pg_read_file('/etc/passwd')")
	err := policyExplainRun(context.Background(), &policyExplainOptions{IO: io, Config: cfg, Output: "json", SQL: "-"})
	if err != nil {
		t.Fatal(err)
	}
	var got explainOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Connection != "dev" || len(got.Statements) != 3 || !strings.HasPrefix(got.Policy.Digest, "sha256:") {
		t.Fatalf("%+v", got)
	}
	want := []struct{ action, rule string }{{"approve", "ddl"}, {"deny", "no-secrets"}, {"deny", "server-io"}}
	for i, w := range want {
		d := got.Statements[i].Decision
		if string(d.Action) != w.action || d.Rule != w.rule {
			t.Errorf("statement %d: %s by %s, want %s by %s", i, d.Action, d.Rule, w.action, w.rule)
		}
	}
	// dev-ddl allows, but the baseline's ddl rule still matches and the most
	// restrictive action wins; both are named.
	if m := got.Statements[0].Matched; len(m) != 2 || m[0].Name != "dev-ddl" || m[1].Source != "builtin:baseline" {
		t.Errorf("matched rules %+v", m)
	}
	if got.Statements[0].Statement.Kind != "create" || got.Statements[2].Statement.Functions[0] != "pg_read_file" {
		t.Errorf("classification missing from json: %+v", got.Statements)
	}
}

func TestPolicyExplainBadPolicy(t *testing.T) {
	io, _, _ := testIO("")
	err := policyExplainRun(context.Background(), &policyExplainOptions{IO: io, Config: policyConfig(t, "policy:\n  default: nope\n"), Output: "text", SQL: "SELECT 1"})
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "guardrun.yaml:2") {
		t.Errorf("got %v", err)
	}
}
