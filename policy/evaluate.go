package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/guardrun/guardrun/policy/sql"
	"gopkg.in/yaml.v3"
)

// rule is one loaded rule. Patterns are already lower-cased where matching
// ignores case.
type rule struct {
	Name        string     `json:"name"`
	Source      string     `json:"-"`
	Connections []string   `json:"connection,omitempty"`
	Users       []string   `json:"user,omitempty"`
	Groups      []string   `json:"group,omitempty"`
	Kinds       []sql.Kind `json:"kinds,omitempty"`
	Tables      []string   `json:"tables,omitempty"`
	Functions   []string   `json:"functions,omitempty"`
	Flags       []sql.Flag `json:"flags,omitempty"`
	When        string     `json:"when,omitempty"`
	Action      Action     `json:"action"`
	Message     string     `json:"message,omitempty"`

	prg     cel.Program
	builtin bool
}

// RuleInfo describes one rule of a policy, for `guardrun policy explain`.
type RuleInfo struct {
	Name    string `json:"name"`
	Source  string `json:"source"` // "guardrun.yaml:14" or "builtin:baseline"
	Action  Action `json:"action"`
	Message string `json:"message,omitempty"`
}

// Rules lists the rules in force, the project's first, in evaluation order.
func (p *Policy) Rules() []RuleInfo {
	out := make([]RuleInfo, len(p.rules))
	for i, r := range p.rules {
		out[i] = RuleInfo{Name: r.Name, Source: r.Source, Action: r.Action, Message: r.Message}
	}
	return out
}

// File is the file the policy came from ("" for the baseline alone).
func (p *Policy) File() string { return p.file }

// Default is the action when no rule matches.
func (p *Policy) Default() Action { return p.def }

// IncludesBaseline reports whether builtin:baseline is part of the policy.
func (p *Policy) IncludesBaseline() bool { return p.baseline }

// ApprovalTimeout is how long a held statement waits for a human.
func (p *Policy) ApprovalTimeout() time.Duration { return p.timeout }

// Masking is the raw `masking:` node, for the masking package to parse
// (nil when the policy has none).
func (p *Policy) Masking() *yaml.Node { return p.masking }

// Describe says what the policy is made of: "baseline + 4 rules",
// "baseline", "2 rules, default deny".
func (p *Policy) Describe() string {
	var parts []string
	if p.baseline {
		parts = append(parts, "baseline")
	}
	switch {
	case p.project == 1:
		parts = append(parts, "1 rule")
	case p.project > 1:
		parts = append(parts, fmt.Sprintf("%d rules", p.project))
	case !p.baseline:
		parts = append(parts, "no rules")
	}
	s := strings.Join(parts, " + ")
	if p.override > 0 {
		s += fmt.Sprintf(" (%d replacing baseline rules)", p.override)
	}
	if p.def != Allow {
		s += ", default " + string(p.def)
	}
	return s
}

// Digest is the SHA-256 of the policy's canonical form (rules in force,
// default, timeout, masking), for the session record. Formatting, comments
// and line numbers do not change it.
func (p *Policy) Digest() string { return p.digest }

func (p *Policy) computeDigest() string {
	canon := struct {
		Baseline bool    `json:"baseline"`
		Default  Action  `json:"default"`
		Timeout  string  `json:"approval_timeout"`
		Rules    []*rule `json:"rules"`
		Masking  any     `json:"masking,omitempty"`
		Version  int     `json:"v"`
	}{p.baseline, p.def, p.timeout.String(), p.rules, canonicalNode(p.masking), 1}
	b, err := json.Marshal(canon)
	if err != nil {
		panic("policy: digest: " + err.Error())
	}
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// canonicalNode turns a YAML node into plain values (no comments, no
// styles, no positions).
func canonicalNode(n *yaml.Node) any {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			return canonicalNode(n.Content[0])
		}
		return nil
	case yaml.AliasNode:
		return canonicalNode(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = canonicalNode(c)
		}
		return out
	case yaml.MappingNode:
		var out [][2]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, [2]any{n.Content[i].Value, canonicalNode(n.Content[i+1])})
		}
		return out
	}
	return [2]string{n.Tag, n.Value}
}

