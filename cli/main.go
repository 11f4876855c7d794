// Package cli is guardrun's command tree and composition root: it reads
// configuration, builds every other package's pieces and wires them
// together. Nothing imports cli.
//
// Each verb lives in its own file with an Options struct, a NewCmdX that
// only parses flags, and a plain xRun(ctx, opts) that tests call directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Factory holds what every command needs, built lazily so that `guardrun
// version` reads no configuration.
type Factory struct {
	IO *IOStreams
	// Getenv and Environ are the process environment; tests replace them.
	Getenv  func(string) string
	Environ func() []string
	// Getwd is the working directory (where guardrun.yaml is searched from).
	Getwd func() (string, error)
	// Config loads guardrun.yaml and the user's file once.
	Config func() (*Config, error)
	// Executable is the path of the running guardrun binary (for re-exec and
	// for hints); empty when unknown.
	Executable string
}

// NewFactory builds the production Factory.
func NewFactory(stdin io.Reader, stdout, stderr io.Writer) *Factory {
	f := &Factory{
		IO:      &IOStreams{In: stdin, Out: stdout, ErrOut: stderr, NoPrompt: os.Getenv("GUARDRUN_NO_PROMPT") != ""},
		Getenv:  os.Getenv,
		Environ: os.Environ,
		Getwd:   os.Getwd,
	}
	if exe, err := os.Executable(); err == nil {
		f.Executable = exe
	}
	var (
		cfg    *Config
		cfgErr error
		loaded bool
	)
	f.Config = func() (*Config, error) {
		if !loaded {
			loaded = true
			cfg, cfgErr = LoadConfig(f)
		}
		return cfg, cfgErr
	}
	return f
}

// Main runs guardrun with args (without the program name) and returns the
// process exit code. It is the only place that turns errors into words and
// exit codes.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := NewFactory(stdin, stdout, stderr)
	return run(ctx, f, args)
}

func run(ctx context.Context, f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	return exitCode(f.IO.ErrOut, err)
}

// exitCode prints err age-style and returns the exit code for it.
func exitCode(w io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ChildExit
	if errors.As(err, &ee) {
		return ee.Code
	}
	if errors.Is(err, errSilent) {
		return ExitError
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "guardrun: cancelled")
		return ExitCancelled
	}
	printError(w, err)
	var he *HintError
	if errors.As(err, &he) && he.Code != 0 {
		return he.Code
	}
	return ExitError
}

func printError(w io.Writer, err error) {
	msg := err.Error()
	fmt.Fprintf(w, "guardrun: error: %s\n", msg)
	hint := ""
	var he *HintError
	var ce *ConfigError
	switch {
	case errors.As(err, &he):
		hint = he.Hint
	case errors.As(err, &ce):
		hint = ce.Hint
	}
	if hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(w, "guardrun: hint: %s\n", line)
		}
	}
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	run := &runOptions{IO: f.IO, F: f, Config: f.Config}
	root := &cobra.Command{
		Use:   "guardrun [flags] -- AGENT [ARGS...]",
		Short: "Let an AI coding agent touch real databases, safely",
		Long: `guardrun runs an AI coding agent (or any program) behind loopback tunnels to
your databases. Every statement is parsed and judged by a policy, risky ones
wait for your approval, results come back with secrets and personal data
masked, and everything is written to a signed, replayable session record.

  guardrun -- claude               run an agent behind the tunnels
  guardrun connect postgres        a tunnel for you or a tool
  guardrun replay 01jd3k8v         play a session back`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				if len(args) == 0 {
					return cmd.Help()
				}
				return &HintError{
					Err:  fmt.Errorf("unknown command %q", args[0]),
					Hint: fmt.Sprintf("to run a program behind guardrun, put -- before it: guardrun -- %s", strings.Join(args, " ")),
				}
			}
			if dash > 0 {
				return &HintError{Err: fmt.Errorf("unexpected %q before --", args[0]), Hint: "guardrun [flags] -- AGENT [ARGS...]"}
			}
			run.Argv = args
			return agentRun(cmd.Context(), run)
		},
	}
	root.Flags().BoolVar(&run.DryRun, "dry-run", false, "print the tunnels and environment changes, then exit")
	root.Flags().StringSliceVarP(&run.Connections, "connection", "c", nil, "open only these connections (default: all)")
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &HintError{Err: err, Hint: fmt.Sprintf("see %s --help", cmd.CommandPath())}
	})
	for _, add := range commands {
		root.AddCommand(add(f))
	}
	return root
}

// commands lists the verbs, one file each.
var commands = []func(*Factory) *cobra.Command{
	NewCmdConnect,
	NewCmdConnections,
	NewCmdLogin,
	NewCmdLogout,
	NewCmdWhoami,
	NewCmdReplay,
	NewCmdSessions,
	NewCmdPolicy,
	NewCmdApprovals,
	NewCmdCompletion,
	NewCmdVersion,
}
