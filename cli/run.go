package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/recorder"
)

// runOptions are the inputs of `guardrun [flags] -- AGENT [ARGS]`.
type runOptions struct {
	IO          *IOStreams
	F           *Factory
	Config      func() (*Config, error)
	Argv        []string
	DryRun      bool
	Connections []string // --connection: only these
}

// agentRun opens a tunnel for every connection, runs the agent with its
// environment rewired to the tunnels, and records the session.
func agentRun(ctx context.Context, opts *runOptions) error {
	if len(opts.Argv) == 0 {
		return &HintError{Err: errors.New("no program to run after --"), Hint: "guardrun -- claude"}
	}
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	f := opts.F
	conns, err := f.resolveConnections(cfg, f.keyringLookup())
	if err != nil {
		return err
	}
	if len(opts.Connections) > 0 {
		var keep []upstreamConn
		for _, name := range opts.Connections {
			c, err := pickConnection(conns, name)
			if err != nil {
				return err
			}
			keep = append(keep, c)
		}
		conns = keep
	}
	if opts.DryRun {
		return dryRun(opts, cfg, conns)
	}
	agent := filepath.Base(opts.Argv[0])
	s, err := startSession(ctx, f, cfg, sessionOptions{Agent: agent, Command: opts.Argv, Conns: conns})
	if err != nil {
		return err
	}
	w := opts.IO.ErrOut
	fmt.Fprintf(w, "guardrun: session %s · %s · policy %s · recording\n", recorder.ShortID(s.id), whoLabel(s.identity), s.polDesc)
	for _, t := range s.tunnels {
		vars := append([]string{}, t.env.Env...)
		if t.env.Default {
			vars = append(vars, "PG*")
		}
		fmt.Fprintf(w, "guardrun: %s  %s → %s  (%s)\n", t.conn.Name, t.conn.Type, t.addr, strings.Join(dedupeStrings(vars), ", "))
	}
	for _, warn := range s.warnings {
		f.warn(warn)
	}
	if len(s.tunnels) == 0 {
		fmt.Fprintln(w, "guardrun: no database connections configured or found in the environment; running the agent unguarded by tunnels")
	}
	for _, warn := range f.credentialWarnings(conns) {
		f.warn(warn)
	}
	env := agentEnviron(f.Environ(), s.envs(), s.id)
	code, runErr := runChild(ctx, f, s, opts.Argv, env)
	reason := "agent exited"
	if runErr != nil {
		reason = runErr.Error()
	}
	if err := s.close(code, reason); err != nil {
		f.warn(fmt.Errorf("the session record was not sealed: %v", err))
	}
	if runErr != nil {
		return runErr
	}
	if code != 0 {
		return &ChildExit{Code: code}
	}
	return nil
}

func whoLabel(id policy.Identity) string {
	w := id.Who()
	if !id.Verified {
		w += " (local, unverified)"
	}
	return w
}

func dedupeStrings(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// dryRun prints what would be opened and how the environment changes, with
// secrets redacted, and opens nothing.
func dryRun(opts *runOptions, cfg *Config, conns []upstreamConn) error {
	w := opts.IO.Out
	_, polDesc, err := loadPolicy(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "would run:    %s\n", strings.Join(opts.Argv, " "))
	fmt.Fprintf(w, "policy:       %s\n", polDesc)
	fmt.Fprintf(w, "recording:    %s\n", cfg.Recording.Dir)
	if len(conns) == 0 {
		fmt.Fprintln(w, "tunnels:      none (no connections configured or found in the environment)")
	}
	var fake []tunnelEnv
	for i, c := range conns {
		fmt.Fprintf(w, "tunnel:       %s  %s → 127.0.0.1:<port>  upstream %s  (from %s)\n", c.Name, c.Type, c.Display(), c.Source)
		fake = append(fake, tunnelEnv{Name: c.Name, Host: "127.0.0.1", Port: 0, User: "guardrun", Password: "<per-session>",
			Database: c.Database, URL: fmt.Sprintf("postgres://guardrun:<per-session>@127.0.0.1:<port>/%s?sslmode=disable", c.Database),
			Env: c.Env, Hide: c.Hide, Default: i == 0})
	}
	before := map[string]string{}
	for _, kv := range opts.F.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		before[k] = v
	}
	after := map[string]string{}
	for _, kv := range agentEnviron(opts.F.Environ(), fake, "<session>") {
		k, v, _ := strings.Cut(kv, "=")
		after[k] = v
	}
	var keys []string
	for k := range before {
		if _, ok := after[k]; !ok {
			keys = append(keys, k)
		}
	}
	for k, v := range after {
		if before[k] != v {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range dedupeStrings(keys) {
		switch v, ok := after[k]; {
		case !ok:
			fmt.Fprintf(w, "env:          - %s (removed: it carries the real upstream)\n", k)
		case k == "PGPORT" && v == "0":
			fmt.Fprintf(w, "env:          + %s=<port>\n", k)
		default:
			fmt.Fprintf(w, "env:          + %s=%s\n", k, v)
		}
	}
	for _, warn := range opts.F.credentialWarnings(conns) {
		opts.F.warn(warn)
	}
	return nil
}
