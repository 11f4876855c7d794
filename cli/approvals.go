package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/tui"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/control"
)

// `guardrun approvals` answers held statements of the user's running
// sessions from another terminal. Data (the pending list, --output json)
// goes to stdout; what happened ("approved ...") goes to stderr.

// approvalQueue is what both a session's own broker subscription and the
// control-socket watcher offer: tui.Queue's shape, with tunnel's errors.
type approvalQueue interface {
	Updates() <-chan []policy.ApprovalRequest
	Answer(ctx context.Context, id string, a policy.Answer) error
}

// tuiQueue adapts an approvalQueue for tui: tunnel cannot import tui, so its
// "already answered" is translated here.
type tuiQueue struct{ q approvalQueue }

// asTUIQueue turns a broker subscription or a control watcher into a tui.Queue.
func asTUIQueue(q approvalQueue) tui.Queue { return tuiQueue{q} }

func (t tuiQueue) Updates() <-chan []policy.ApprovalRequest { return t.q.Updates() }

func (t tuiQueue) Answer(ctx context.Context, id string, a policy.Answer) error {
	err := t.q.Answer(ctx, id, a)
	if errors.Is(err, tunnel.ErrAlreadyAnswered) {
		return fmt.Errorf("%w: %w", tui.ErrAlreadyAnswered, err)
	}
	return err
}

type approvalsOptions struct {
	IO         *IOStreams
	RuntimeDir string
	Now        func() time.Time

	Watch  bool
	Output string

	// By names who answers; "" lets the session record the local user name.
	By func(ctx context.Context) string
	// Interactive runs the full-screen view on a terminal; nil = line mode.
	Interactive func(ctx context.Context, q tui.Queue) error

	// approve / deny
	ID      string
	Verdict policy.Verdict
	Message string
}

