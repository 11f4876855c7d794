package mask

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError is a problem in the masking section of a configuration file,
// with its position.
type ConfigError struct {
	File string
	Line int
	Msg  string
	Err  error // a sentinel such as ErrUnknownDetector, or nil
}

func (e *ConfigError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *ConfigError) Unwrap() error { return e.Err }

type cfgParser struct{ file string }

func (p cfgParser) errf(n *yaml.Node, err error, format string, a ...any) error {
	return &ConfigError{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, a...), Err: err}
}

// ParseConfig reads the policy.masking node of guardrun.yaml (see the package
// documentation for the schema) on top of DefaultConfig. file names the file
// in errors ("guardrun.yaml:14: ..."). A nil or empty node gives the default.
// Unknown fields, detectors and strategies are errors; nothing half-built
// is returned on error.
func ParseConfig(file string, node *yaml.Node) (Config, error) {
	cfg := DefaultConfig()
	if node == nil {
		return cfg, nil
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return cfg, nil
	}
	p := cfgParser{file}
	var ov Override
	var ip *bool
	extra := map[string]func(k, v *yaml.Node) error{
		"default_columns": func(k, v *yaml.Node) error {
			b, err := p.boolean(v)
			cfg.NoDefaultColumns = !b
			return err
		},
		"gitleaks": func(k, v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return p.errf(v, nil, "gitleaks: want a file path")
			}
			cfg.Gitleaks = v.Value
			return nil
		},
		"connections": func(k, v *yaml.Node) error {
			if v.Kind != yaml.MappingNode {
				return p.errf(v, nil, "connections: want a mapping of connection names")
			}
			cfg.Connections = map[string]Override{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				name := v.Content[i].Value
				if _, dup := cfg.Connections[name]; dup {
					return p.errf(v.Content[i], nil, "connection %q listed twice", name)
				}
				var o Override
				var cip *bool
				if err := p.section(v.Content[i+1], &o, &cip, nil, "connections."+name); err != nil {
					return err
				}
				applyIP(o.Detect, cip, func() map[string]Strategy {
					if o.Detect == nil {
						o.Detect = map[string]Strategy{}
					}
					return o.Detect
				})
				cfg.Connections[name] = o
			}
			return nil
		},
	}
	if err := p.section(node, &ov, &ip, extra, "policy.masking"); err != nil {
		return Config{}, err
	}
	cfg.Disabled = ov.Disabled
	for k, s := range ov.Detect {
		cfg.Detect[k] = s
	}
	applyIP(cfg.Detect, ip, func() map[string]Strategy { return cfg.Detect })
	cfg.Columns = ov.Columns
	// Validate detector names now, so the error has a line; New checks again.
	return cfg, nil
}

func applyIP(d map[string]Strategy, ip *bool, get func() map[string]Strategy) {
	if ip == nil {
		return
	}
	s := Off
	if *ip {
		s = Inherit
	}
	m := get()
	for _, k := range []string{"ipv4", "ipv6"} {
		if _, set := d[k]; !set {
			m[k] = s
		}
	}
}

const sectionFields = "enabled, ip_addresses, detectors, columns"

func (p cfgParser) section(n *yaml.Node, o *Override, ip **bool, extra map[string]func(k, v *yaml.Node) error, where string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n, nil, "%s: want a mapping", where)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return p.errf(k, nil, "%s: %s is set twice", where, k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "enabled":
			b, err := p.boolean(v)
			if err != nil {
				return err
			}
			o.Disabled, o.Enable = !b, b
		case "ip_addresses":
			b, err := p.boolean(v)
			if err != nil {
				return err
			}
			*ip = &b
		case "detectors":
			if v.Kind != yaml.MappingNode {
				return p.errf(v, nil, "%s.detectors: want a mapping of detector: strategy", where)
			}
			o.Detect = map[string]Strategy{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				dk, dv := v.Content[j], v.Content[j+1]
				if !knownDetector(dk.Value) {
					return p.errf(dk, ErrUnknownDetector, "unknown detector %q (want one of %s, or secrets, personal, all, gitleaks)", dk.Value, strings.Join(Detectors(), ", "))
				}
				s, err := p.strategy(dv, true)
				if err != nil {
					return err
				}
				o.Detect[dk.Value] = s
			}
		case "columns":
			rules, err := p.columns(v, where)
			if err != nil {
				return err
			}
			o.Columns = rules
		default:
			if f, ok := extra[k.Value]; ok {
				if err := f(k, v); err != nil {
					return err
				}
				continue
			}
			want := sectionFields
			if extra != nil {
				want += ", default_columns, gitleaks, connections"
			}
			return p.errf(k, nil, "unknown field %q in %s (want %s)", k.Value, where, want)
		}
	}
	return nil
}

