package tui

// The replay timeline: a session's events turned into the lines a person
// reads — statements with their decision and outcome, approvals and who gave
// them, connections, warnings, the end, and (when a record does not verify)
// the break. Pure functions of the record; `guardrun replay`, its text and
// JSON output, and `guardrun sessions show` all use them.

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/guardrun/guardrun/recorder"
)

// Timeline entry kinds.
const (
	EntryStart     = "start"
	EntryTunnel    = "tunnel"
	EntryConn      = "connection"
	EntryAuth      = "auth_failure"
	EntryStatement = "statement"
	EntryApproval  = "approval"
	EntryWarning   = "warning"
	EntryEnd       = "end"
	EntryBreak     = "break"
)

// TimelineEntry is one line of the timeline.
type TimelineEntry struct {
	Time       time.Time     `json:"time"`
	At         time.Duration `json:"at_ns"` // offset from the cast's start (or the session's)
	Kind       string        `json:"kind"`
	Connection string        `json:"connection,omitempty"`
	Database   string        `json:"database,omitempty"`
	Text       string        `json:"text"`               // SQL (masked) or what happened
	Decision   string        `json:"decision,omitempty"` // allow, deny, held, approved, denied, error
	Detail     string        `json:"detail,omitempty"`   // "10 rows · 10 masked (email) · 3ms"
	Rule       string        `json:"rule,omitempty"`
	Reasons    []string      `json:"reasons,omitempty"`
	Line       int           `json:"line"` // events.jsonl line
	// Decisive entries are where n/N stop: a statement the policy denied or
	// held, and each human (or timeout) answer.
	Decisive bool `json:"decisive,omitempty"`
}

type resultKey struct {
	conn  string
	id    uint64
	seq   uint64
	index int
}

// Timeline builds the entries of a record. rep (may be nil) adds the break
// of a record that does not verify, at its line.
func Timeline(recs []recorder.Record, rep *recorder.Report) []TimelineEntry {
	var (
		out       []TimelineEntry
		origin    time.Time
		stmtAt    = map[resultKey]int{} // statement -> entry index
		approvals = map[string]int{}    // approval id -> statement entry index
		connDB    = map[string]string{} // "conn/id" -> database
		users     = map[string]string{}
	)
	for _, r := range recs {
		if cs, ok := r.Event.(*recorder.CastStart); ok && cs != nil {
			origin = r.Time
			break
		}
	}
	if origin.IsZero() && len(recs) > 0 {
		origin = recs[0].Time
	}
	at := func(t time.Time) time.Duration {
		if d := t.Sub(origin); d > 0 {
			return d
		}
		return 0
	}
	add := func(r recorder.Record, e TimelineEntry) int {
		e.Time, e.At, e.Line = r.Time, at(r.Time), r.Line
		out = append(out, e)
		return len(out) - 1
	}
	for _, r := range recs {
		switch ev := r.Event.(type) {
		case *recorder.SessionStart:
			text := "session start · " + orDash(ev.Identity.Who())
			if !ev.Identity.Verified {
				text += " (local identity)"
			}
			if len(ev.Command) > 0 {
				text += " · " + strings.Join(ev.Command, " ")
			}
			add(r, TimelineEntry{Kind: EntryStart, Text: text, Detail: ev.PolicyDescription})
		case *recorder.TunnelOpen:
			add(r, TimelineEntry{Kind: EntryTunnel, Connection: ev.Connection, Text: fmt.Sprintf("%s %s → %s", ev.ConnType, ev.Upstream, ev.Listen)})
		case *recorder.ConnOpen:
			connDB[fmt.Sprintf("%s/%d", ev.Connection, ev.ConnID)] = ev.Database
			users[fmt.Sprintf("%s/%d", ev.Connection, ev.ConnID)] = ev.User
			text := "client connected"
			if ev.Application != "" {
				text += " (" + ev.Application + ")"
			}
			add(r, TimelineEntry{Kind: EntryConn, Connection: ev.Connection, Database: ev.Database, Text: text})
		case *recorder.ConnClose:
			if ev.Error != "" {
				add(r, TimelineEntry{Kind: EntryConn, Connection: ev.Connection, Text: "client disconnected: " + ev.Error})
			}
		case *recorder.AuthFailure:
			add(r, TimelineEntry{Kind: EntryAuth, Connection: ev.Connection, Text: "authentication failed: " + ev.Reason, Decision: "denied", Decisive: true})
		case *recorder.Statement:
			dec := ev.Decision
			if dec == "approve" {
				dec = "held"
			}
			i := add(r, TimelineEntry{
				Kind: EntryStatement, Connection: ev.Connection,
				Database: connDB[fmt.Sprintf("%s/%d", ev.Connection, ev.ConnID)],
				Text:     ev.SQL, Decision: dec, Rule: ev.Rule, Reasons: ev.Reasons,
				Decisive: ev.Decision == "deny" || ev.Decision == "approve",
			})
			stmtAt[resultKey{ev.Connection, ev.ConnID, ev.Seq, ev.Index}] = i
		case *recorder.ApprovalRequested:
			// The statement line already says "held"; remember it for the answer.
			for k, i := range stmtAt {
				if k.conn == ev.Connection && k.id == ev.ConnID && k.seq == ev.Seq {
					approvals[ev.ID] = i
				}
			}
		case *recorder.ApprovalAnswered:
			verdict := "denied"
			switch ev.Verdict {
			case "approve_once":
				verdict = "approved"
			case "approve_session":
				verdict = "approved for the session"
			}
			text := fmt.Sprintf("%s by %s", verdict, orDash(ev.By))
			if ev.Via != "" && ev.Via != ev.By {
				text += " via " + ev.Via
			}
			text += fmt.Sprintf(" (%s)", shortDuration(ev.Waited))
			if ev.Message != "" {
				text += ": " + ev.Message
			}
			dec := "approved"
			if ev.Verdict == "deny" {
				dec = "denied"
			}
			e := TimelineEntry{Kind: EntryApproval, Text: text, Decision: dec, Decisive: true}
			if i, ok := approvals[ev.ID]; ok {
				e.Connection = out[i].Connection
				out[i].Decision = dec
			}
			add(r, e)
		case *recorder.Result:
			i, ok := stmtAt[resultKey{ev.Connection, ev.ConnID, ev.Seq, ev.Index}]
			if !ok {
				continue
			}
			out[i].Detail = resultDetail(ev)
			if ev.SQLState != "" && out[i].Decision == "allow" {
				out[i].Decision = "error"
			}
		case *recorder.Warning:
			add(r, TimelineEntry{Kind: EntryWarning, Text: ev.Message})
		case *recorder.SessionEnd:
			text := fmt.Sprintf("session end · exit %d", ev.ExitCode)
			if ev.Reason != "" {
				text += " · " + ev.Reason
			}
			add(r, TimelineEntry{Kind: EntryEnd, Text: text})
		}
	}
	if rep != nil && rep.Err != nil {
		e := TimelineEntry{Kind: EntryBreak, Text: rep.Err.Error(), Decision: "TAMPERED", Decisive: true}
		line := 0
		if te, ok := rep.Err.(*recorder.TamperError); ok && te.File == recorder.EventsFile {
			line = te.Line
		}
		// Place the break before the first entry at or after its line.
		pos := len(out)
		if line > 0 {
			pos = slices.IndexFunc(out, func(x TimelineEntry) bool { return x.Line >= line })
			if pos < 0 {
				pos = len(out)
			}
		}
		if pos < len(out) {
			e.Time, e.At = out[pos].Time, out[pos].At
		} else if len(out) > 0 {
			e.Time, e.At = out[len(out)-1].Time, out[len(out)-1].At
		}
		e.Line = line
		out = slices.Insert(out, pos, e)
	}
	return out
}

