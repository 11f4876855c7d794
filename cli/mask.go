package cli

import (
	"fmt"
	"path/filepath"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
)

// loadMasking reads policy.masking (and the gitleaks file it names) into a
// mask configuration; without any, the defaults mask all secrets and the
// common personal data.
func loadMasking(cfg *Config, pol *policy.Policy) (mask.Config, error) {
	mc, err := mask.ParseConfig(cfg.PolicyFile, pol.Masking())
	if err != nil {
		return mask.Config{}, &HintError{Err: err, Hint: "see the Masking section of the README for the fields policy.masking takes"}
	}
	if mc.Gitleaks != "" {
		path := mc.Gitleaks
		if !filepath.IsAbs(path) && cfg.ProjectFile != "" {
			path = filepath.Join(filepath.Dir(cfg.ProjectFile), path)
		}
		rules, err := mask.LoadGitleaksFile(path)
		if err != nil {
			return mask.Config{}, &HintError{Err: fmt.Errorf("%s: policy.masking.gitleaks: %w", cfg.PolicyFile, err), Hint: "fix or remove the rules that do not compile"}
		}
		mc.Rules = append(mc.Rules, rules...)
	}
	return mc, nil
}

// newMasker builds the session's masker with a fresh key for the hash
// strategy (stable within the session, never stored).
func newMasker(cfg *Config, pol *policy.Policy) (*mask.Masker, error) {
	mc, err := loadMasking(cfg, pol)
	if err != nil {
		return nil, err
	}
	m, err := mask.New(mc, sessionKey())
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("%s: policy.masking: %w", cfg.PolicyFile, err), Hint: "see the Masking section of the README"}
	}
	return m, nil
}
