package policy

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guardrun/guardrun/policy/sql"
	"gopkg.in/yaml.v3"
)

// DefaultApprovalTimeout is how long a held statement waits for a human
// when the policy does not say.
const DefaultApprovalTimeout = 2 * time.Minute

// Baseline include name.
const includeBaseline = "builtin:baseline"

// ParseError is a policy that does not load, with where it went wrong.
type ParseError struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int // 1-based; 0 when unknown
	Msg  string
}

func (e *ParseError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// ParseErrors is every problem found in a policy, in file order. Parse
// returns it when there is more than one.
type ParseErrors []*ParseError

func (es ParseErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *ParseError.
func (es ParseErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Policy is a loaded policy: the project's rules, the baseline's unless the
// project opted out, a default action and an approval timeout. It is
// immutable and safe for concurrent use.
type Policy struct {
	file     string
	baseline bool          // builtin:baseline included
	def      Action        // when no rule matches
	timeout  time.Duration // approval timeout
	rules    []*rule       // project rules in file order, then the baseline's not overridden
	project  int           // how many rules the project defines
	override int           // how many of them replace a baseline rule
	masking  *yaml.Node
	digest   string
}

// Parse reads the `policy:` section of a guardrun.yaml from its YAML node,
// so that every error names file and line. A nil node (no policy section)
// gives the baseline. Parse never returns a half-loaded policy: on any
// error the policy is nil.
//
// The schema (every key is optional):
//
//	policy:
//	  include: [builtin:baseline]   # the default; include: [] starts from nothing
//	  default: allow                # allow | approve | deny, when no rule matches (default allow)
//	  approval_timeout: 2m          # how long a held statement waits for a human (default 2m)
//	  rules:
//	    - name: prod-writes         # names the rule in decisions; a project rule named like
//	                                # a baseline rule replaces it (to turn one off: action: allow)
//	      connection: prod-*        # connection name or glob, or a list of them
//	      user: "*@contractors.example"   # email or glob, or a list
//	      group: dba                # group (from SSO) or glob, or a list
//	      kinds: [insert, update, delete] # statement kinds (select, insert, update, delete,
//	                                # merge, truncate, create, alter, drop, grant, revoke,
//	                                # role, set, copy, do, call, explain, unknown, ...)
//	      tables: [public.orders, billing.*] # schema-qualified globs
//	      functions: [pg_sleep]     # function names or globs
//	      flags: [no_where]         # no_where, server_io, privilege, set_config, unknown,
//	                                # ddl, write, procedural, alter_system, drop_database,
//	                                # copy_from, dynamic_sql
//	      when: 'size(writes) > 2'  # CEL; variables: connection, conn_type, user, verified,
//	                                # groups, kind, kinds, object, tables, reads, writes,
//	                                # functions, flags, sql
//	      action: approve           # allow | approve | deny (required)
//	      message: ask in #db first # returned to the agent with a deny, shown with an approval
//	  masking: ...                  # read by the masking package
//
// A rule matches a statement when every condition it has matches (a rule
// with none matches everything). Of all matching rules the most restrictive
// action wins: deny over approve over allow. Lists match when any entry
// does. Conditions on what a statement touches fail closed:
//
//   - For deny and approve rules, kinds, tables and functions match when
//     ANY of the statement's do, and flags when the statement has any of them.
//   - For allow rules they match only when ALL of the statement's kinds
//     (including a DELETE nested in a CTE), tables and functions are
//     covered, and every flag the statement has is listed; a statement
//     with none of them does not match. user and group match an allow rule
//     only for an identity verified by SSO.
//   - Table names: a pattern with a dot is matched against schema.table; a
//     statement's unqualified table X is taken as public.X (pg_catalog.X when
//     X starts with pg_), since guardrun does not follow search_path (to be
//     strict, approve SET search_path: kinds [set] with when: 'object ==
//     "search_path"'). A pattern without a dot matches the table in any
//     schema. Matching is case-insensitive.
//   - Function patterns without a dot match the function's own name in any
//     schema; with a dot they match the name as the statement wrote it.
//   - A CEL condition that fails at run time counts as matched for deny and
//     approve rules and as not matched for allow rules; the reason says so.
//
// The baseline (builtin:baseline) denies server-side I/O (server-io),
// ALTER SYSTEM (alter-system), role and privilege changes (privilege) and
// DROP DATABASE (drop-database); it holds for approval DDL (ddl), TRUNCATE
// (truncate), UPDATE/DELETE without WHERE (no-where), procedural code
// (procedural), SQL run from a string (dynamic-sql), statements guardrun
// cannot classify (unknown) and COPY FROM (copy-from); everything else is
// allowed by the default.
func Parse(file string, node *yaml.Node) (*Policy, error) {
	p := &parser{file: file}
	pol := p.policy(node)
	if len(p.errs) == 1 {
		return nil, p.errs[0]
	}
	if len(p.errs) > 1 {
		return nil, p.errs
	}
	return pol, nil
}

// LoadFile parses a standalone policy file: either a whole guardrun.yaml
// (its policy: key is used; without one the baseline applies) or a bare
// policy mapping (include, default, approval_timeout, rules, masking at the
// top). name is used in error messages.
func LoadFile(name string, data []byte) (*Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	top := &doc
	if top.Kind == 0 { // an empty file
		return Parse(name, nil)
	}
	if top.Kind == yaml.DocumentNode {
		if len(top.Content) == 0 {
			return Parse(name, nil)
		}
		top = top.Content[0]
	}
	if top.Kind != yaml.MappingNode {
		if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
			return Parse(name, nil)
		}
		return nil, &ParseError{File: name, Line: top.Line, Col: top.Column, Msg: "want a mapping (a guardrun.yaml or a policy)"}
	}
	var bare bool
	for i := 0; i+1 < len(top.Content); i += 2 {
		switch top.Content[i].Value {
		case "policy":
			return Parse(name, top.Content[i+1])
		case "include", "default", "approval_timeout", "rules", "masking":
			bare = true
		}
	}
	if bare {
		return Parse(name, top)
	}
	return Parse(name, nil)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ParseError{File: file, Line: line, Msg: m[2]}
	}
	return &ParseError{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

type parser struct {
	file string
	errs ParseErrors
	cel  *celEnv
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &ParseError{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func (p *parser) policy(node *yaml.Node) *Policy {
	pol := &Policy{file: p.file, baseline: true, def: Allow, timeout: DefaultApprovalTimeout}
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	if node != nil && node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	var project []*rule
	switch {
	case node == nil, node.Kind == yaml.ScalarNode && node.Tag == "!!null":
	case node.Kind != yaml.MappingNode:
		p.errorf(node, "policy: want a mapping with include, default, approval_timeout, rules or masking")
	default:
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if seen[k.Value] {
				p.errorf(k, "policy: %s given twice", k.Value)
			}
			seen[k.Value] = true
			switch k.Value {
			case "include":
				pol.baseline = false
				for _, s := range p.strings(v, "include") {
					if s.value != includeBaseline {
						p.errorf(s.node, "unknown include %q (want %s)", s.value, includeBaseline)
						continue
					}
					pol.baseline = true
				}
			case "default":
				if a, ok := p.action(v); ok {
					pol.def = a
				}
			case "approval_timeout":
				d, err := time.ParseDuration(v.Value)
				switch {
				case v.Kind != yaml.ScalarNode || err != nil:
					p.errorf(v, "approval_timeout: want a duration like 90s or 2m, got %q", v.Value)
				case d <= 0 || d > 24*time.Hour:
					p.errorf(v, "approval_timeout: want a duration between 1s and 24h, got %s", v.Value)
				default:
					pol.timeout = d
				}
			case "rules":
				project = p.rules(v)
			case "masking":
				pol.masking = v
			default:
				p.errorf(k, "unknown policy field %q (want include, default, approval_timeout, rules or masking)", k.Value)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil
	}
	pol.project = len(project)
	pol.rules = project
	if pol.baseline {
		names := map[string]bool{}
		for _, r := range project {
			names[r.Name] = true
		}
		for _, r := range baselineRules() {
			if names[r.Name] {
				pol.override++
				continue
			}
			pol.rules = append(pol.rules, r)
		}
	}
	pol.digest = pol.computeDigest()
	return pol
}

type str struct {
	value string
	node  *yaml.Node
}

// strings reads a scalar or a sequence of scalars.
func (p *parser) strings(n *yaml.Node, field string) []str {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			p.errorf(n, "%s: empty", field)
			return nil
		}
		return []str{{n.Value, n}}
	case yaml.SequenceNode:
		out := make([]str, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				p.errorf(c, "%s: want a string", field)
				continue
			}
			out = append(out, str{c.Value, c})
		}
		return out
	}
	p.errorf(n, "%s: want a string or a list of strings", field)
	return nil
}

func (p *parser) action(n *yaml.Node) (Action, bool) {
	switch a := Action(n.Value); {
	case n.Kind == yaml.ScalarNode && (a == Allow || a == Approve || a == Deny):
		return a, true
	}
	p.errorf(n, "unknown action %q (want allow, deny or approve)", n.Value)
	return "", false
}

func (p *parser) rules(n *yaml.Node) []*rule {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "rules: want a list of rules")
		return nil
	}
	var out []*rule
	names := map[string]int{}
	for _, rn := range n.Content {
		r := p.rule(rn)
		if r == nil {
			continue
		}
		if line, dup := names[r.Name]; dup {
			p.errorf(rn, "rule %q is defined twice (first on line %d)", r.Name, line)
			continue
		}
		names[r.Name] = rn.Line
		out = append(out, r)
	}
	return out
}

var ruleFields = []string{"name", "connection", "user", "group", "kinds", "tables", "functions", "flags", "when", "action", "message"}

func (p *parser) rule(n *yaml.Node) *rule {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "rules: each rule is a mapping with at least an action")
		return nil
	}
	before := len(p.errs)
	r := &rule{Source: fmt.Sprintf("%s:%d", filepath.Base(p.file), n.Line)}
	if p.file == "" {
		r.Source = fmt.Sprintf("line %d", n.Line)
	}
	var actionNode *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, "rule: %s given twice", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
				p.errorf(v, "name: want a non-empty string")
			}
			r.Name = strings.TrimSpace(v.Value)
		case "connection":
			r.Connections = p.globs(v, "connection", false)
		case "user":
			r.Users = p.globs(v, "user", true)
		case "group":
			r.Groups = p.globs(v, "group", false)
		case "kinds":
			known := sql.Kinds()
			for _, s := range p.strings(v, "kinds") {
				k := sql.Kind(strings.ToLower(s.value))
				if !slices.Contains(known, k) {
					p.errorf(s.node, "unknown kind %q (want one of %s)", s.value, joinKinds(known))
					continue
				}
				r.Kinds = append(r.Kinds, k)
			}
		case "tables":
			r.Tables = p.globs(v, "tables", true)
		case "functions":
			r.Functions = p.globs(v, "functions", true)
		case "flags":
			known := sql.Flags()
			for _, s := range p.strings(v, "flags") {
				f := sql.Flag(strings.ToLower(s.value))
				if !slices.Contains(known, f) {
					p.errorf(s.node, "unknown flag %q (want one of %s)", s.value, joinFlags(known))
					continue
				}
				r.Flags = append(r.Flags, f)
			}
		case "when":
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
				p.errorf(v, "when: want a CEL expression")
				continue
			}
			if p.cel == nil {
				env, err := newCELEnv()
				if err != nil {
					p.errorf(v, "when: %v", err)
					continue
				}
				p.cel = env
			}
			prg, err := p.cel.compile(v.Value)
			if err != nil {
				p.errorf(v, "when: %v", err)
				continue
			}
			r.When, r.prg = v.Value, prg
		case "action":
			actionNode = v
			if a, ok := p.action(v); ok {
				r.Action = a
			}
		case "message":
			if v.Kind != yaml.ScalarNode {
				p.errorf(v, "message: want a string")
			}
			r.Message = v.Value
		default:
			p.errorf(k, "unknown rule field %q (want %s)", k.Value, strings.Join(ruleFields, ", "))
		}
	}
	if actionNode == nil {
		p.errorf(n, "rule %s has no action (want allow, deny or approve)", orLine(r.Name, n.Line))
	}
	if r.Name == "" {
		r.Name = r.Source
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

func orLine(name string, line int) string {
	if name != "" {
		return strconv.Quote(name)
	}
	return fmt.Sprintf("on line %d", line)
}

// globs reads patterns and checks their syntax.
func (p *parser) globs(n *yaml.Node, field string, fold bool) []string {
	var out []string
	for _, s := range p.strings(n, field) {
		v := strings.TrimSpace(s.value)
		if fold {
			v = strings.ToLower(v)
		}
		if v == "" {
			p.errorf(s.node, "%s: empty pattern", field)
			continue
		}
		if _, err := path.Match(v, ""); errors.Is(err, path.ErrBadPattern) {
			p.errorf(s.node, "%s: bad pattern %q (globs use *, ? and [...])", field, s.value)
			continue
		}
		out = append(out, v)
	}
	return out
}

func joinKinds(ks []sql.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func joinFlags(fs []sql.Flag) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}