// Evaluate judges one statement. The most restrictive matching rule wins
// (deny > approve > allow); with no match the policy's default decides
// (rule "default"). PREPARE is judged by the statement it prepares.
func (p *Policy) Evaluate(in Input) Decision {
	if in.Statement.Kind == "prepare" && in.Statement.Inner != nil {
		inner := *in.Statement.Inner
		in.Statement = inner
	}
	ev := &evaluation{in: in}
	type hit struct {
		r       *rule
		reasons []string
	}
	var hits []hit
	for _, r := range p.rules {
		if ok, reasons := r.match(ev); ok {
			hits = append(hits, hit{r, reasons})
		}
	}
	if len(hits) == 0 {
		d := Decision{Action: p.def, Rule: "default"}
		if p.def != Allow {
			d.Reasons = []string{fmt.Sprintf("no rule allows %s; the policy's default is %s", in.Statement.Headline(), p.def)}
		}
		if p.def == Approve {
			d.Timeout = p.timeout
		}
		return d
	}
	best := Allow
	for _, h := range hits {
		if h.r.Action.Rank() > best.Rank() {
			best = h.r.Action
		}
	}
	d := Decision{Action: best}
	for _, h := range hits {
		d.Rules = append(d.Rules, h.r.Name)
		if h.r.Action != best {
			continue
		}
		if d.Rule == "" {
			d.Rule = h.r.Name
		}
		if d.Message == "" {
			d.Message = h.r.Message
		}
		for _, why := range h.reasons {
			if !slices.Contains(d.Reasons, why) {
				d.Reasons = append(d.Reasons, why)
			}
		}
	}
	if best == Approve {
		d.Timeout = p.timeout
	}
	return d
}

// evaluation carries one statement through the rules; the CEL activation
// is built once, on first use.
type evaluation struct {
	in  Input
	act map[string]any
}

func (ev *evaluation) activation() map[string]any {
	if ev.act != nil {
		return ev.act
	}
	st := ev.in.Statement
	strs := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	kinds := make([]string, 0, len(st.Kinds)+1)
	for _, k := range stmtKinds(st) {
		kinds = append(kinds, string(k))
	}
	flags := make([]string, len(st.Flags))
	for i, f := range st.Flags {
		flags[i] = string(f)
	}
	ev.act = map[string]any{
		"connection": ev.in.Connection,
		"conn_type":  ev.in.ConnType,
		"user":       strings.ToLower(ev.in.Identity.Email),
		"verified":   ev.in.Identity.Verified,
		"groups":     strs(ev.in.Identity.Groups),
		"kind":       string(st.Kind),
		"kinds":      kinds,
		"object":     st.Object,
		"tables":     strs(tables(st)),
		"reads":      strs(st.Reads),
		"writes":     strs(st.Writes),
		"functions":  strs(st.Functions),
		"flags":      flags,
		"sql":        st.Text,
	}
	return ev.act
}

func stmtKinds(st sql.Statement) []sql.Kind {
	if len(st.Kinds) > 0 {
		return st.Kinds
	}
	return []sql.Kind{st.Kind}
}

