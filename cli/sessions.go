package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tui"
	"github.com/spf13/cobra"
)

// sessionsOptions are the inputs of `guardrun sessions ...`.
type sessionsOptions struct {
	IO     *IOStreams
	Config func() (*Config, error)
	Paths  func() Paths
	Now    func() time.Time
	Loc    *time.Location

	Output    string   // text or json
	IDs       []string // show, verify, export
	All       bool     // verify --all
	Bundle    string   // verify --bundle
	File      string   // export -o
	OlderThan string   // prune --older-than
}

// NewCmdSessions builds `guardrun sessions` and its verbs.
func NewCmdSessions(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Browse, verify and export the local session records",
		Long: `Every guardrun session leaves a hash-chained, signed record in the session
store (recording.dir, by default $XDG_DATA_HOME/guardrun/sessions). These verbs
list the records, show one, verify that none was edited, export one as an
evidence bundle an auditor can check with standard tools, and prune old ones.`,
		Args: cobra.NoArgs,
	}
	newOpts := func() *sessionsOptions {
		return &sessionsOptions{IO: f.IO, Config: f.Config, Paths: f.Paths, Now: time.Now, Loc: time.Local}
	}
	cmd.AddCommand(newCmdSessionsList(f, newOpts(), nil))
	cmd.AddCommand(newCmdSessionsShow(f, newOpts(), nil))
	cmd.AddCommand(newCmdSessionsVerify(f, newOpts(), nil))
	cmd.AddCommand(newCmdSessionsExport(f, newOpts(), nil))
	cmd.AddCommand(newCmdSessionsPrune(f, newOpts(), nil))
	return cmd
}

func runOr(runF func(*sessionsOptions) error, def func(*sessionsOptions) error) func(*sessionsOptions) error {
	if runF != nil {
		return runF
	}
	return def
}

