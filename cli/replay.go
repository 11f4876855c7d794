package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tui"
)

// replayOptions are the inputs of `guardrun replay`.
type replayOptions struct {
	IO     *IOStreams
	Config func() (*Config, error)
	Paths  func() Paths
	Getenv func(string) string
	Loc    *time.Location

	ID        string
	Force     bool
	Speed     float64
	IdleLimit time.Duration
	Output    string // "" = the player on a terminal, else text; text; json

	// Play runs the player; tests replace it.
	Play func(m *tui.ReplayModel, in io.Reader, out io.Writer) error
}

// NewCmdReplay builds `guardrun replay ID`.
func NewCmdReplay(f *Factory) *cobra.Command {
	return newCmdReplay(f, nil)
}

func newCmdReplay(f *Factory, runF func(*replayOptions) error) *cobra.Command {
	opts := &replayOptions{IO: f.IO, Config: f.Config, Paths: f.Paths, Getenv: f.Getenv, Loc: time.Local, Play: playReplay}
	cmd := &cobra.Command{
		Use:   "replay ID",
		Short: "Verify a session record, then play it back",
		Long: `Replay verifies a session's record, then plays it back: the agent's terminal
at its real pace next to a timeline of statements, decisions and approvals.

  space pause · ←/→ seek 5s · n/N next/previous decision · +/- speed · q quit

A record that does not verify is not played unless --force, and then the break
is marked in the timeline. Sessions without a terminal (guardrun connect) play
as a statement transcript. Without a terminal, or with --output, the timeline
is printed instead.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSessionIDs(f),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return replayRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "play a record that does not verify, marking the break")
	cmd.Flags().Float64Var(&opts.Speed, "speed", 1, "playback speed (0.25 to 32)")
	cmd.Flags().DurationVar(&opts.IdleLimit, "idle-limit", 0, "cut pauses longer than this (e.g. 2s); 0 keeps them")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "print the timeline instead of playing: text or json")
	return cmd
}

func replayRun(opts *replayOptions) error {
	switch opts.Output {
	case "", "text", "json":
	default:
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json, or leave it out to play"}
	}
	if opts.Speed <= 0 || opts.Speed > 32 {
		return &HintError{Err: fmt.Errorf("--speed %g is out of range", opts.Speed), Hint: "pick a speed between 0.25 and 32"}
	}
	if opts.IdleLimit < 0 {
		return &HintError{Err: errors.New("--idle-limit cannot be negative"), Hint: "e.g. --idle-limit 2s"}
	}
	st, _, err := openSessionStore(&sessionsOptions{IO: opts.IO, Config: opts.Config, Paths: opts.Paths})
	if err != nil {
		return err
	}
	id, err := findSession(st, opts.ID)
	if err != nil {
		return err
	}
	rep, err := st.Verify(id)
	if err != nil {
		return err
	}
	if rep.Err != nil && !opts.Force {
		return &HintError{
			Err:  fmt.Errorf("session %s does not verify: %s", recorder.ShortID(id), rep.Err),
			Hint: fmt.Sprintf("guardrun replay %s --force plays it anyway, with the break marked\n%s", recorder.ShortID(id), tamperHint),
		}
	}
	if rep.Err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: warning: session %s does not verify: %s; playing it anyway (--force)\n", recorder.ShortID(id), rep.Err)
	}
	data, err := tui.LoadReplay(st, id, rep)
	if err != nil {
		return fmt.Errorf("cannot read session %s: %w", recorder.ShortID(id), err)
	}

	// The player needs a human at a terminal; otherwise print the timeline.
	tty := opts.IO.IsStdinTTY() && (opts.IO.IsStderrTTY() || opts.IO.IsStdoutTTY())
	if opts.Output == "json" {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Session  recorder.Summary    `json:"session"`
			Verified bool                `json:"verified"`
			Problem  string              `json:"problem,omitempty"`
			Timeline []tui.TimelineEntry `json:"timeline"`
		}{rep.Summary, rep.Err == nil, rep.Problem, data.Timeline})
	}
	if opts.Output == "text" || !tty || opts.Play == nil {
		recs, err := st.Events(id)
		if err != nil {
			return err
		}
		writeSummary(opts.IO.Out, rep, recs, opts.Loc)
		fmt.Fprintln(opts.IO.Out)
		return tui.WriteTimeline(opts.IO.Out, data.Timeline, opts.Loc)
	}

	// Draw on stderr when it is the terminal, so stdout stays free.
	var out io.Writer = opts.IO.ErrOut
	if !opts.IO.IsStderrTTY() {
		out = opts.IO.Out
	}
	color := opts.Getenv == nil || opts.Getenv("NO_COLOR") == ""
	m := tui.NewReplay(data, tui.ReplayOptions{
		Speed: opts.Speed, IdleLimit: opts.IdleLimit, Loc: opts.Loc,
		Styles: tui.NewStyles(out, color), Keys: tui.DefaultReplayKeys(),
	})
	defer m.Close()
	return opts.Play(m, opts.IO.In, out)
}

// playReplay runs the player full screen on the terminal.
func playReplay(m *tui.ReplayModel, in io.Reader, out io.Writer) error {
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	return err
}
