package mask

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// RuleError is one gitleaks rule that could not be used.
type RuleError struct {
	ID  string
	Err error
}

func (e RuleError) Error() string { return fmt.Sprintf("rule %q: %v", e.ID, e.Err) }

// GitleaksError lists the rules of a gitleaks file that were skipped (their
// regex does not compile with Go's RE2, or they have no regex). The rules
// returned next to it are complete and usable.
type GitleaksError struct {
	File  string // as given to LoadGitleaksFile; empty for LoadGitleaks
	Rules []RuleError
}

func (e *GitleaksError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d gitleaks rule(s) skipped:", len(e.Rules))
	for _, r := range e.Rules {
		b.WriteString(" ")
		b.WriteString(r.Error())
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

func (e *GitleaksError) Unwrap() error { return ErrBadRule }

type gitleaksFile struct {
	Rules []struct {
		ID          string   `toml:"id"`
		Description string   `toml:"description"`
		Regex       string   `toml:"regex"`
		Keywords    []string `toml:"keywords"`
		SecretGroup int      `toml:"secretGroup"`
		Entropy     float64  `toml:"entropy"`
		Path        string   `toml:"path"`
	} `toml:"rules"`
}

// LoadGitleaks reads gitleaks-format TOML ([[rules]] with id, regex,
// keywords, secretGroup, entropy; other keys are ignored). A TOML syntax
// error returns no rules. Rules whose regex does not compile with Go's RE2
// (look-arounds, back-references) are left out and listed in a
// *GitleaksError, returned together with the rules that do compile; rules
// that only match file paths are ignored silently.
func LoadGitleaks(data []byte) ([]Rule, error) {
	var f gitleaksFile
	if _, err := toml.Decode(string(data), &f); err != nil {
		return nil, fmt.Errorf("gitleaks: %w", err)
	}
	var rules []Rule
	var bad []RuleError
	for i, r := range f.Rules {
		id := r.ID
		if id == "" {
			id = fmt.Sprintf("#%d", i+1)
		}
		if r.Regex == "" {
			if r.Path == "" {
				bad = append(bad, RuleError{id, fmt.Errorf("no regex")})
			}
			continue
		}
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			bad = append(bad, RuleError{id, err})
			continue
		}
		if r.SecretGroup < 0 || r.SecretGroup > re.NumSubexp() {
			bad = append(bad, RuleError{id, fmt.Errorf("secretGroup %d but the regex has %d groups", r.SecretGroup, re.NumSubexp())})
			continue
		}
		kw := make([]string, 0, len(r.Keywords))
		for _, k := range r.Keywords {
			if k != "" {
				kw = append(kw, strings.ToLower(k))
			}
		}
		rules = append(rules, Rule{ID: id, Description: r.Description, Regex: re, Keywords: kw, SecretGroup: r.SecretGroup, Entropy: r.Entropy})
	}
	if len(bad) > 0 {
		return rules, &GitleaksError{Rules: bad}
	}
	return rules, nil
}

// LoadGitleaksFile reads the gitleaks file at path (the caller resolves it,
// usually relative to guardrun.yaml) and calls LoadGitleaks.
func LoadGitleaksFile(path string) ([]Rule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rules, err := LoadGitleaks(data)
	if ge, ok := err.(*GitleaksError); ok {
		ge.File = path
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, err
}

func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var n [256]int
	for _, c := range b {
		n[c]++
	}
	h := 0.0
	l := float64(len(b))
	for _, k := range n {
		if k > 0 {
			p := float64(k) / l
			h -= p * math.Log2(p)
		}
	}
	return h
}

// extraRules runs the gitleaks rules whose keywords occur in v.
func (s *scanner) extraRules(v []byte) {
	lowered := false
	for ri := range s.m.rules {
		r := &s.m.rules[ri]
		d := int(numBuiltin) + ri
		if s.m.strat[d] == Off {
			continue
		}
		if len(r.Keywords) > 0 {
			if !lowered {
				s.lowerv = append(s.lowerv[:0], v...)
				for i, c := range s.lowerv {
					s.lowerv[i] = lower(c)
				}
				lowered = true
			}
			hit := false
			for _, k := range r.Keywords {
				if bytes.Contains(s.lowerv, []byte(k)) {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		for _, loc := range r.Regex.FindAllSubmatchIndex(v, -1) {
			a, b := loc[0], loc[1]
			if g := r.SecretGroup; g > 0 {
				if loc[2*g] >= 0 {
					a, b = loc[2*g], loc[2*g+1]
				}
			} else {
				// like gitleaks: the first non-empty group, else the match
				for g := 1; 2*g+1 < len(loc); g++ {
					if loc[2*g] >= 0 && loc[2*g+1] > loc[2*g] {
						a, b = loc[2*g], loc[2*g+1]
						break
					}
				}
			}
			if r.Entropy > 0 && entropy(v[a:b]) < r.Entropy {
				continue
			}
			s.insert(match{start: a, end: b, det: d})
		}
	}
}
