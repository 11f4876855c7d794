package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/spf13/cobra"
)

// NewCmdPolicy builds `guardrun policy` with its check and explain verbs.
func NewCmdPolicy(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Lint the policy, and see how a statement would be judged and why",
		Long: `The policy in guardrun.yaml (under policy:) decides, for every statement an
agent sends, whether it runs, waits for a human's approval, or is refused.
Without one, the built-in baseline applies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdPolicyCheck(f, nil), NewCmdPolicyExplain(f, nil))
	return cmd
}

type policyCheckOptions struct {
	IO     *IOStreams
	Config func() (*Config, error)
	File   string // lint this file instead of the project's policy
}

// NewCmdPolicyCheck builds `guardrun policy check [FILE]`.
func NewCmdPolicyCheck(f *Factory, runF func(context.Context, *policyCheckOptions) error) *cobra.Command {
	opts := &policyCheckOptions{IO: f.IO, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check that the policy loads: rules, globs, CEL conditions and masking",
		Long: `Loads the policy the way a session would and reports every problem with its
file and line. FILE may be a guardrun.yaml or a file holding only a policy
(include, default, approval_timeout, rules, masking at the top); without FILE
the project's guardrun.yaml is checked.`,
		Example: `  guardrun policy check
  guardrun policy check policies/strict.yaml`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completePolicyFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.File = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return policyCheckRun(cmd.Context(), opts)
		},
	}
	return cmd
}

// loadPolicyFor loads the policy explain and check work on: the named file,
// or the project's, or the baseline. name is how to refer to where it came
// from ("guardrun.yaml", "built-in baseline").
func loadPolicyFor(config func() (*Config, error), file string) (pol *policy.Policy, name string, err error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, file, &HintError{Err: fmt.Errorf("cannot read %s: %w", file, errors.Unwrap(err)), Hint: "name a guardrun.yaml or a policy file"}
		}
		pol, err := policy.LoadFile(file, data)
		return pol, file, err
	}
	cfg, err := config()
	if err != nil {
		return nil, "", err
	}
	if cfg.Policy == nil {
		return policy.Baseline(), "", nil
	}
	pol, err = policy.Parse(cfg.PolicyFile, cfg.Policy)
	return pol, cfg.PolicyFile, err
}

func policyCheckRun(ctx context.Context, opts *policyCheckOptions) error {
	pol, name, err := loadPolicyFor(opts.Config, opts.File)
	if err == nil {
		if _, merr := mask.ParseConfig(name, pol.Masking()); merr != nil {
			err = merr
		}
	}
	var es policy.ParseErrors
	switch {
	case errors.As(err, &es):
		for _, e := range es {
			printError(opts.IO.ErrOut, e)
		}
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: hint: %d problems; guardrun refuses to open tunnels until the policy loads\n", len(es))
		return errSilent
	case err != nil:
		var he *HintError
		if errors.As(err, &he) {
			return err
		}
		return &HintError{Err: err, Hint: "guardrun refuses to open tunnels until the policy loads"}
	}
	if name == "" {
		where := "no guardrun.yaml found"
		if cfg, cerr := opts.Config(); cerr == nil && cfg != nil && cfg.ProjectFile != "" {
			where = filepath.Base(cfg.ProjectFile) + " has no policy section"
		}
		fmt.Fprintf(opts.IO.Out, "%s · the built-in baseline applies\n", where)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "%s: ok · %s\n", name, pol.Describe())
	return nil
}

type policyExplainOptions struct {
	IO     *IOStreams
	Config func() (*Config, error)

	File       string   // judge with this policy file instead of the project's
	Connection string   // connection name ("" = the only one, or none)
	As         string   // email to judge as (a verified identity)
	Groups     []string // groups of that identity
	Output     string   // text or json
	SQL        string   // "-" reads standard input
}

