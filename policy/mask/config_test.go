package mask

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func parse(t *testing.T, src string) (Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	// the caller hands us the policy.masking node
	root := doc.Content[0]
	for _, k := range []string{"policy", "masking"} {
		var next *yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == k {
				next = root.Content[i+1]
			}
		}
		if next == nil {
			t.Fatalf("no %s in %q", k, src)
		}
		root = next
	}
	return ParseConfig("guardrun.yaml", root)
}

func TestParseConfig(t *testing.T) {
	cfg, err := parse(t, `
policy:
  masking:
    enabled: true
    ip_addresses: true
    detectors:
      email: hash
      phone: off
      secrets: partial
      ipv6: redact
    default_columns: false
    columns:
      - match: "*password*"
        strategy: redact
      - match: [ssn, "*_ssn"]
        strategy: hash
        label: ssn
      - match: public.users.email
        strategy: partial
        types: text
    gitleaks: .gitleaks.toml
    connections:
      analytics:
        enabled: false
      prod:
        detectors: {email: redact}
        ip_addresses: false
        columns:
          - {match: "*.notes", strategy: "null"}
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Detect["email"] != Hash || cfg.Detect["phone"] != Off || cfg.Detect["secrets"] != Partial ||
		cfg.Detect["ipv4"] != Inherit || cfg.Detect["ipv6"] != Redact {
		t.Errorf("detectors: %v", cfg.Detect)
	}
	if !cfg.NoDefaultColumns || cfg.Gitleaks != ".gitleaks.toml" || len(cfg.Columns) != 4 {
		t.Errorf("config: %+v", cfg)
	}
	if c := cfg.Columns[2]; c.Match != "*_ssn" || c.Strategy != Hash || c.Label != "ssn" {
		t.Errorf("column 2: %+v", c)
	}
	if c := cfg.Columns[3]; c.Match != "public.users.email" || !c.TextOnly || c.Strategy != Partial {
		t.Errorf("column 3: %+v", c)
	}
	if !cfg.Connections["analytics"].Disabled || cfg.Connections["prod"].Detect["email"] != Redact ||
		cfg.Connections["prod"].Detect["ipv4"] != Off || cfg.Connections["prod"].Columns[0].Strategy != Null {
		t.Errorf("connections: %+v", cfg.Connections)
	}
	m, err := New(cfg, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := m.Text("10.1.2.3 bob@example.com"); !strings.HasPrefix(out, "10.1.*.* <email:") {
		t.Errorf("masker from config: %q", out)
	}
	if out, _ := m.ForConnection("prod").Text("10.1.2.3 bob@example.com"); out != "10.1.2.3 <email>" {
		t.Errorf("prod override: %q", out)
	}
	if out, _ := m.ForConnection("analytics").Text("bob@example.com"); out != "bob@example.com" {
		t.Errorf("analytics disabled: %q", out)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("guardrun.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, c := m.Text("x bob@example.com 4242424242424242 ghp_16C7e42F292c6912E7710c838347Ae178B4a 10.0.0.1")
	if out != "x ***@example.com ****-****-****-4242 <github-token> 10.0.0.1" || c.Total() != 3 {
		t.Errorf("defaults: %q %v", out, c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		src, want string
		is        error
	}{
		{"policy:\n  masking:\n    enabeld: true\n", `guardrun.yaml:3: unknown field "enabeld" in policy.masking`, nil},
		{"policy:\n  masking:\n    detectors:\n      emial: hash\n", `guardrun.yaml:4: unknown detector "emial"`, ErrUnknownDetector},
		{"policy:\n  masking:\n    detectors:\n      email: scramble\n", `guardrun.yaml:4: unknown strategy "scramble"`, ErrUnknownStrategy},
		{"policy:\n  masking:\n    columns:\n      - match: x\n        strategy: on\n", `guardrun.yaml:5: unknown strategy "on"`, ErrUnknownStrategy},
		{"policy:\n  masking:\n    columns:\n      - strategy: hash\n", `guardrun.yaml:4: column rule without match`, nil},
		{"policy:\n  masking:\n    columns:\n      - match: a.b.c.d\n", `guardrun.yaml:4: match "a.b.c.d"`, nil},
		{"policy:\n  masking:\n    columns:\n      - match: x\n        colour: red\n", `guardrun.yaml:5: unknown field "colour" in a column rule`, nil},
		{"policy:\n  masking:\n    ip_addresses: maybe\n", `guardrun.yaml:3: want true or false`, nil},
		{"policy:\n  masking:\n    connections:\n      prod:\n        gitleaks: x\n", `guardrun.yaml:5: unknown field "gitleaks" in connections.prod`, nil},
		{"policy:\n  masking:\n    columns: {match: x}\n", `guardrun.yaml:3: policy.masking.columns: want a list`, nil},
	} {
		cfg, err := parse(t, c.src)
		if err == nil {
			t.Errorf("%q: no error", c.src)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s...", c.src, err, c.want)
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Line == 0 {
			t.Errorf("%q: not a *ConfigError with a line: %T", c.src, err)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%q: not %v", c.src, c.is)
		}
		if cfg.Detect != nil || cfg.Columns != nil {
			t.Errorf("%q: half-built config returned", c.src)
		}
	}
}