func newCmdSessionsList(f *Factory, opts *sessionsOptions, runF func(*sessionsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List recorded sessions, verifying each",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runOr(runF, sessionsListRun)(opts) },
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newCmdSessionsShow(f *Factory, opts *sessionsOptions, runF func(*sessionsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "show ID",
		Short:             "Show a session's summary and timeline",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSessionIDs(f),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.IDs = args
			return runOr(runF, sessionsShowRun)(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newCmdSessionsVerify(f *Factory, opts *sessionsOptions, runF func(*sessionsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [ID... | --all | --bundle FILE]",
		Short: "Check that session records were not changed after they were written",
		Long: `Verify checks a record's hash chain line by line, the terminal cast against
every checkpoint, and the seal's ed25519 signature. It exits 0 only when every
record named verifies; otherwise it names the session, the file, the line and
what is wrong. A session that crashed verifies as "ended abnormally".`,
		ValidArgsFunction: completeSessionIDs(f),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.IDs = args
			return runOr(runF, sessionsVerifyRun)(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.All, "all", false, "verify every session in the store, and the store's own log")
	cmd.Flags().StringVar(&opts.Bundle, "bundle", "", "verify an evidence bundle (.tar.gz) written by sessions export")
	return cmd
}

func newCmdSessionsExport(f *Factory, opts *sessionsOptions, runF func(*sessionsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "export ID -o FILE.tar.gz",
		Short:             "Write a session's evidence bundle for an auditor",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSessionIDs(f),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.IDs = args
			return runOr(runF, sessionsExportRun)(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "output", "o", "", "bundle file to write (- for standard output)")
	return cmd
}

func newCmdSessionsPrune(f *Factory, opts *sessionsOptions, runF func(*sessionsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prune [--older-than 30d]",
		Short: "Delete old session records (the deletion is logged in the store)",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runOr(runF, sessionsPruneRun)(opts) },
	}
	cmd.Flags().StringVar(&opts.OlderThan, "older-than", "", "age of the records to delete, e.g. 30d or 720h (default: recording.retention)")
	return cmd
}

// openSessionStore opens the configured session store for reading.
func openSessionStore(opts *sessionsOptions) (*recorder.Store, *Config, error) {
	cfg, err := opts.Config()
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	dir := cfg.Recording.Dir
	if dir == "" {
		dir = filepath.Join(opts.Paths().Data, "sessions")
	}
	by := ""
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	st, err := recorder.OpenStore(dir, recorder.StoreOptions{User: by})
	if err != nil {
		return nil, nil, &HintError{Err: fmt.Errorf("cannot open the session store: %w", err), Hint: "check recording.dir in your configuration and its permissions"}
	}
	return st, cfg, nil
}

// findSession resolves an id prefix into words the user can act on.
func findSession(st *recorder.Store, prefix string) (string, error) {
	id, err := st.Find(prefix)
	var amb *recorder.AmbiguousError
	switch {
	case err == nil:
		return id, nil
	case errors.As(err, &amb):
		shown := amb.Matches
		if len(shown) > 4 {
			shown = shown[:4]
		}
		return "", &HintError{Err: fmt.Errorf("%q names %d sessions", prefix, len(amb.Matches)),
			Hint: "type more of the id: " + strings.Join(shown, ", ")}
	case errors.Is(err, recorder.ErrNotFound):
		return "", &HintError{Err: fmt.Errorf("no session %q in %s", prefix, st.Dir()), Hint: "guardrun sessions list shows the recorded sessions"}
	}
	return "", err
}

func sessionsListRun(opts *sessionsOptions) error {
	if err := checkOutput(opts.Output); err != nil {
		return err
	}
	st, _, err := openSessionStore(opts)
	if err != nil {
		return err
	}
	list, err := st.List()
	if err != nil {
		return err
	}
	if opts.Output == "json" {
		if list == nil {
			list = []recorder.Summary{}
		}
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: no sessions recorded yet in %s\n", st.Dir())
		return nil
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	short := shortIDs(ids)
	rows := [][]string{{"ID", "STARTED", "WHO", "COMMAND", "STMTS", "DENIED", "APPROVED", "MASKED", "STATE"}}
	for i := len(list) - 1; i >= 0; i-- { // newest first
		s := list[i]
		rows = append(rows, []string{
			short[s.ID], startedText(s, opts.Now(), opts.Loc), orNone(s.Who), commandText(s),
			strconv.Itoa(s.Statements), strconv.Itoa(s.Denied), strconv.Itoa(s.Approved), strconv.Itoa(s.Masked),
			stateText(s),
		})
	}
	return writeTable(opts.IO.Out, rows, map[int]bool{4: true, 5: true, 6: true, 7: true})
}

func checkOutput(o string) error {
	if o == "text" || o == "json" || o == "" {
		return nil
	}
	return &HintError{Err: fmt.Errorf("unknown output format %q", o), Hint: "use --output text or --output json"}
}

// shortIDs gives each id its shortest unique prefix of at least 8 characters.
func shortIDs(ids []string) map[string]string {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		n := recorder.ShortIDLen
		for ; n < len(id); n++ {
			unique := true
			for _, other := range ids {
				if other != id && strings.HasPrefix(other, id[:n]) {
					unique = false
					break
				}
			}
			if unique {
				break
			}
		}
		out[id] = id[:min(n, len(id))]
	}
	return out
}

func startedText(s recorder.Summary, now time.Time, loc *time.Location) string {
	if s.Started.IsZero() {
		return "-"
	}
	t := s.Started.In(loc)
	n := now.In(loc)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := n.Date()
	var day string
	switch {
	case y1 == y2 && m1 == m2 && d1 == d2:
		day = "today " + t.Format("15:04")
	case n.AddDate(0, 0, -1).Format("2006-01-02") == t.Format("2006-01-02"):
		day = "yesterday " + t.Format("15:04")
	case y1 == y2:
		day = t.Format("Jan 02 15:04")
	default:
		day = t.Format("2006-01-02")
	}
	if s.Duration >= time.Minute {
		day += " (" + roughDuration(s.Duration) + ")"
	}
	return day
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func commandText(s recorder.Summary) string {
	c := s.Agent
	if c == "" && len(s.Command) > 0 {
		c = filepath.Base(s.Command[0])
	}
	return orNone(c)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stateText is the STATE column: sealed ✓, ended abnormally ✓, TAMPERED ✗ line 31.
func stateText(s recorder.Summary) string {
	switch s.State {
	case recorder.StateSealed, recorder.StateAbnormal:
		return string(s.State) + " ✓"
	case recorder.StateRecording:
		return "recording…"
	}
	return "TAMPERED ✗ " + tamperWhere(s.Problem)
}

// tamperWhere turns "events.jsonl line 31 was changed..." into "line 31",
// and "terminal.cast does not match..." into "terminal.cast".
func tamperWhere(problem string) string {
	f := strings.Fields(problem)
	if len(f) >= 3 && f[0] == recorder.EventsFile && f[1] == "line" {
		return "line " + f[2]
	}
	if len(f) > 0 {
		return f[0]
	}
	return ""
}

// writeTable prints rows with two spaces between columns; the columns in
// right are right-aligned. Widths count runes, not bytes.
func writeTable(w io.Writer, rows [][]string, right map[int]bool) error {
	widths := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i > 0 {
				line.WriteString("  ")
			}
			if right[i] {
				line.WriteString(pad + c)
			} else if i < len(r)-1 {
				line.WriteString(c + pad)
			} else {
				line.WriteString(c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sessionsShowRun(opts *sessionsOptions) error {
	if err := checkOutput(opts.Output); err != nil {
		return err
	}
	st, _, err := openSessionStore(opts)
	if err != nil {
		return err
	}
	id, err := findSession(st, opts.IDs[0])
	if err != nil {
		return err
	}
	rep, err := st.Verify(id)
	if err != nil {
		return err
	}
	recs, err := st.Events(id)
	if err != nil {
		return err
	}
	entries := tui.Timeline(recs, rep)
	if opts.Output == "json" {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Session  recorder.Summary    `json:"session"`
			Timeline []tui.TimelineEntry `json:"timeline"`
		}{rep.Summary, entries})
	}
	writeSummary(opts.IO.Out, rep, recs, opts.Loc)
	fmt.Fprintln(opts.IO.Out)
	return tui.WriteTimeline(opts.IO.Out, entries, opts.Loc)
}

// writeSummary prints the header of `sessions show`.
func writeSummary(w io.Writer, rep *recorder.Report, recs []recorder.Record, loc *time.Location) {
	s := rep.Summary
	var start *recorder.SessionStart
	if len(recs) > 0 {
		start, _ = recs[0].Event.(*recorder.SessionStart)
	}
	kv := [][2]string{{"session", s.ID}}
	who := orNone(s.Who)
	if s.Verified {
		who += " (verified by SSO)"
	} else {
		who += " (local identity, not verified)"
	}
	kv = append(kv, [2]string{"who", who})
	if start != nil {
		if start.Identity.Issuer != "" {
			kv = append(kv, [2]string{"issuer", start.Identity.Issuer})
		}
		kv = append(kv, [2]string{"command", orNone(strings.Join(start.Command, " "))})
		if start.WorkDir != "" {
			dir := start.WorkDir
			if start.GitCommit != "" {
				dir += " @ " + shortCommit(start.GitCommit)
			}
			kv = append(kv, [2]string{"directory", dir})
		}
		if start.Host != "" {
			kv = append(kv, [2]string{"host", start.Host})
		}
		if start.PolicyDescription != "" || start.PolicyDigest != "" {
			kv = append(kv, [2]string{"policy", strings.TrimSpace(start.PolicyDescription + " " + shortCommit(start.PolicyDigest))})
		}
		if start.Version != "" {
			kv = append(kv, [2]string{"guardrun", start.Version})
		}
	}
	kv = append(kv, [2]string{"started", s.Started.In(loc).Format("2006-01-02 15:04:05 MST") + " · " + roughOrShort(s.Duration)})
	if len(s.Connections) > 0 {
		kv = append(kv, [2]string{"connections", strings.Join(s.Connections, ", ")})
	}
	kv = append(kv, [2]string{"statements", fmt.Sprintf("%d · %d denied · %d approved · %d values masked", s.Statements, s.Denied, s.Approved, s.Masked)})
	if s.ExitCode != nil {
		kv = append(kv, [2]string{"exit code", strconv.Itoa(*s.ExitCode)})
	}
	kv = append(kv, [2]string{"record", verifyText(rep)})
	for _, p := range kv {
		fmt.Fprintf(w, "%-12s %s\n", p[0], printableText(p[1]))
	}
}

func roughOrShort(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return roughDuration(d)
}

func shortCommit(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// printableText drops control characters from text read from a record.
func printableText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// verifyText says in one line how a record verified.
func verifyText(rep *recorder.Report) string {
	if rep.Err != nil {
		return "TAMPERED ✗ " + rep.Err.Error()
	}
	var b strings.Builder
	switch rep.State {
	case recorder.StateSealed:
		b.WriteString("sealed ✓")
		if rep.Signed {
			fmt.Fprintf(&b, " · signed by device key %s", keyFingerprint(rep.PublicKey))
		} else {
			b.WriteString(" · unsigned")
		}
	case recorder.StateRecording:
		b.WriteString("still recording ✓ so far")
	default:
		b.WriteString("ended abnormally ✓ (no seal: every event written before the end verifies)")
	}
	fmt.Fprintf(&b, " · %d events", rep.Lines)
	if rep.HasCast {
		fmt.Fprintf(&b, " · terminal %s", sizeText(rep.CastBytes))
		if rep.CastBound < rep.CastBytes {
			fmt.Fprintf(&b, " (last %s after the last checkpoint unverified)", sizeText(rep.CastBytes-rep.CastBound))
		}
	}
	return b.String()
}

func keyFingerprint(hexKey string) string {
	if len(hexKey) > 16 {
		return hexKey[:16]
	}
	return hexKey
}

func sizeText(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// tamperHint is the next step after a record fails to verify.
const tamperHint = "compare with an exported bundle or the team's evidence store"

func sessionsVerifyRun(opts *sessionsOptions) error {
	if opts.Bundle != "" {
		if len(opts.IDs) > 0 || opts.All {
			return &HintError{Err: errors.New("--bundle verifies a file; it takes no session ids"), Hint: "guardrun sessions verify --bundle FILE.tar.gz"}
		}
		return verifyBundleRun(opts)
	}
	if len(opts.IDs) == 0 && !opts.All {
		return &HintError{Err: errors.New("name the sessions to verify"), Hint: "guardrun sessions verify ID, or --all for every session"}
	}
	st, _, err := openSessionStore(opts)
	if err != nil {
		return err
	}
	ids := opts.IDs
	if opts.All {
		list, err := st.List()
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, s := range list {
			ids = append(ids, s.ID)
		}
	}
	all, err := st.IDs()
	if err != nil {
		return err
	}
	short := shortIDs(all)
	var failed []error
	for _, prefix := range ids {
		id, err := findSession(st, prefix)
		if err != nil {
			return err
		}
		rep, err := st.Verify(id)
		if err != nil {
			return err
		}
		if rep.Err != nil {
			failed = append(failed, fmt.Errorf("session %s does not verify: %s", short[id], tamperWords(rep.Err)))
			continue
		}
		fmt.Fprintf(opts.IO.Out, "%s  %s\n", short[id], verifyText(rep))
	}
	if opts.All {
		entries, err := st.VerifyLog()
		var te *recorder.TamperError
		switch {
		case errors.As(err, &te):
			failed = append(failed, fmt.Errorf("the store log does not verify: %s", tamperWords(te)))
		case err != nil:
			return err
		default:
			pruned := 0
			for _, e := range entries {
				if e.Type == "prune" {
					pruned += len(e.Sessions)
				}
			}
			fmt.Fprintf(opts.IO.Out, "store log  ✓ %d entries · %d sessions pruned\n", len(entries), pruned)
		}
		if len(ids) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "guardrun: no sessions recorded yet in %s\n", st.Dir())
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return &HintError{Err: failed[0], Hint: tamperHint}
	}
	for _, e := range failed {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: error: %s\n", e)
	}
	return &HintError{Err: fmt.Errorf("%d of %d records do not verify", len(failed), len(ids)+btoi(opts.All)), Hint: tamperHint}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tamperWords is a TamperError as a sentence: "events.jsonl line 31 was
// changed after it was written".
func tamperWords(err error) string { return err.Error() }

func verifyBundleRun(opts *sessionsOptions) error {
	f, err := os.Open(opts.Bundle)
	if err != nil {
		return &HintError{Err: fmt.Errorf("cannot open the bundle: %w", err), Hint: "pass the .tar.gz that guardrun sessions export wrote"}
	}
	defer f.Close()
	rep, err := recorder.VerifyBundle(f)
	if err != nil {
		return &HintError{Err: err, Hint: "pass the .tar.gz that guardrun sessions export wrote"}
	}
	if rep.Err != nil {
		return &HintError{Err: fmt.Errorf("bundle %s (session %s) does not verify: %s", filepath.Base(opts.Bundle), recorder.ShortID(rep.ID), tamperWords(rep.Err)), Hint: tamperHint}
	}
	fmt.Fprintf(opts.IO.Out, "%s  %s\n", recorder.ShortID(rep.ID), verifyText(rep))
	if rep.Signed {
		fmt.Fprintf(opts.IO.Out, "signing key %s\n", rep.PublicKey)
	}
	return nil
}

func sessionsExportRun(opts *sessionsOptions) error {
	if opts.File == "" {
		return &HintError{Err: errors.New("say where to write the bundle"), Hint: fmt.Sprintf("guardrun sessions export %s -o session-%s.tar.gz", opts.IDs[0], opts.IDs[0])}
	}
	st, _, err := openSessionStore(opts)
	if err != nil {
		return err
	}
	id, err := findSession(st, opts.IDs[0])
	if err != nil {
		return err
	}
	var rep *recorder.Report
	if opts.File == "-" {
		if rep, err = st.Export(id, opts.IO.Out); err != nil {
			return err
		}
	} else {
		tmp, err := os.CreateTemp(filepath.Dir(opts.File), ".guardrun-export-*")
		if err != nil {
			return &HintError{Err: fmt.Errorf("cannot write %s: %w", opts.File, err), Hint: "pick a directory you can write to"}
		}
		defer os.Remove(tmp.Name())
		rep, err = st.Export(id, tmp)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), opts.File)
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", opts.File, err)
		}
	}
	name := opts.File
	if name == "-" {
		name = "standard output"
	}
	if rep.Err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: warning: session %s does not verify: %s; exported as it is\n", recorder.ShortID(id), tamperWords(rep.Err))
	}
	fmt.Fprintf(opts.IO.ErrOut, "guardrun: wrote session %s to %s · %s\n", recorder.ShortID(id), name, verifyText(rep))
	if opts.File != "-" {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: check it anywhere with: guardrun sessions verify --bundle %s (or see VERIFY.txt inside)\n", opts.File)
	}
	return nil
}

func sessionsPruneRun(opts *sessionsOptions) error {
	st, cfg, err := openSessionStore(opts)
	if err != nil {
		return err
	}
	age := cfg.Recording.Retention
	if opts.OlderThan != "" {
		if age, err = ParseRetention(opts.OlderThan); err != nil {
			return &HintError{Err: err, Hint: "e.g. --older-than 30d"}
		}
	}
	if age <= 0 {
		return &HintError{Err: errors.New("no age to prune at: recording.retention is not set"), Hint: "pass --older-than 30d, or set recording.retention in your configuration"}
	}
	removed, err := st.Prune(age)
	for _, id := range removed {
		fmt.Fprintf(opts.IO.Out, "removed %s\n", id)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: no session older than %s\n", roughDuration(age))
		return nil
	}
	fmt.Fprintf(opts.IO.ErrOut, "guardrun: pruned %d sessions older than %s; the store log records it\n", len(removed), roughDuration(age))
	return nil
}
