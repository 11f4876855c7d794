// Package mask finds secrets and personal data in values and replaces them.
// Pure and allocation-aware: a Masker is immutable and safe for concurrent
// use; a Plan is made once per result set and applied to every row.
//
// # What it finds
//
// Secrets (masked with "redact" by default):
//
//	aws-access-key       AKIA/ASIA/AGPA/AIDA/AROA/AIPA/ANPA/ANVA/ABIA/ACCA + 16 [A-Z0-9]
//	aws-secret-key       40 base64 characters, only next to context: an AWS key id in
//	                     the same value, or an assignment whose key names aws/secret
//	gcp-service-account  the private_key / private_key_id values of a service-account JSON
//	azure-storage-key    AccountKey=... in a connection string
//	github-token         ghp_ gho_ ghs_ ghu_ ghr_ github_pat_
//	gitlab-token         glpat-
//	slack-token          xoxb- xoxa- xoxp- xoxr- xoxs- xoxe-
//	stripe-key           sk_live_ rk_live_
//	openai-key           sk-... sk-proj-...
//	anthropic-key        sk-ant-...
//	jwt                  three base64url parts whose header decodes to JSON with "alg"
//	private-key          a whole PEM "-----BEGIN ... PRIVATE KEY-----" block
//	password-hash        bcrypt $2a$/$2b$/$2y$, $argon2id$, $scrypt$, $7$, sha-crypt,
//	                     Django-style pbkdf2_sha256$..., PostgreSQL SCRAM-SHA-256$...
//	url-password         only the password of scheme://user:PASSWORD@host
//	secret               the value of password=, passwd=, pwd=, secret:, api_key=,
//	                     *_token=, clientSecret: ... assignments (any case, _ - . or
//	                     camelCase), JSON "password": "...", SQL PASSWORD '...'. With
//	                     ':' the bare English words secret/token/credentials count only
//	                     in structured text (JSON, YAML, headers), not in a sentence.
//	                     A value that is wholly a JWT, token or hash keeps that label.
//
// Personal data:
//
//	email   partial by default: ***@example.com
//	card    13-19 digits, Luhn-checked, known issuer prefix, spaces or dashes in
//	        groups of four (or 4-6-5); partial by default: ****-****-****-4242
//	ssn     AAA-GG-SSSS with dashes or spaces (area not 000/666/9xx, group not 00,
//	        serial not 0000); nine bare digits only right after "ssn" or "social
//	        security". A bare 9-digit number is far more often an id, a ZIP+4 or a
//	        routing number; SSN columns are caught by the column rules instead.
//	phone   E.164 (+ then 8-15 digits), NANP (555) 123-4567, 555-123-4567,
//	        555.123.4567, 1-555-123-4567, and national numbers that start with 0
//	        (020 7946 0958, 01 23 45 67 89); bare digit runs are never phones
//	iban    country length and mod-97 checksum; partial by default: DE****3000
//	ipv4, ipv6  off unless ip_addresses: true
//	dob     only by column name (dob, date_of_birth, birth_date, birthdate, birthday)
//
// Defaults: secrets redact; email, card and iban partial; ssn, phone and dob
// redact; ipv4/ipv6 partial once turned on. Email is partial because the
// domain helps debugging ("all failing users are @corp.example") and rarely
// names a person; set it to hash when joins on it matter, or redact.
//
// Strategies: redact (<email>), partial (keep what helps debugging: an email's
// domain, a card's last four, a token's public prefix), hash (<email:9f86d081884c>:
// HMAC-SHA256 under the session key, first 48 bits, stable within a session so
// joins and equality still work), null (the whole value becomes SQL NULL; in
// statement text and error messages null behaves like redact).
//
// # Configuration (guardrun.yaml)
//
//	policy:
//	  masking:
//	    enabled: true             # false turns masking off (not recommended)
//	    ip_addresses: true        # turn on ipv4 and ipv6 (off by default)
//	    detectors:                # a detector name, or a group: secrets, personal, all
//	      email: hash             # redact | partial | hash | null | off | on (= its default)
//	      phone: off
//	      secrets: redact
//	    default_columns: true     # keep the built-in column rules (below)
//	    columns:                  # first match wins; your rules come before the built-in ones
//	      - match: "*password*"   # glob on the column name: * and ?, case-insensitive
//	        strategy: redact
//	      - match: [ssn, "*_ssn"] # one pattern or a list
//	        strategy: hash
//	        label: ssn            # placeholder name: <ssn:...>; partial uses the
//	                              # detector of that name when there is one
//	      - match: public.users.email  # table.column or schema.table.column
//	        strategy: partial
//	        types: text           # text: skip bool/number/date/uuid columns; any (default)
//	      - match: public.docs.body
//	        strategy: off         # neither masked by name nor scanned (use with care)
//	    gitleaks: .gitleaks.toml  # extra secret rules, relative to guardrun.yaml
//	    connections:              # per-connection overrides, same fields except
//	      analytics:              # gitleaks and connections
//	        detectors: {email: redact}
//	        columns:
//	          - {match: "*.notes", strategy: "null"}
//
// A column whose table is unknown (an expression, or a result the proxy could
// not resolve) is matched by a qualified pattern's last part alone: masking
// more is the safe side.
//
// Built-in column rules: *password*, *passwd*, *secret*, *_token, token,
// *api_key*, *apikey*, *private_key* (text-like columns only), ssn, *_ssn,
// social_security*, dob, *_dob, date_of_birth, birth_date, birthdate,
// birthday, *card_number*, *credit_card*, cc_number (any type).
//
// # Values and types
//
// A Plan decides per column once: masked whole by a name rule, scanned by the
// detectors, or skipped (bool, numbers, dates and times, uuid, bytea, ... are
// never scanned). A name-rule hit on a column that is not text-like becomes
// NULL whatever its format, because a placeholder would not decode as a
// number or a date; json and jsonb get a JSON string ("<password>"). A
// detector hit in a binary value of a type whose layout is unknown (arrays,
// extension types) makes the whole value NULL.
package mask

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Strategy is how a match or a column is replaced.
type Strategy uint8