// NewCmdApprovals builds `guardrun approvals` and its approve/deny verbs.
func NewCmdApprovals(f *Factory) *cobra.Command {
	opts := &approvalsOptions{IO: f.IO, Now: time.Now, By: f.answerer}
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "See and answer statements waiting for approval in your running sessions",
		Long: `Lists the statements that your running guardrun sessions hold for a human's
approval, and answers them. Whichever answer comes first wins: this terminal,
the session's own prompt, or another "guardrun approvals".

On a terminal this is a live view; otherwise it prints the pending requests
(--watch keeps printing as they come and go).`,
		Example: `  guardrun approvals
  guardrun approvals --watch --output json
  guardrun approvals approve 01jd3k8v/3 --session
  guardrun approvals deny 01jd3k8v/3 -m "archive them to orders_archive first"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.RuntimeDir = f.Paths().Runtime
			opts.Interactive = interactiveApprovals(f, opts.By)
			return approvalsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "keep printing as requests come and go")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")

	approve := &cobra.Command{
		Use:   "approve ID",
		Short: "Let a held statement through (once, or its shape for the rest of the session)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.RuntimeDir = f.Paths().Runtime
			opts.ID = args[0]
			if ok, _ := cmd.Flags().GetBool("session"); ok {
				opts.Verdict = policy.VerdictApproveSession
			} else {
				opts.Verdict = policy.VerdictApproveOnce
			}
			return approvalsAnswerRun(cmd.Context(), opts)
		},
		ValidArgsFunction: pendingIDCompletion(f),
	}
	approve.Flags().Bool("session", false, "approve this statement shape on this connection for the rest of the session")

	deny := &cobra.Command{
		Use:   "deny ID",
		Short: "Refuse a held statement; the message goes back to the agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.RuntimeDir = f.Paths().Runtime
			opts.ID = args[0]
			opts.Verdict = policy.VerdictDeny
			return approvalsAnswerRun(cmd.Context(), opts)
		},
		ValidArgsFunction: pendingIDCompletion(f),
	}
	deny.Flags().StringVarP(&opts.Message, "message", "m", "", "why, returned to the agent with the error")

	cmd.AddCommand(approve, deny)
	return cmd
}

// interactiveApprovals is the full-screen view when stdin and stdout are a
// terminal, nil otherwise.
func interactiveApprovals(f *Factory, by func(context.Context) string) func(context.Context, tui.Queue) error {
	if !f.IO.CanPrompt() {
		return nil
	}
	in, okIn := f.IO.In.(*os.File)
	out, okOut := f.IO.Out.(*os.File)
	if !okIn || !okOut {
		return nil
	}
	return func(ctx context.Context, q tui.Queue) error {
		user := ""
		if by != nil {
			user = by(ctx)
		}
		err := tui.RunApprovalsWith(ctx, tui.ApprovalsOptions{In: in, Out: out, Queue: q, User: user})
		if errors.Is(err, tui.ErrInterrupted) {
			return context.Canceled
		}
		return err
	}
}

// approvalsSnapshot is what --output json prints (one object per line with --watch).
type approvalsSnapshot struct {
	Sessions []control.SessionInfo    `json:"sessions"`
	Pending  []policy.ApprovalRequest `json:"pending"`
}

var errNoSession = errors.New("no guardrun session is running")

const noSessionHint = "approvals come from a running `guardrun -- AGENT` or `guardrun connect`; start one, then run guardrun approvals again"

func approvalsRun(ctx context.Context, opts *approvalsOptions) error {
	switch opts.Output {
	case "text", "json":
	default:
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json"}
	}
	live := !opts.Watch && opts.Output == "text"
	if live {
		eps, err := control.Discover(opts.RuntimeDir)
		if err != nil {
			return fmt.Errorf("looking for running sessions: %w", err)
		}
		if len(eps) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "guardrun: %s (nothing to approve)\n", errNoSession)
			return nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := control.Watch(ctx, opts.RuntimeDir)
	defer m.Close()

	if live && opts.Interactive != nil {
		return opts.Interactive(ctx, asTUIQueue(m))
	}

	var first []policy.ApprovalRequest
	select {
	case first = <-m.Updates():
	case <-ctx.Done():
		return ctx.Err()
	}
	sessions := m.Sessions()
	if !opts.Watch {
		if opts.Output == "json" {
			return approvalsJSON(opts.IO.Out, approvalsSnapshot{Sessions: approvalsNonNil(sessions), Pending: first}, true)
		}
		if len(sessions) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "guardrun: %s\n", errNoSession)
			return nil
		}
		if len(first) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "guardrun: nothing is waiting for approval (%s)\n", approvalPlural(len(sessions), "session", "sessions")+" running")
			return nil
		}
		for _, r := range first {
			printApproval(opts.IO.Out, r, opts.Now())
		}
		fmt.Fprintln(opts.IO.ErrOut, "answer with: guardrun approvals approve ID [--session]  ·  guardrun approvals deny ID [-m MESSAGE]")
		return nil
	}

	w := &approvalsWatcher{opts: opts, seen: map[string]bool{}, sessions: map[string]bool{}}
	list, ok := first, true
	for {
		if err := w.show(list, m.Sessions()); err != nil {
			return err
		}
		select {
		case list, ok = <-m.Updates():
			if !ok {
				return ctx.Err()
			}
		case <-ctx.Done():
			return nil // Ctrl-C ends a watch; that is not an error
		}
	}
}

type approvalsWatcher struct {
	opts     *approvalsOptions
	seen     map[string]bool
	sessions map[string]bool
	started  bool
}

// show prints what changed since the last list: sessions that started or
// ended, requests that arrived or stopped waiting (json: the whole list).
func (w *approvalsWatcher) show(list []policy.ApprovalRequest, sessions []control.SessionInfo) error {
	out, errOut := w.opts.IO.Out, w.opts.IO.ErrOut
	if w.opts.Output == "json" {
		return approvalsJSON(out, approvalsSnapshot{Sessions: approvalsNonNil(sessions), Pending: list}, false)
	}
	now := map[string]bool{}
	for _, s := range sessions {
		now[s.ID] = true
		if !w.sessions[s.ID] && w.started {
			fmt.Fprintf(errOut, "guardrun: session %s started (%s, %s)\n", s.ID, s.Agent, s.User)
		}
	}
	for id := range w.sessions {
		if !now[id] {
			fmt.Fprintf(errOut, "guardrun: session %s ended\n", id)
		}
	}
	if !w.started {
		switch len(sessions) {
		case 0:
			fmt.Fprintf(errOut, "guardrun: %s; waiting for one to start (Ctrl-C to stop)\n", errNoSession)
		default:
			fmt.Fprintf(errOut, "guardrun: watching %s (Ctrl-C to stop)\n", approvalPlural(len(sessions), "session", "sessions"))
		}
		w.started = true
	}
	w.sessions = now
	pending := map[string]bool{}
	for _, r := range list {
		pending[r.ID] = true
		if !w.seen[r.ID] {
			printApproval(out, r, w.opts.Now())
		}
	}
	for id := range w.seen {
		if !pending[id] {
			fmt.Fprintf(out, "%s  no longer waiting\n", id)
		}
	}
	w.seen = pending
	return nil
}

func printApproval(w io.Writer, r policy.ApprovalRequest, now time.Time) {
	head := []string{r.ID, r.Connection}
	if r.ConnType != "" {
		head[1] += " (" + r.ConnType + ")"
	}
	for _, s := range []string{r.Agent, r.User} {
		if s != "" {
			head = append(head, s)
		}
	}
	if !r.Deadline.IsZero() {
		left := max(r.Deadline.Sub(now), 0)
		head = append(head, "expires in "+approvalClock(left))
	}
	fmt.Fprintln(w, strings.Join(head, " · "))
	for _, line := range strings.Split(strings.TrimSpace(r.SQL), "\n") {
		fmt.Fprintf(w, "    %s\n", line)
	}
	for _, s := range r.Summary {
		fmt.Fprintf(w, "    ▸ %s\n", s)
	}
	if r.Rule != "" || len(r.Reasons) > 0 {
		why := strings.Join(r.Reasons, "; ")
		switch {
		case r.Rule != "" && why != "":
			fmt.Fprintf(w, "    ▸ rule %s: %s\n", r.Rule, why)
		case r.Rule != "":
			fmt.Fprintf(w, "    ▸ rule %s\n", r.Rule)
		default:
			fmt.Fprintf(w, "    ▸ %s\n", why)
		}
	}
}

func approvalClock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func approvalPlural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func approvalsNonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func approvalsJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// approvalsAnswerRun answers one request. ID is "<session>/<id>" as listed;
// a bare id is accepted when exactly one running session has it pending.
func approvalsAnswerRun(ctx context.Context, opts *approvalsOptions) error {
	eps, err := control.Discover(opts.RuntimeDir)
	if err != nil {
		return fmt.Errorf("looking for running sessions: %w", err)
	}
	if len(eps) == 0 {
		return &HintError{Err: errNoSession, Hint: noSessionHint}
	}
	c, inner, err := findRequest(ctx, eps, opts.ID)
	if err != nil {
		return err
	}
	defer c.Close()
	a := policy.Answer{Verdict: opts.Verdict, Message: opts.Message}
	if opts.By != nil {
		a.By = opts.By(ctx)
	}
	full := c.Session().ID + control.IDSeparator + inner
	switch err := c.Answer(ctx, inner, a); {
	case errors.Is(err, tunnel.ErrAlreadyAnswered):
		return &HintError{Err: fmt.Errorf("%s was already answered (by someone else, or it timed out)", full),
			Hint: "run guardrun approvals to see what is still waiting"}
	case errors.Is(err, tunnel.ErrUnknownRequest):
		return &HintError{Err: fmt.Errorf("session %s has no request %s", c.Session().ID, inner),
			Hint: "run guardrun approvals to see what is waiting"}
	case err != nil:
		return fmt.Errorf("answering %s: %w", full, err)
	}
	switch opts.Verdict {
	case policy.VerdictApproveSession:
		fmt.Fprintf(opts.IO.ErrOut, "✓ approved %s, and its statement shape for the rest of session %s\n", full, c.Session().ID)
	case policy.VerdictApproveOnce:
		fmt.Fprintf(opts.IO.ErrOut, "✓ approved %s\n", full)
	default:
		fmt.Fprintf(opts.IO.ErrOut, "✗ denied %s\n", full)
	}
	return nil
}

// findRequest picks the session that holds id and dials it; the returned id
// is the session's own request id.
func findRequest(ctx context.Context, eps []control.Endpoint, id string) (*control.Client, string, error) {
	if sess, inner, ok := strings.Cut(id, control.IDSeparator); ok {
		var match []control.Endpoint
		for _, ep := range eps {
			if ep.Session.ID == sess {
				match = []control.Endpoint{ep}
				break
			}
			if strings.HasPrefix(ep.Session.ID, sess) {
				match = append(match, ep)
			}
		}
		switch len(match) {
		case 0:
			return nil, "", &HintError{Err: fmt.Errorf("session %s is not running", sess), Hint: "run guardrun approvals to see the running sessions and what they hold"}
		case 1:
			c, err := control.DialContext(ctx, match[0].Path)
			if err != nil {
				return nil, "", fmt.Errorf("session %s: %w", sess, err)
			}
			return c, inner, nil
		default:
			return nil, "", &HintError{Err: fmt.Errorf("%q matches more than one session", sess), Hint: "give the whole session id, as guardrun approvals lists it"}
		}
	}
	// A bare id: look for it in every session's pending list.
	var (
		found *control.Client
		n     int
	)
	for _, ep := range eps {
		c, err := control.DialContext(ctx, ep.Path)
		if err != nil {
			continue
		}
		var list []policy.ApprovalRequest
		select {
		case list = <-c.Updates():
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		has := false
		for _, r := range list {
			has = has || r.ID == id
		}
		if has && found == nil {
			found = c
		} else {
			c.Close()
		}
		if has {
			n++
		}
	}
	switch {
	case n == 1:
		return found, id, nil
	case n > 1:
		found.Close()
		return nil, "", &HintError{Err: fmt.Errorf("request %s is waiting in %d sessions", id, n), Hint: "name it as SESSION/ID, as guardrun approvals lists it"}
	}
	return nil, "", &HintError{Err: fmt.Errorf("no request %s is waiting", id), Hint: "run guardrun approvals to see what is waiting (it may have been answered or timed out)"}
}

// pendingIDCompletion completes the ids of requests waiting now.
func pendingIDCompletion(f *Factory) func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m := control.Watch(ctx, f.Paths().Runtime)
		defer m.Close()
		var out []cobra.Completion
		select {
		case list := <-m.Updates():
			for _, r := range list {
				if strings.HasPrefix(r.ID, toComplete) {
					out = append(out, cobra.CompletionWithDesc(r.ID, r.Connection+": "+approvalOneLine(r.SQL, 50)))
				}
			}
		case <-ctx.Done():
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func approvalOneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