func resultDetail(r *recorder.Result) string {
	var parts []string
	if r.SQLState != "" {
		parts = append(parts, "error "+r.SQLState)
	} else {
		parts = append(parts, plural(int(r.Rows), "row"))
	}
	if n, names := maskedSummary(r.Masked); n > 0 {
		parts = append(parts, fmt.Sprintf("%d masked (%s)", n, names))
	}
	if r.Duration > 0 {
		parts = append(parts, shortDuration(r.Duration))
	}
	return strings.Join(parts, " · ")
}

func maskedSummary(m map[string]int) (int, string) {
	total := 0
	var names []string
	for k, n := range m {
		total += n
		names = append(names, k)
	}
	slices.Sort(names)
	return total, strings.Join(names, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// shortDuration prints 850µs, 3ms, 1.2s, 6s, 4m10s, 1h02m.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// flatSQL collapses whitespace so SQL fits one line.
func flatSQL(s string) string { return strings.Join(strings.Fields(s), " ") }

// printable drops control characters: a record's text must not drive the
// reader's terminal (an escape sequence in a statement is shown, not run).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// WriteTimeline prints entries as text, one line each, in local time of
// loc (nil = UTC):
//
//	12:04:11  app  db=> SELECT id, email FROM users LIMIT 10   allow   10 rows · 10 masked (email) · 3ms
//	12:04:36             approved by jane@acme.dev via prompt (6s)
func WriteTimeline(w io.Writer, entries []TimelineEntry, loc *time.Location) error {
	if loc == nil {
		loc = time.UTC
	}
	for _, e := range entries {
		var b strings.Builder
		b.WriteString(e.Time.In(loc).Format("15:04:05"))
		b.WriteString("  ")
		switch e.Kind {
		case EntryStatement:
			db := e.Database
			if db == "" {
				db = e.Connection
			}
			fmt.Fprintf(&b, "%s=> %s", db, flatSQL(e.Text))
			fmt.Fprintf(&b, "   %s", e.Decision)
			if e.Detail != "" {
				fmt.Fprintf(&b, " · %s", e.Detail)
			}
			if e.Decision == "deny" || e.Decision == "held" || e.Decision == "denied" {
				if e.Rule != "" {
					fmt.Fprintf(&b, " · rule %s", e.Rule)
				}
				if len(e.Reasons) > 0 {
					fmt.Fprintf(&b, " · %s", strings.Join(e.Reasons, "; "))
				}
			}
		case EntryApproval:
			b.WriteString("  ↳ " + e.Text)
		case EntryBreak:
			b.WriteString("✗ TAMPERED: the record does not verify from here: " + e.Text)
		default:
			if e.Connection != "" {
				b.WriteString(e.Connection + ": ")
			}
			b.WriteString(e.Text)
			if e.Detail != "" {
				b.WriteString(" · " + e.Detail)
			}
		}
		if _, err := io.WriteString(w, printable(b.String())+"\n"); err != nil {
			return err
		}
	}
	return nil
}
