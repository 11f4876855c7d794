package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type connectionsOptions struct {
	IO      *IOStreams
	F       *Factory
	Config  func() (*Config, error)
	Output  string
	Name    string
	FromEnv string
	Stdin   bool
}

// NewCmdConnections builds `guardrun connections`: list what guardrun can
// tunnel to, and keep an upstream URL in the keyring for `upstream:
// keyring:NAME`.
func NewCmdConnections(f *Factory) *cobra.Command {
	opts := &connectionsOptions{IO: f.IO, F: f, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "connections",
		Short: "List the databases guardrun tunnels to, and keep their URLs in the keyring",
		Long: `List the connections of guardrun.yaml and your user file (or, with neither,
the PostgreSQL URLs found in the environment and ./.env), with where each
comes from. Passwords are never shown.

"connections set" stores an upstream URL in the system keyring, so that the
project file can say upstream: keyring:NAME and no secret sits in a file the
agent can read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return connectionsListRun(cmd.Context(), opts) },
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	set := &cobra.Command{
		Use:   "set NAME (--from-env VAR | --stdin)",
		Short: "Store a connection's upstream URL in the system keyring",
		Example: `  guardrun connections set app --from-env DATABASE_URL
  pass show db/app | guardrun connections set app --stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return connectionsSetRun(cmd.Context(), opts)
		},
	}
	set.Flags().StringVar(&opts.FromEnv, "from-env", "", "read the URL from this environment variable")
	set.Flags().BoolVar(&opts.Stdin, "stdin", false, "read the URL from standard input")
	cmd.AddCommand(set)
	return cmd
}

type connectionRow struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Upstream string   `json:"upstream"` // host:port/db, never a credential
	Source   string   `json:"source"`
	Env      []string `json:"env,omitempty"`
}

func connectionsListRun(ctx context.Context, opts *connectionsOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	conns, err := opts.F.resolveConnections(cfg, opts.F.keyringLookup())
	if err != nil {
		return err
	}
	rows := make([]connectionRow, 0, len(conns))
	for _, c := range conns {
		rows = append(rows, connectionRow{Name: c.Name, Type: c.Type, Upstream: c.Display(), Source: c.Source, Env: c.Env})
	}
	if opts.Output == "json" {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		_, err := pickConnection(nil, "")
		return err
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tUPSTREAM\tFROM\tAGENT GETS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Type, r.Upstream, r.Source, strings.Join(append(r.Env, guardrunVar(r.Name)), ", "))
	}
	return tw.Flush()
}

func connectionsSetRun(ctx context.Context, opts *connectionsOptions) error {
	if !connNameRE.MatchString(opts.Name) {
		return &HintError{Err: fmt.Errorf("connection name %q: want lower-case letters, digits, - and _", opts.Name), Hint: "guardrun connections set app --from-env DATABASE_URL"}
	}
	var url string
	switch {
	case opts.FromEnv != "" && opts.Stdin:
		return &HintError{Err: errors.New("--from-env and --stdin both given"), Hint: "pick one"}
	case opts.FromEnv != "":
		url = opts.F.Getenv(opts.FromEnv)
		if url == "" {
			return &HintError{Err: fmt.Errorf("%s is not set", opts.FromEnv), Hint: "export it first, or use --stdin"}
		}
	case opts.Stdin:
		line, err := bufio.NewReader(opts.IO.In).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		url = strings.TrimSpace(line)
	default:
		return &HintError{Err: errors.New("say where the URL comes from"), Hint: "guardrun connections set " + opts.Name + " --from-env DATABASE_URL (or --stdin)"}
	}
	u := upstreamConn{Connection: Connection{Name: opts.Name, Source: "the URL given"}, DSN: url}
	if err := u.parse(); err != nil {
		return err
	}
	st, err := opts.F.secretStore(nil)
	if err != nil {
		return fmt.Errorf("no secret store: %w", err)
	}
	if err := st.Set(upstreamSecret(opts.Name), []byte(url)); err != nil {
		return fmt.Errorf("cannot store the URL: %w", err)
	}
	fmt.Fprintf(opts.IO.Out, "✓ %s → %s stored in the %s\n", opts.Name, u.Display(), st.Backend())
	if w := st.Warning(); w != "" {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: warning: %s\n", w)
	}
	fmt.Fprintf(opts.IO.Out, "  in guardrun.yaml:  - name: %s\n                       upstream: keyring:%s\n", opts.Name, opts.Name)
	return nil
}