// NewCmdPolicyExplain builds `guardrun policy explain`.
func NewCmdPolicyExplain(f *Factory, runF func(context.Context, *policyExplainOptions) error) *cobra.Command {
	opts := &policyExplainOptions{IO: f.IO, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "explain [flags] SQL",
		Short: "Show how the policy judges a statement: classification, matching rules, decision",
		Long: `Classifies SQL with PostgreSQL's own parser and judges each statement with the
policy, printing what the statement does, every rule that matches it and the
decision, as a session would make it. SQL "-" reads standard input.`,
		Example: `  guardrun policy explain "DELETE FROM orders"
  guardrun policy explain --connection prod --as jane@acme.dev "UPDATE users SET plan = 'pro'"
  guardrun policy explain --output json - < migration.sql`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.SQL = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return policyExplainRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Connection, "connection", "c", "", "judge as on this connection (default: the only one configured)")
	cmd.Flags().StringVar(&opts.As, "as", "", "judge as this signed-in user (email)")
	cmd.Flags().StringSliceVar(&opts.Groups, "group", nil, "groups of the --as user (repeat or comma-separate)")
	cmd.Flags().StringVar(&opts.File, "policy", "", "use this policy file instead of the project's")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("policy", completePolicyFiles)
	return cmd
}

// explainedStatement is one statement of `policy explain --output json`.
type explainedStatement struct {
	Statement sql.Statement     `json:"statement"`
	Summary   []string          `json:"summary"`
	Decision  policy.Decision   `json:"decision"`
	Matched   []policy.RuleInfo `json:"matched"`
}

type explainOutput struct {
	Policy struct {
		File     string `json:"file,omitempty"`
		Describe string `json:"describe"`
		Digest   string `json:"digest"`
	} `json:"policy"`
	Connection string               `json:"connection,omitempty"`
	ConnType   string               `json:"conn_type"`
	User       string               `json:"user,omitempty"`
	Groups     []string             `json:"groups,omitempty"`
	Statements []explainedStatement `json:"statements"`
}

func policyExplainRun(ctx context.Context, opts *policyExplainOptions) error {
	if opts.Output != "text" && opts.Output != "json" && opts.Output != "" {
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json"}
	}
	text := opts.SQL
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(opts.IO.In, 16<<20))
		if err != nil {
			return fmt.Errorf("cannot read standard input: %w", err)
		}
		text = string(b)
	}
	pol, name, err := loadPolicyFor(opts.Config, opts.File)
	if err != nil {
		var he *HintError
		if errors.As(err, &he) {
			return err
		}
		return &HintError{Err: err, Hint: "fix the policy first: guardrun policy check"}
	}
	conn, connType, err := explainConnection(opts)
	if err != nil {
		return err
	}
	var out explainOutput
	out.Policy.File, out.Policy.Describe, out.Policy.Digest = name, pol.Describe(), pol.Digest()
	out.Connection, out.ConnType, out.User, out.Groups = conn, connType, opts.As, opts.Groups
	id := policy.Identity{Email: opts.As, Groups: opts.Groups, Verified: opts.As != ""}
	rules := map[string]policy.RuleInfo{}
	for _, r := range pol.Rules() {
		rules[r.Name] = r
	}
	for _, st := range sql.Classify(text) {
		d := pol.Evaluate(policy.Input{Connection: conn, ConnType: connType, Identity: id, Statement: st})
		e := explainedStatement{Statement: st, Summary: st.Summary(), Decision: d, Matched: []policy.RuleInfo{}}
		for _, rn := range d.Rules {
			e.Matched = append(e.Matched, rules[rn])
		}
		out.Statements = append(out.Statements, e)
	}
	if out.Statements == nil {
		out.Statements = []explainedStatement{}
	}
	if opts.Output == "json" {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printExplain(opts.IO.Out, out)
	return nil
}

