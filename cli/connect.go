package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel/guard"
)

type connectOptions struct {
	IO      *IOStreams
	F       *Factory
	Config  func() (*Config, error)
	Name    string
	Port    int
	Output  string
	Check   bool
	Quiet   bool
	Client  []string
	Started func(info connectInfo) // tests: called once the tunnel is up
}

// connectInfo is what `guardrun connect --output json` prints.
type connectInfo struct {
	Session    string            `json:"session"`
	Connection string            `json:"connection"`
	Type       string            `json:"type"`
	Host       string            `json:"host"`
	Port       int               `json:"port"`
	User       string            `json:"user"`
	Password   string            `json:"password"`
	Database   string            `json:"database"`
	URL        string            `json:"url"`
	Env        map[string]string `json:"env"`
}

// NewCmdConnect builds `guardrun connect`.
func NewCmdConnect(f *Factory) *cobra.Command {
	opts := &connectOptions{IO: f.IO, F: f, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "connect [NAME] [-- CLIENT [ARGS...]]",
		Short: "Open a guarded tunnel to one database, for you or a tool",
		Long: `Open a loopback tunnel to the connection NAME (or to the only connection of a
type, such as postgres) and print the local URL and PG* variables to use. The
tunnel judges, masks and records every statement like an agent's, and runs
until Ctrl-C.

With -- CLIENT, run the client with PG* pointing at the tunnel (the password
travels in the environment, never in argv) and exit with its exit code.`,
		Example: `  guardrun connect postgres
  guardrun connect app -- psql -c 'select 1'
  guardrun connect app --output json
  guardrun connect app --check`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				opts.Client = args[dash:]
				args = args[:dash]
			}
			if len(args) > 1 {
				return &HintError{Err: fmt.Errorf("connect takes one connection name, got %d", len(args)), Hint: "put -- before a client command: guardrun connect app -- psql"}
			}
			if len(args) == 1 {
				opts.Name = args[0]
			}
			return connectRun(cmd.Context(), opts)
		},
		ValidArgsFunction: completeConnections(f),
	}
	cmd.Flags().IntVarP(&opts.Port, "port", "p", 0, "local port to listen on (default: a free one)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&opts.Check, "check", false, "only check that the upstream answers, then exit")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "do not print each statement")
	return cmd
}

// completeConnections completes connection names and types.
func completeConnections(f *Factory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg, err := f.Config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, c := range cfg.Connections {
			out = append(out, c.Name+"\t"+c.Type)
		}
		if len(out) == 0 {
			for _, d := range discoverConnections(environVars(f.Environ()), f.readDotenv()) {
				out = append(out, d.Name+"\t"+d.Source)
			}
		}
		return append(out, "postgres\tthe only PostgreSQL connection"), cobra.ShellCompDirectiveNoFileComp
	}
}

