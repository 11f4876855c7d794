package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tui"
	"github.com/guardrun/guardrun/tunnel/guard"
)

// runChild runs the agent or client: in a PTY guardrun owns when there is a
// terminal (prompts are drawn over it, its screen is recorded), with plain
// stdio otherwise. It returns the child's exit code.
func runChild(ctx context.Context, f *Factory, s *session, argv, env []string) (int, error) {
	in, _ := f.IO.In.(*os.File)
	out, _ := f.IO.Out.(*os.File)
	errf, _ := f.IO.ErrOut.(*os.File)
	opts := tui.HostOptions{
		Argv: argv, Env: env, In: in, Out: out, Err: errf,
		Who: filepath.Base(argv[0]), Session: recorder.ShortID(s.id), User: s.identity.Who(),
		Logger: s.logger, NoColor: f.Getenv("NO_COLOR") != "",
	}
	if f.IO.CanPrompt() {
		cols, rows, err := term.GetSize(int(out.Fd()))
		if err != nil || cols <= 0 || rows <= 0 {
			cols, rows = 80, 24
		}
		cast := s.rec.Cast(cols, rows)
		opts.Cast = cast
		s.setCast(cast)
		sub := s.broker.Subscribe()
		defer sub.Close()
		opts.Queue = asTUIQueue(sub)
	}
	code, err := tui.RunAgent(ctx, opts)
	if err != nil {
		return code, &HintError{Err: fmt.Errorf("cannot run %s: %w", argv[0], err), Hint: "is it installed and on PATH?"}
	}
	return code, nil
}

// waitOrPrompt keeps a connect tunnel open until Ctrl-C: on a terminal with
// the approval prompt and a live status line, otherwise quietly (approvals
// come from `guardrun approvals`).
func waitOrPrompt(ctx context.Context, f *Factory, s *session, p *activityPrinter) error {
	if !f.IO.CanPrompt() {
		<-ctx.Done()
		return nil
	}
	in, _ := f.IO.In.(*os.File)
	out, _ := f.IO.Out.(*os.File)
	sub := s.broker.Subscribe()
	defer sub.Close()
	err := tui.RunPrompter(ctx, tui.PrompterOptions{In: in, Out: out, Queue: asTUIQueue(sub), Status: p.status, Log: p.lines,
		User: s.identity.Who(), NoColor: f.Getenv("NO_COLOR") != ""})
	if errors.Is(err, tui.ErrInterrupted) {
		return nil // Ctrl-C is how a person closes the tunnel
	}
	return err
}

// castMarker puts a marker in the terminal cast at each statement decision,
// so that replay lines up the screen with the timeline.
func castMarker(s *session) func(guard.Activity) {
	return func(a guard.Activity) {
		c := s.castWriter()
		if c == nil || a.Done {
			return
		}
		c.WriteMarker(fmt.Sprintf("%s %s: %s", a.Decision, a.Connection, oneLine(a.SQL, 60)))
	}
}