// explainConnection picks the connection to judge as: --connection, or the
// only configured one. A name that is not configured is still judged (rules
// match on names), but a typo deserves a hint.
func explainConnection(opts *policyExplainOptions) (name, typ string, err error) {
	typ = "postgres"
	cfg, cerr := opts.Config()
	if cerr != nil || cfg == nil {
		return opts.Connection, typ, nil
	}
	if opts.Connection == "" {
		if len(cfg.Connections) == 1 {
			return cfg.Connections[0].Name, orPostgres(cfg.Connections[0].Type), nil
		}
		return "", typ, nil
	}
	var names []string
	for _, c := range cfg.Connections {
		if c.Name == opts.Connection {
			return c.Name, orPostgres(c.Type), nil
		}
		names = append(names, c.Name)
	}
	if len(names) > 0 {
		return "", "", &HintError{Err: fmt.Errorf("no connection named %q", opts.Connection),
			Hint: "configured connections: " + strings.Join(names, ", ")}
	}
	return opts.Connection, typ, nil
}

func orPostgres(t string) string {
	if t == "" {
		return "postgres"
	}
	return t
}

func printExplain(w io.Writer, out explainOutput) {
	src := "built-in baseline"
	if out.Policy.File != "" {
		src = filepath.Base(out.Policy.File) + " (" + out.Policy.Describe + ")"
	}
	who := "an unverified user (--as EMAIL judges as a signed-in user)"
	if out.User != "" {
		who = out.User
		if len(out.Groups) > 0 {
			who += " [" + strings.Join(out.Groups, ", ") + "]"
		}
	}
	conn := "no connection (--connection NAME judges as on one)"
	if out.Connection != "" {
		conn = fmt.Sprintf("connection %s (%s)", out.Connection, out.ConnType)
	}
	fmt.Fprintf(w, "policy %s · %s · as %s\n", src, conn, who)
	if len(out.Statements) == 0 {
		fmt.Fprintln(w, "\nno statement: the text is empty or only comments")
		return
	}
	for i, e := range out.Statements {
		st, d := e.Statement, e.Decision
		fmt.Fprintf(w, "\n%d  %s\n", i+1, oneLineSQL(st.Text, 100))
		row := func(label, value string) {
			if value != "" {
				fmt.Fprintf(w, "   %-9s %s\n", label, value)
			}
		}
		kind := string(st.Kind)
		if st.Object != "" {
			kind += " · " + st.Object
		}
		if st.Name != "" {
			kind += " · " + st.Name
		}
		switch {
		case st.Inner != nil && st.Kind == "prepare":
			kind += " · prepares " + string(st.Inner.Kind)
		case st.Inner != nil && st.Kind == "explain":
			kind += " · explains " + string(st.Inner.Kind)
		case st.Inner != nil:
			kind += " · run by EXPLAIN ANALYZE"
		}
		row("kind", kind)
		row("writes", strings.Join(st.Writes, ", "))
		row("reads", strings.Join(st.Reads, ", "))
		row("calls", strings.Join(st.Functions, ", "))
		flags := make([]string, len(st.Flags))
		for j, f := range st.Flags {
			flags[j] = string(f)
		}
		row("flags", strings.Join(flags, ", "))
		for j, r := range e.Matched {
			label := ""
			if j == 0 {
				label = "rules"
			}
			row(label, fmt.Sprintf("%s → %s (%s)", r.Name, r.Action, r.Source))
		}
		if len(e.Matched) == 0 {
			row("rules", "none match")
		}
		decision := strings.ToUpper(string(d.Action))
		if d.Rule == "default" {
			decision += " by the policy's default"
		} else {
			decision += " by rule " + d.Rule
		}
		if d.Action == policy.Approve {
			decision += fmt.Sprintf(" · waits up to %s for a human", shortDuration(d.Timeout))
		}
		row("decision", decision)
		for j, r := range d.Reasons {
			label := ""
			if j == 0 {
				label = "because"
			}
			row(label, r)
		}
		row("message", d.Message)
	}
}

// shortDuration prints 2m rather than 2m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// oneLineSQL folds a statement onto one line and shortens it.
func oneLineSQL(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}
