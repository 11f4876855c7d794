package cli

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyArrows keeps the package arrows of DESIGN.md true:
// cli -> everything; tunnel -> policy, recorder; tui -> policy, recorder;
// auth, policy, recorder -> the standard library and their own third-party
// dependencies only. Reasons travel with each rule.
func TestDependencyArrows(t *testing.T) {
	const mod = "github.com/guardrun/guardrun/"
	out, err := exec.Command("go", "list", "-e", "-json=ImportPath,Imports", "github.com/guardrun/guardrun/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	rules := []struct {
		from    string   // package prefix (relative to the module)
		allowed []string // module-internal prefixes it may import
		why     string
	}{
		{"tunnel", []string{"tunnel", "policy", "recorder"}, "tunnels reach humans only through the Approver interface; they never draw or parse flags"},
		{"tui", []string{"tui", "policy", "recorder"}, "the terminal shows decisions and records; it never opens tunnels or reads config"},
		{"auth", []string{"auth"}, "identity is self-contained so it can be audited alone"},
		{"policy", []string{"policy"}, "judgement is pure: no tunnel, record or terminal reaches into it"},
		{"recorder", []string{"recorder"}, "the evidence store depends on nothing it records"},
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		if rel == p.ImportPath {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "completions") {
				break // main packages and generators may use the command tree
			}
			if imp == mod+"cli" || strings.HasPrefix(imp, mod+"cli/") {
				t.Errorf("%s imports %s: nothing imports cli (it is the composition root)", rel, imp)
			}
		}
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			for _, imp := range p.Imports {
				irel, ok := strings.CutPrefix(imp, mod)
				if !ok || strings.HasSuffix(irel, "pgtest") {
					continue
				}
				allowed := false
				for _, a := range r.allowed {
					if irel == a || strings.HasPrefix(irel, a+"/") {
						allowed = true
					}
				}
				if !allowed {
					t.Errorf("%s imports %s: %s", rel, irel, r.why)
				}
			}
		}
	}
}