const (
	// Inherit, for a column rule: the strategy of the detector named by the
	// rule's Label, or Redact when there is none. For a detector: its default.
	Inherit Strategy = iota
	Redact
	Partial
	Hash
	Null
	// Off disables a detector; on a column rule it exempts the column.
	Off
)

var strategyNames = [...]string{"inherit", "redact", "partial", "hash", "null", "off"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// ParseStrategy reads a strategy name: redact, partial, hash, null, off.
func ParseStrategy(s string) (Strategy, error) {
	for i, n := range strategyNames {
		if i != int(Inherit) && strings.EqualFold(s, n) {
			return Strategy(i), nil
		}
	}
	return Inherit, fmt.Errorf("%w %q (want redact, partial, hash, null or off)", ErrUnknownStrategy, s)
}

// Sentinel errors; ConfigError and GitleaksError wrap them where useful.
var (
	ErrUnknownStrategy = errors.New("unknown strategy")
	ErrUnknownDetector = errors.New("unknown detector")
	ErrNoKey           = errors.New("mask: the hash strategy needs a session key")
	ErrBadRule         = errors.New("mask: invalid rule")
)

// det is a built-in detector's index; extra (gitleaks) rules follow them.
type det uint16

const (
	detAWSAccessKey det = iota
	detAWSSecretKey
	detGCP
	detAzure
	detGitHub
	detGitLab
	detSlack
	detStripe
	detOpenAI
	detAnthropic
	detJWT
	detPrivateKey
	detPasswordHash
	detURLPassword
	detSecret
	detEmail
	detCard
	detSSN
	detPhone
	detIBAN
	detIPv4
	detIPv6
	detDOB
	numBuiltin
)

type detInfo struct {
	name   string
	secret bool
	def    Strategy
}

var detectors = [numBuiltin]detInfo{
	detAWSAccessKey: {"aws-access-key", true, Redact},
	detAWSSecretKey: {"aws-secret-key", true, Redact},
	detGCP:          {"gcp-service-account", true, Redact},
	detAzure:        {"azure-storage-key", true, Redact},
	detGitHub:       {"github-token", true, Redact},
	detGitLab:       {"gitlab-token", true, Redact},
	detSlack:        {"slack-token", true, Redact},
	detStripe:       {"stripe-key", true, Redact},
	detOpenAI:       {"openai-key", true, Redact},
	detAnthropic:    {"anthropic-key", true, Redact},
	detJWT:          {"jwt", true, Redact},
	detPrivateKey:   {"private-key", true, Redact},
	detPasswordHash: {"password-hash", true, Redact},
	detURLPassword:  {"url-password", true, Redact},
	detSecret:       {"secret", true, Redact},
	detEmail:        {"email", false, Partial},
	detCard:         {"card", false, Partial},
	detSSN:          {"ssn", false, Redact},
	detPhone:        {"phone", false, Redact},
	detIBAN:         {"iban", false, Partial},
	detIPv4:         {"ipv4", false, Partial},
	detIPv6:         {"ipv6", false, Partial},
	detDOB:          {"dob", false, Redact},
}

// Detectors lists the built-in detector names in priority order.
func Detectors() []string {
	out := make([]string, numBuiltin)
	for i := range detectors {
		out[i] = detectors[i].name
	}
	return out
}

func detByName(name string) (det, bool) {
	for i := range detectors {
		if detectors[i].name == name {
			return det(i), true
		}
	}
	return 0, false
}

// ColumnRule masks every value of the columns whose name matches.
type ColumnRule struct {
	// Match is a glob (* and ?, case-insensitive) on the column name, or on
	// table.column / schema.table.column.
	Match    string
	Strategy Strategy
	// Label names the placeholder (<label>, <label:hash>) and, for Partial
	// and Inherit, the detector whose partial form and strategy apply.
	// Empty: derived from the pattern.
	Label string
	// TextOnly skips columns of non-text scalar types (bool, numbers,
	// dates, uuid, ...).
	TextOnly bool
}

// Override is one connection's changes to the Config.
type Override struct {
	Disabled bool                // masking off for this connection
	Enable   bool                // masking on for this connection even if the Config disables it
	Detect   map[string]Strategy // replaces these detectors' strategies
	Columns  []ColumnRule        // tried before the Config's rules
}

// Config says what is masked and how. The zero Config masks nothing; start
// from DefaultConfig.
type Config struct {
	Disabled bool
	// Detect maps detector names (see Detectors, and the IDs of Rules) to
	// their strategy; a missing name means the detector's default, Off
	// disables it.
	Detect map[string]Strategy
	// Columns are tried in order before the built-in column rules.
	Columns []ColumnRule
	// NoDefaultColumns drops the built-in column rules.
	NoDefaultColumns bool
	// Gitleaks is the path of a gitleaks TOML file as written in the
	// configuration; the caller loads it (LoadGitleaksFile) into Rules.
	Gitleaks string
	// Rules are extra secret detectors (gitleaks format), strategy Redact
	// unless Detect names their ID or "gitleaks".
	Rules []Rule
	// Connections are per-connection overrides by connection name.
	Connections map[string]Override
}

// DefaultConfig masks all secrets and the common personal data (email, card,
// ssn, phone, iban, date of birth by column name); IP addresses stay visible.
func DefaultConfig() Config {
	return Config{Detect: map[string]Strategy{}}
}

func defaultColumns() []ColumnRule {
	text := func(label string, pats ...string) []ColumnRule {
		var r []ColumnRule
		for _, p := range pats {
			r = append(r, ColumnRule{Match: p, Label: label, TextOnly: true})
		}
		return r
	}
	anyType := func(label string, pats ...string) []ColumnRule {
		var r []ColumnRule
		for _, p := range pats {
			r = append(r, ColumnRule{Match: p, Label: label})
		}
		return r
	}
	var r []ColumnRule
	r = append(r, text("password", "*password*", "*passwd*")...)
	r = append(r, text("secret", "*secret*")...)
	r = append(r, text("token", "*_token", "token")...)
	r = append(r, text("api-key", "*api_key*", "*apikey*")...)
	r = append(r, text("private-key", "*private_key*")...)
	r = append(r, anyType("ssn", "ssn", "*_ssn", "social_security*")...)
	r = append(r, anyType("dob", "dob", "*_dob", "date_of_birth", "birth_date", "birthdate", "birthday")...)
	r = append(r, anyType("card", "*card_number*", "*credit_card*", "cc_number")...)
	return r
}

// Rule is an extra secret detector, usually loaded from a gitleaks file.
type Rule struct {
	ID          string
	Description string
	Regex       *regexp.Regexp
	Keywords    []string // lower-case; the regexp runs only when one occurs
	SecretGroup int      // submatch to mask; 0 = the whole match
	Entropy     float64  // minimum Shannon entropy of the secret; 0 = any
}

// Masker masks values under one configuration and one session key. It is
// immutable and safe for concurrent use.
type Masker struct {
	disabled bool
	strat    []Strategy // per detector: builtin then rules; Off = disabled
	names    []string   // per detector
	rules    []Rule
	columns  []compiledRule
	key      []byte
	conns    map[string]*Masker
	anyScan  bool // some detector is on
}

type compiledRule struct {
	ColumnRule
	parts []string // lower-case pattern split at '.'
	label string
	det   int // detector of the label, or -1
}

// New builds a Masker. key is the session's HMAC key for the hash strategy;
// it is kept in memory only for the Masker's lifetime and never written out.
// New fails if a strategy names hash and the key is empty, or the Config
// names an unknown detector.
func New(cfg Config, key []byte) (*Masker, error) {
	m, err := build(&cfg, key, Override{})
	if err != nil {
		return nil, err
	}
	if len(cfg.Connections) > 0 {
		m.conns = make(map[string]*Masker, len(cfg.Connections))
		for name, o := range cfg.Connections {
			cm, err := build(&cfg, key, o)
			if err != nil {
				return nil, fmt.Errorf("connection %s: %w", name, err)
			}
			m.conns[name] = cm
		}
	}
	return m, nil
}

func build(cfg *Config, key []byte, o Override) (*Masker, error) {
	m := &Masker{disabled: (cfg.Disabled || o.Disabled) && !o.Enable, key: append([]byte(nil), key...)}
	n := int(numBuiltin) + len(cfg.Rules)
	m.strat = make([]Strategy, n)
	m.names = make([]string, n)
	for i := range detectors {
		m.strat[i] = detectors[i].def
		m.names[i] = detectors[i].name
	}
	m.strat[detIPv4], m.strat[detIPv6] = Off, Off
	m.rules = append([]Rule(nil), cfg.Rules...)
	for i, r := range cfg.Rules {
		if r.Regex == nil || r.ID == "" {
			return nil, fmt.Errorf("%w: gitleaks rule %d has no id or regex", ErrBadRule, i)
		}
		m.strat[int(numBuiltin)+i] = Redact
		m.names[int(numBuiltin)+i] = r.ID
	}
	apply := func(d map[string]Strategy) error {
		// Groups first so that a single detector named next to its group wins.
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			gi, gj := isGroup(keys[i]), isGroup(keys[j])
			if gi != gj {
				return gi
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			s := d[k]
			hit := false
			for i := range m.names {
				if inGroup(k, i, m.names[i]) {
					hit = true
					if s == Inherit {
						if i < int(numBuiltin) {
							m.strat[i] = detectors[i].def
						} else {
							m.strat[i] = Redact
						}
					} else {
						m.strat[i] = s
					}
				}
			}
			if !hit && k != "gitleaks" {
				return fmt.Errorf("%w %q", ErrUnknownDetector, k)
			}
		}
		return nil
	}
	if err := apply(cfg.Detect); err != nil {
		return nil, err
	}
	if err := apply(o.Detect); err != nil {
		return nil, err
	}
	rules := append(append([]ColumnRule(nil), o.Columns...), cfg.Columns...)
	if !cfg.NoDefaultColumns {
		rules = append(rules, defaultColumns()...)
	}
	for _, r := range rules {
		c := compiledRule{ColumnRule: r, det: -1}
		c.parts = strings.Split(strings.ToLower(r.Match), ".")
		c.label = r.Label
		if c.label == "" {
			c.label = strings.Trim(strings.ReplaceAll(c.parts[len(c.parts)-1], "*", ""), "_?.")
			if c.label == "" {
				c.label = "masked"
			}
		}
		for i, n := range m.names {
			if n == c.label {
				c.det = i
			}
		}
		m.columns = append(m.columns, c)
	}
	for i, s := range m.strat {
		if s != Off {
			m.anyScan = true
		}
		if s == Hash && len(key) == 0 {
			return nil, fmt.Errorf("%w (detector %s)", ErrNoKey, m.names[i])
		}
	}
	for _, c := range m.columns {
		if m.columnStrategy(&c) == Hash && len(key) == 0 {
			return nil, fmt.Errorf("%w (column rule %s)", ErrNoKey, c.Match)
		}
	}
	return m, nil
}

func isGroup(k string) bool {
	return k == "all" || k == "secrets" || k == "personal" || k == "gitleaks"
}

func inGroup(k string, i int, name string) bool {
	switch k {
	case "all":
		return true
	case "secrets":
		return i >= int(numBuiltin) || detectors[i].secret
	case "personal":
		return i < int(numBuiltin) && !detectors[i].secret
	case "gitleaks":
		return i >= int(numBuiltin)
	}
	return k == name
}

// ForConnection returns the Masker for the named connection: the Config's
// override for it when there is one, else m itself.
func (m *Masker) ForConnection(name string) *Masker {
	if c, ok := m.conns[name]; ok {
		return c
	}
	return m
}

// Enabled reports whether this Masker masks anything at all.
func (m *Masker) Enabled() bool { return !m.disabled }

func (m *Masker) columnStrategy(c *compiledRule) Strategy {
	if c.Strategy != Inherit {
		return c.Strategy
	}
	if c.det >= 0 {
		s := m.strat[c.det]
		if s == Off {
			return Redact
		}
		return s
	}
	return Redact
}

// Counts is how many values were masked per detector name ("email") and,
// for column rules, per column ("column:users.password"). Nil when nothing
// was masked.
type Counts map[string]int

// Add adds o into c and returns c (allocated when nil and o is not empty).
func (c Counts) Add(o Counts) Counts {
	for k, v := range o {
		if c == nil {
			c = Counts{}
		}
		c[k] += v
	}
	return c
}

// Total is the sum over all keys.
func (c Counts) Total() int {
	t := 0
	for _, v := range c {
		t += v
	}
	return t
}