func knownDetector(name string) bool {
	if isGroup(name) {
		return true
	}
	if _, ok := detByName(name); ok {
		return true
	}
	// gitleaks rule IDs are known only once the file is loaded: New checks them.
	return strings.Contains(name, "-") || strings.Contains(name, "_")
}

func (p cfgParser) boolean(v *yaml.Node) (bool, error) {
	if v.Kind == yaml.ScalarNode {
		switch strings.ToLower(v.Value) {
		case "true", "yes", "on":
			return true, nil
		case "false", "no", "off":
			return false, nil
		}
	}
	return false, p.errf(v, nil, "want true or false, not %q", v.Value)
}

func (p cfgParser) strategy(v *yaml.Node, detector bool) (Strategy, error) {
	if v.Kind != yaml.ScalarNode {
		return 0, p.errf(v, ErrUnknownStrategy, "want a strategy (redact, partial, hash, null or off)")
	}
	switch strings.ToLower(v.Value) {
	case "on", "true", "yes":
		if detector {
			return Inherit, nil
		}
	case "false", "no":
		return Off, nil
	}
	s, err := ParseStrategy(v.Value)
	if err != nil {
		want := "redact, partial, hash, null or off"
		if detector {
			want += " (or on: its default)"
		}
		return 0, p.errf(v, ErrUnknownStrategy, "unknown strategy %q (want %s)", v.Value, want)
	}
	return s, nil
}

func (p cfgParser) columns(v *yaml.Node, where string) ([]ColumnRule, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, nil, "%s.columns: want a list of {match, strategy}", where)
	}
	var out []ColumnRule
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			return nil, p.errf(item, nil, "%s.columns: want {match: PATTERN, strategy: STRATEGY}", where)
		}
		var pats []string
		var r ColumnRule
		var matchNode *yaml.Node
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, val := item.Content[j], item.Content[j+1]
			switch k.Value {
			case "match":
				matchNode = val
				switch val.Kind {
				case yaml.ScalarNode:
					pats = []string{val.Value}
				case yaml.SequenceNode:
					for _, e := range val.Content {
						if e.Kind != yaml.ScalarNode {
							return nil, p.errf(e, nil, "match: want a pattern")
						}
						pats = append(pats, e.Value)
					}
				default:
					return nil, p.errf(val, nil, "match: want a pattern or a list of patterns")
				}
			case "strategy":
				s, err := p.strategy(val, false)
				if err != nil {
					return nil, err
				}
				r.Strategy = s
			case "label":
				if val.Kind != yaml.ScalarNode || !validLabel(val.Value) {
					return nil, p.errf(val, nil, "label: want letters, digits, - or _")
				}
				r.Label = val.Value
			case "types":
				switch val.Value {
				case "text":
					r.TextOnly = true
				case "any":
				default:
					return nil, p.errf(val, nil, "types: want text or any, not %q", val.Value)
				}
			default:
				return nil, p.errf(k, nil, "unknown field %q in a column rule (want match, strategy, label, types)", k.Value)
			}
		}
		if matchNode == nil || len(pats) == 0 {
			return nil, p.errf(item, nil, "column rule without match")
		}
		for _, pat := range pats {
			if err := checkPattern(pat); err != nil {
				return nil, p.errf(matchNode, err, "match %q: %v", pat, err)
			}
			rr := r
			rr.Match = pat
			out = append(out, rr)
		}
	}
	return out, nil
}

func validLabel(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' && s[i] != '_' {
			return false
		}
	}
	return true
}

var errPattern = errors.New("want column, table.column or schema.table.column with * and ?")

func checkPattern(p string) error {
	parts := strings.Split(p, ".")
	if p == "" || len(parts) > 3 {
		return errPattern
	}
	for _, x := range parts {
		if x == "" {
			return errPattern
		}
	}
	return nil
}