func connectRun(ctx context.Context, opts *connectOptions) error {
	if opts.Port < 0 || opts.Port > 65535 {
		return &HintError{Err: fmt.Errorf("--port %d is not a port", opts.Port), Hint: "use 1-65535, or leave it out"}
	}
	switch opts.Output {
	case "text", "json":
	default:
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json"}
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
	c, err := pickConnection(conns, opts.Name)
	if err != nil {
		return err
	}
	if opts.Check {
		return probeUpstream(ctx, opts.IO, c)
	}
	// With a client, its own output is what the person reads; the record
	// has every statement.
	printer := newActivityPrinter(opts.IO.ErrOut, opts.Quiet || len(opts.Client) > 0)
	if len(opts.Client) == 0 && opts.IO.CanPrompt() {
		printer.lines = make(chan string, 256)
	}
	s, err := startSession(ctx, f, cfg, sessionOptions{
		Agent: "connect", Command: append([]string{"connect", c.Name}, opts.Client...),
		Conns: []upstreamConn{c}, Port: opts.Port, FailOnDead: true, OnActivity: printer.add,
	})
	if err != nil {
		return err
	}
	t := s.tunnels[0]
	t.env.Default = true
	info := connectInfo{
		Session: s.id, Connection: c.Name, Type: c.Type, Host: t.env.Host, Port: t.env.Port,
		User: t.env.User, Password: t.env.Password, Database: t.env.Database, URL: t.env.URL,
		Env: map[string]string{"PGHOST": t.env.Host, "PGPORT": fmt.Sprint(t.env.Port), "PGUSER": t.env.User,
			"PGPASSWORD": t.env.Password, "PGDATABASE": t.env.Database, "PGSSLMODE": "disable"},
	}
	exit, reason := 0, "closed"
	defer func() { _ = s.close(exit, reason) }()

	if len(opts.Client) > 0 {
		env := agentEnviron(f.Environ(), []tunnelEnv{t.env}, s.id)
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: %s  %s → %s   session %s · recording\n", c.Name, c.Type, t.addr, recorder.ShortID(s.id))
		code, err := runChild(ctx, f, s, opts.Client, env)
		exit = code
		if err != nil {
			reason = err.Error()
			return err
		}
		if code != 0 {
			return &ChildExit{Code: code}
		}
		return nil
	}

	if opts.Output == "json" {
		enc := json.NewEncoder(opts.IO.Out)
		if err := enc.Encode(info); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: %s  %s → %s   session %s · recording\n", c.Name, c.Type, t.addr, recorder.ShortID(s.id))
		fmt.Fprintf(opts.IO.Out, "  psql %q\n", t.env.URL)
		fmt.Fprintf(opts.IO.Out, "  or: export PGHOST=%s PGPORT=%d PGUSER=%s PGPASSWORD=%s PGDATABASE=%s\n",
			t.env.Host, t.env.Port, t.env.User, t.env.Password, shellQuote(t.env.Database))
		fmt.Fprintln(opts.IO.ErrOut, "Ctrl-C to close.")
	}
	if opts.Started != nil {
		opts.Started(info)
	}
	err = waitOrPrompt(ctx, f, s, printer)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: tunnel closed · session %s recorded\n", recorder.ShortID(s.id))
	}
	return err
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// probeUpstream connects to the upstream once, without a client.
func probeUpstream(ctx context.Context, io *IOStreams, c upstreamConn) error {
	start := time.Now()
	if err := preflight(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "✓ %s: upstream %s answers (%s)\n", c.Name, c.Display(), time.Since(start).Round(time.Millisecond))
	return nil
}

// activityPrinter prints a tunnel's statements as they complete, one line
// each, on stderr (never the values: the text is masked and one line).
type activityPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	lines chan string // on a terminal: lines for the prompter to print above its live area
	quiet bool
	count atomic.Int64
	last  atomic.Value // string
}

func newActivityPrinter(w io.Writer, quiet bool) *activityPrinter {
	return &activityPrinter{w: w, quiet: quiet}
}

func (p *activityPrinter) add(a guard.Activity) {
	var status string
	switch {
	case a.Done && a.SQLState != "":
		status = "error    " + a.SQLState
	case a.Done:
		status = "ok       " + rowsText(a.Rows, a.Tag)
		if a.Masked > 0 {
			status += fmt.Sprintf(" · %d masked", a.Masked)
		}
	case a.Decision == "allow":
		return // its result line follows
	case a.Decision == "held":
		status = "held     waiting for approval…"
	case a.Decision == "approved":
		status = "approved"
	default:
		status = a.Decision
	}
	p.count.Add(1)
	line := fmt.Sprintf("  %s  %-44s  %s", a.Time.Format("15:04:05"), oneLine(a.SQL, 44), status)
	p.last.Store(strings.TrimSpace(line))
	if p.quiet {
		return
	}
	if p.lines != nil {
		select {
		case p.lines <- line:
		default: // the screen is behind; the record has every statement
		}
		return
	}
	p.mu.Lock()
	fmt.Fprintln(p.w, line)
	p.mu.Unlock()
}

// status is the one-line live status for a terminal.
func (p *activityPrinter) status() string {
	last, _ := p.last.Load().(string)
	if last == "" {
		return "waiting for connections · Ctrl-C to close"
	}
	return fmt.Sprintf("%d statements · last: %s", p.count.Load(), last)
}

func rowsText(n int64, tag string) string {
	if n == 1 {
		return "1 row"
	}
	if n == 0 && tag != "" && !strings.HasPrefix(tag, "SELECT") && !strings.HasPrefix(tag, "COPY") {
		return strings.Fields(tag)[0]
	}
	return fmt.Sprintf("%d rows", n)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
