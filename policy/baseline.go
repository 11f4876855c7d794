package policy

import (
	"gopkg.in/yaml.v3"
)

// baselineYAML is builtin:baseline, written in the same schema a project
// uses, so that it reads as documentation and goes through the same parser.
const baselineYAML = `
rules:
  - name: alter-system
    flags: [alter_system]
    action: deny
    message: the baseline policy does not let an agent change the server's configuration
  - name: server-io
    flags: [server_io]
    action: deny
    message: the baseline policy does not let an agent reach the database server's files, programs or network
  - name: privilege
    flags: [privilege]
    action: deny
    message: the baseline policy does not let an agent change roles or privileges
  - name: drop-database
    flags: [drop_database]
    action: deny
    message: the baseline policy does not let an agent drop a database
  - name: ddl
    flags: [ddl]
    action: approve
  - name: truncate
    kinds: [truncate]
    action: approve
  - name: no-where
    flags: [no_where]
    action: approve
  - name: procedural
    flags: [procedural]
    action: approve
  - name: dynamic-sql
    flags: [dynamic_sql]
    action: approve
  - name: unknown
    flags: [unknown]
    action: approve
  - name: copy-from
    flags: [copy_from]
    action: approve
`

// baselineRules parses the baseline afresh: rules are immutable once built,
// but no package-level state is kept.
func baselineRules() []*rule {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(baselineYAML), &doc); err != nil {
		panic("policy: builtin:baseline does not parse: " + err.Error())
	}
	p := &parser{file: includeBaseline}
	rules := p.rules(doc.Content[0].Content[1])
	if len(p.errs) > 0 {
		panic("policy: builtin:baseline does not load: " + p.errs.Error())
	}
	for _, r := range rules {
		r.Source = includeBaseline
		r.builtin = true
	}
	return rules
}

// Baseline returns the built-in policy that applies when a project has
// none: builtin:baseline, default allow, approval timeout 2m.
func Baseline() *Policy {
	p, err := Parse("", nil)
	if err != nil {
		panic("policy: baseline: " + err.Error())
	}
	return p
}
