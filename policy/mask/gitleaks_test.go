package mask

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gitleaksTOML = `
title = "team rules"

[extend]
useDefault = true

[[rules]]
id = "acme-api-key"
description = "ACME internal API key"
regex = '''acme_(?:live|test)_([a-z0-9]{24})'''
secretGroup = 1
keywords = ["acme_live", "acme_test"]
tags = ["internal"]

[[rules]]
id = "lookahead-rule"
regex = '''(?=secret)secret[0-9]+'''
keywords = ["secret"]

[[rules]]
id = "backref-rule"
regex = '''(a+)\1'''

[[rules]]
id = "high-entropy-token"
regex = '''tok_[A-Za-z0-9]{20}'''
entropy = 3.5
keywords = ["tok_"]

[[rules]]
id = "no-keywords"
regex = '''ZZ-[0-9]{6}-ZZ'''

[[rules]]
id = "env-files"
path = '''\.env$'''

[allowlist]
paths = ['''vendor/''']
`

func TestLoadGitleaks(t *testing.T) {
	rules, err := LoadGitleaks([]byte(gitleaksTOML))
	var ge *GitleaksError
	if !errors.As(err, &ge) || !errors.Is(err, ErrBadRule) {
		t.Fatalf("want a *GitleaksError, got %v", err)
	}
	var bad []string
	for _, r := range ge.Rules {
		bad = append(bad, r.ID)
	}
	if strings.Join(bad, ",") != "lookahead-rule,backref-rule" || !strings.Contains(err.Error(), "lookahead-rule") {
		t.Errorf("bad rules: %v (%v)", bad, err)
	}
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "acme-api-key,high-entropy-token,no-keywords" {
		t.Fatalf("rules: %v", ids)
	}
	cfg := DefaultConfig()
	cfg.Rules = rules
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"key acme_live_abcdefghijklmnopqrstuvwx end", "key acme_live_<acme-api-key> end"},
		{"ACME_LIVE_ABCDEFGHIJKLMNOPQRSTUVWX", "ACME_LIVE_ABCDEFGHIJKLMNOPQRSTUVWX"}, // regex is case-sensitive
		{"tok_aB3dE6gH9jK2mN5pQ8sT", "<high-entropy-token>"},
		{"tok_aaaaaaaaaaaaaaaaaaaa", "tok_aaaaaaaaaaaaaaaaaaaa"}, // below the entropy threshold
		{"id ZZ-123456-ZZ", "id <no-keywords>"},
		{"acme_live_abcdefghijklmnopqrstuvwx bob@example.com", "acme_live_<acme-api-key> ***@example.com"},
	} {
		if got, _ := m.Text(c.in); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	// a rule can be switched off or given a strategy by its id
	cfg.Detect["acme-api-key"] = Off
	m2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m2.Text("acme_live_abcdefghijklmnopqrstuvwx"); got != "acme_live_abcdefghijklmnopqrstuvwx" {
		t.Errorf("rule not switched off: %q", got)
	}
}

func TestLoadGitleaksErrors(t *testing.T) {
	if r, err := LoadGitleaks([]byte("[[rules]\nid=")); err == nil || r != nil {
		t.Errorf("syntax error: %v %v", r, err)
	}
	_, err := LoadGitleaks([]byte("[[rules]]\nid = \"x\"\nregex = '''a(b)'''\nsecretGroup = 3\n"))
	if err == nil || !strings.Contains(err.Error(), "secretGroup 3") {
		t.Errorf("secretGroup out of range: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, ".gitleaks.toml")
	if err := os.WriteFile(p, []byte(gitleaksTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := LoadGitleaksFile(p)
	var ge *GitleaksError
	if len(rules) != 3 || !errors.As(err, &ge) || ge.File != p {
		t.Errorf("LoadGitleaksFile: %d rules, %v", len(rules), err)
	}
	if _, err := LoadGitleaksFile(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Detect["not-loaded-rule"] = Hash
	if _, err := New(cfg, []byte("k")); !errors.Is(err, ErrUnknownDetector) {
		t.Errorf("unknown rule id: %v", err)
	}
}