func tables(st sql.Statement) []string {
	out := slices.Clone(st.Writes)
	for _, r := range st.Reads {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// match reports whether r matches and, if so, why in words.
func (r *rule) match(ev *evaluation) (bool, []string) {
	in, st := ev.in, ev.in.Statement
	strict := r.Action == Allow // allow rules must cover everything; see Parse
	if len(r.Connections) > 0 && !anyGlob(r.Connections, in.Connection) {
		return false, nil
	}
	if len(r.Users) > 0 {
		email := strings.ToLower(in.Identity.Email)
		if email == "" || strict && !in.Identity.Verified || !anyGlob(r.Users, email) {
			return false, nil
		}
	}
	if len(r.Groups) > 0 {
		if strict && !in.Identity.Verified {
			return false, nil
		}
		ok := false
		for _, g := range in.Identity.Groups {
			ok = ok || anyGlob(r.Groups, g)
		}
		if !ok {
			return false, nil
		}
	}
	var reasons []string
	if len(r.Kinds) > 0 {
		ks := stmtKinds(st)
		var hit []sql.Kind
		for _, k := range ks {
			if slices.Contains(r.Kinds, k) {
				hit = append(hit, k)
			}
		}
		if len(hit) == 0 || strict && len(hit) < len(ks) {
			return false, nil
		}
		if hit[0] == st.Kind {
			reasons = append(reasons, st.Headline())
		} else {
			reasons = append(reasons, fmt.Sprintf("%s inside %s", strings.ToUpper(string(hit[0])), st.Headline()))
		}
	}
	if len(r.Tables) > 0 {
		ts := tables(st)
		var hit []string
		for _, t := range ts {
			if anyTable(r.Tables, t) {
				hit = append(hit, t)
			}
		}
		if len(hit) == 0 || strict && len(hit) < len(ts) {
			return false, nil
		}
		for _, t := range hit {
			verb := "reads "
			if slices.Contains(st.Writes, t) {
				verb = "writes "
				if st.Has(sql.FlagDDL) || st.Has(sql.FlagPrivilege) {
					verb = "changes "
				}
			}
			reasons = append(reasons, verb+t)
		}
	}
	if len(r.Functions) > 0 {
		var hit []string
		for _, f := range st.Functions {
			if anyFunction(r.Functions, f) {
				hit = append(hit, f)
			}
		}
		if len(hit) == 0 || strict && len(hit) < len(st.Functions) {
			return false, nil
		}
		reasons = append(reasons, "calls "+strings.Join(hit, ", "))
	}
	if len(r.Flags) > 0 {
		var hit []sql.Flag
		for _, f := range st.Flags {
			if slices.Contains(r.Flags, f) {
				hit = append(hit, f)
			}
		}
		if len(hit) == 0 || strict && len(hit) < len(st.Flags) {
			return false, nil
		}
		var whys []string
		for _, f := range r.Flags { // in the rule's order
			if slices.Contains(hit, f) {
				whys = append(whys, st.Why(f)...)
			}
		}
		// What a flag says is more precise than the headline of a kind.
		reasons = append(whys, reasons...)
	}
	if r.prg != nil {
		out, _, err := r.prg.Eval(ev.activation())
		switch {
		case err != nil && strict:
			return false, nil
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("the condition of rule %s could not be evaluated (%s), so it counts as matched", r.Name, oneLine(err.Error())))
		default:
			if b, ok := out.Value().(bool); !ok || !b {
				return false, nil
			}
			if len(reasons) == 0 {
				reasons = append(reasons, fmt.Sprintf("%s matches the condition of rule %s", st.Headline(), r.Name))
			}
		}
	}
	if len(reasons) == 0 {
		where := ""
		if in.Connection != "" {
			where = " on connection " + in.Connection
		}
		reasons = append(reasons, fmt.Sprintf("rule %s covers every statement%s", r.Name, where))
	}
	return true, reasons
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// anyTable matches a table name against patterns; see Parse for the rules.
func anyTable(patterns []string, name string) bool {
	name = strings.ToLower(name)
	parts := strings.Split(name, ".")
	table := parts[len(parts)-1]
	var qualified string
	switch len(parts) {
	case 1:
		schema := "public"
		if strings.HasPrefix(table, "pg_") {
			schema = "pg_catalog"
		}
		qualified = schema + "." + table
	default:
		qualified = parts[len(parts)-2] + "." + table // a catalog (database) prefix is ignored
	}
	for _, p := range patterns {
		target := qualified
		if !strings.Contains(p, ".") {
			target = table
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}

func anyFunction(patterns []string, name string) bool {
	name = strings.ToLower(name)
	base := name[strings.LastIndexByte(name, '.')+1:]
	for _, p := range patterns {
		target := name
		if !strings.Contains(p, ".") {
			target = base
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}
