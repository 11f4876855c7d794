package tui

// The replay player: `guardrun replay ID` in a terminal.
//
//	┌ terminal ─────────────────────────┐┌ timeline ───────────────────┐
//	│ (the agent's screen, played back)  ││ 11:58:02 session start · jane│
//	│                                    ││▸12:01:13 DELETE … orders held│
//	└────────────────────────────────────┘└─────────────────────────────┘
//	 ▶ 1x  03:11 / 06:02   space pause · ←/→ seek · n/N decision · +/- speed · q quit
//
// Rules: the player draws on the terminal the cli hands it (stderr or the
// TTY), full screen, and leaves nothing behind. The agent's recorded output
// is fed to a virtual terminal (never to the real one), so nothing in a
// record can drive the reader's terminal; the timeline drops control
// characters. Update does no I/O: time arrives as replayTickMsg, and the
// virtual terminal is memory. A session without a terminal cast (guardrun
// connect) plays as a statement transcript instead of a screen. Close stops
// the virtual terminal's reply drain.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/guardrun/guardrun/recorder"
)

// ReplayData is what the player plays: the record's timeline and, when the
// session had a terminal, its cast.
type ReplayData struct {
	Session  recorder.Summary
	Report   *recorder.Report // nil: not verified
	Header   recorder.CastHeader
	Cast     []recorder.CastEvent // empty: no terminal (statement transcript)
	Timeline []TimelineEntry
}

// ReplayOptions tune the player.
type ReplayOptions struct {
	Speed     float64       // playback speed; 0 = 1
	IdleLimit time.Duration // pauses longer than this are cut to it; 0 = keep
	Paused    bool          // start paused
	Loc       *time.Location
	Styles    Styles
	Keys      ReplayKeys
}

// ReplayKeys are the player's key bindings.
type ReplayKeys struct {
	Pause, Back, Forward, NextDecision, PrevDecision, Faster, Slower, Start, End, Quit key.Binding
}

// DefaultReplayKeys: space pauses, ←/→ seek 5 s, n/N jump between decisions,
// +/- change speed, q quits.
func DefaultReplayKeys() ReplayKeys {
	return ReplayKeys{
		Pause:        key.NewBinding(key.WithKeys(" ", "p"), key.WithHelp("space", "pause")),
		Back:         key.NewBinding(key.WithKeys("left", "h"), key.WithHelp("←/→", "seek")),
		Forward:      key.NewBinding(key.WithKeys("right", "l"), key.WithHelp("→", "seek")),
		NextDecision: key.NewBinding(key.WithKeys("n"), key.WithHelp("n/N", "decision")),
		PrevDecision: key.NewBinding(key.WithKeys("N"), key.WithHelp("N", "previous decision")),
		Faster:       key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+/-", "speed")),
		Slower:       key.NewBinding(key.WithKeys("-", "_"), key.WithHelp("-", "slower")),
		Start:        key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "start")),
		End:          key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "end")),
		Quit:         key.NewBinding(key.WithKeys("q", "esc", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp is the help line's bindings.
func (k ReplayKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Pause, k.Back, k.NextDecision, k.Faster, k.Quit}
}

// replayTickMsg advances playback to the time it carries.
type replayTickMsg time.Time

const replayFrame = time.Second / 30

// speeds are the steps of +/-.
var replaySpeeds = [...]float64{0.25, 0.5, 1, 2, 4, 8, 16, 32}

type replayFrameEv struct {
	at   time.Duration // after the idle limit
	code string
	data string
}

// ReplayModel is the player. Use it through a pointer; Close it when the
// program ends.
type ReplayModel struct {
	data    ReplayData
	opts    ReplayOptions
	frames  []replayFrameEv
	entries []time.Duration // each timeline entry's time after the idle limit
	dur     time.Duration

	width, height int
	pos           time.Duration
	playing       bool
	speed         float64
	last          time.Time // time of the previous tick; zero after a pause
	applied       int       // frames fed to the screen
	screen        *mirror   // nil without a cast
	quit          bool
}

// NewReplay builds the player for data.
func NewReplay(data ReplayData, opts ReplayOptions) *ReplayModel {
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	if opts.Loc == nil {
		opts.Loc = time.UTC
	}
	if opts.Keys.Quit.Keys() == nil {
		opts.Keys = DefaultReplayKeys()
	}
	m := &ReplayModel{data: data, opts: opts, speed: opts.Speed, playing: !opts.Paused, width: 100, height: 30}

	// One clock for the cast and the timeline, with long pauses cut.
	var raw []time.Duration
	for _, e := range data.Cast {
		raw = append(raw, secs(e.Time))
	}
	for _, e := range data.Timeline {
		raw = append(raw, e.At)
	}
	squeeze := idleSqueeze(raw, opts.IdleLimit)
	for _, e := range data.Cast {
		m.frames = append(m.frames, replayFrameEv{at: squeeze(secs(e.Time)), code: e.Code, data: e.Data})
	}
	sort.SliceStable(m.frames, func(i, j int) bool { return m.frames[i].at < m.frames[j].at })
	for _, e := range data.Timeline {
		m.entries = append(m.entries, squeeze(e.At))
	}
	for _, f := range m.frames {
		m.dur = max(m.dur, f.at)
	}
	for _, at := range m.entries {
		m.dur = max(m.dur, at)
	}
	m.resetScreen()
	return m
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// idleSqueeze returns a monotonic map from recorded time to playback time
// that cuts every gap between activities down to limit.
func idleSqueeze(times []time.Duration, limit time.Duration) func(time.Duration) time.Duration {
	if limit <= 0 || len(times) == 0 {
		return func(t time.Duration) time.Duration { return t }
	}
	ts := slices.Clone(times)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	out := make([]time.Duration, len(ts))
	var prev, acc time.Duration
	for i, t := range ts {
		acc += min(t-prev, limit)
		out[i] = acc
		prev = t
	}
	return func(t time.Duration) time.Duration {
		i := sort.Search(len(ts), func(i int) bool { return ts[i] > t }) - 1
		if i < 0 {
			return min(t, limit)
		}
		return out[i] + min(t-ts[i], limit)
	}
}

func (m *ReplayModel) resetScreen() {
	if len(m.data.Cast) == 0 {
		return
	}
	if m.screen != nil {
		m.screen.close()
	}
	w, h := m.data.Header.Width, m.data.Header.Height
	m.screen = newMirror(max(w, 1), max(h, 1), io.Discard)
	m.applied = 0
}

// Close stops the virtual terminal.
func (m *ReplayModel) Close() {
	if m.screen != nil {
		m.screen.close()
		m.screen = nil
	}
}

// Position is the playback position and the total length.
func (m *ReplayModel) Position() (pos, total time.Duration) { return m.pos, m.dur }

// Init starts the clock.
func (m *ReplayModel) Init() tea.Cmd {
	if m.playing {
		return m.tick()
	}
	return nil
}

func (m *ReplayModel) tick() tea.Cmd {
	return tea.Tick(replayFrame, func(t time.Time) tea.Msg { return replayTickMsg(t) })
}

// Update handles keys, ticks and window sizes.
func (m *ReplayModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case replayTickMsg:
		if !m.playing {
			return m, nil
		}
		now := time.Time(msg)
		if !m.last.IsZero() {
			m.seek(m.pos + time.Duration(float64(now.Sub(m.last))*m.speed))
		}
		m.last = now
		if m.pos >= m.dur {
			m.playing = false
			m.last = time.Time{}
			return m, nil
		}
		return m, m.tick()
	case tea.KeyMsg:
		k := m.opts.Keys
		switch {
		case key.Matches(msg, k.Quit):
			m.quit = true
			return m, tea.Quit
		case key.Matches(msg, k.Pause):
			if m.playing {
				m.playing = false
				m.last = time.Time{}
				return m, nil
			}
			if m.pos >= m.dur {
				m.seek(0)
			}
			m.playing = true
			return m, m.tick()
		case key.Matches(msg, k.Back):
			m.seek(m.pos - 5*time.Second)
		case key.Matches(msg, k.Forward):
			m.seek(m.pos + 5*time.Second)
		case key.Matches(msg, k.NextDecision):
			for i, at := range m.entries {
				if m.data.Timeline[i].Decisive && at > m.pos {
					m.seek(at)
					break
				}
			}
		case key.Matches(msg, k.PrevDecision):
			cur := m.current()
			for i := len(m.entries) - 1; i >= 0; i-- {
				if m.data.Timeline[i].Decisive && i < cur {
					m.seek(m.entries[i])
					break
				}
			}
		case key.Matches(msg, k.Faster):
			m.speed = nextSpeed(m.speed, +1)
		case key.Matches(msg, k.Slower):
			m.speed = nextSpeed(m.speed, -1)
		case key.Matches(msg, k.Start):
			m.seek(0)
		case key.Matches(msg, k.End):
			m.seek(m.dur)
		}
	}
	return m, nil
}

func nextSpeed(cur float64, dir int) float64 {
	i := slices.IndexFunc(replaySpeeds[:], func(s float64) bool { return s >= cur })
	if i < 0 {
		i = len(replaySpeeds) - 1
	}
	if replaySpeeds[i] != cur && dir < 0 {
		return replaySpeeds[max(i-1, 0)]
	}
	return replaySpeeds[min(max(i+dir, 0), len(replaySpeeds)-1)]
}

// seek moves playback to pos, replaying the cast from the start when going
// back (a virtual terminal cannot run backwards).
func (m *ReplayModel) seek(pos time.Duration) {
	pos = min(max(pos, 0), m.dur)
	if pos < m.pos && m.screen != nil {
		m.resetScreen()
	}
	m.pos = pos
	if m.screen == nil {
		return
	}
	for m.applied < len(m.frames) && m.frames[m.applied].at <= pos {
		f := m.frames[m.applied]
		switch f.code {
		case "o":
			m.screen.write([]byte(f.data))
		case "r":
			var w, h int
			if _, err := fmt.Sscanf(f.data, "%dx%d", &w, &h); err == nil && w > 0 && h > 0 {
				m.screen.resize(w, h)
			}
		}
		m.applied++
	}
}

// current is the index of the last timeline entry at or before the
// position (-1 before the first).
func (m *ReplayModel) current() int {
	cur := -1
	for i, at := range m.entries {
		if at <= m.pos {
			cur = i
		}
	}
	// Entries sharing the position: the first decisive one among the
	// latest is where n stopped.
	return cur
}

// View draws the player.
func (m *ReplayModel) View() string {
	if m.quit {
		return ""
	}
	w, h := max(m.width, 20), max(m.height, 6)
	bodyH := h - 1
	var body []string
	if m.screen != nil {
		// The terminal pane is as wide as the recorded terminal when it
		// fits; the timeline takes the rest (at least 36 columns).
		termW := min(max(m.data.Header.Width, 20)+2, w-min(36, w/2))
		tlW := w - termW
		left := box("terminal", m.terminalLines(termW-2, bodyH-2), termW, bodyH, m.opts.Styles)
		right := box("timeline", m.timelineLines(tlW-2, bodyH-2, false), tlW, bodyH, m.opts.Styles)
		for i := range left {
			body = append(body, left[i]+right[i])
		}
	} else {
		body = box("statements · "+m.data.Session.ID[:min(8, len(m.data.Session.ID))], m.timelineLines(w-2, bodyH-2, true), w, bodyH, m.opts.Styles)
	}
	return strings.Join(append(body, m.statusLine(w)), "\n")
}

func (m *ReplayModel) terminalLines(w, h int) []string {
	var rows []string
	if m.opts.Styles.on {
		rows = strings.Split(m.screen.emu.Render(), "\n")
	} else {
		rows = m.screen.lines()
	}
	// Keep the cursor's row in view when the recorded screen is taller.
	off := 0
	if len(rows) > h {
		cy := m.screen.emu.CursorPosition().Y
		off = min(max(cy-h+1, 0), len(rows)-h)
	}
	out := make([]string, 0, h)
	for i := off; i < len(rows) && len(out) < h; i++ {
		out = append(out, ansi.Truncate(rows[i], w, ""))
	}
	return out
}

// timelineLines renders the entries that fit in h rows, keeping the
// current one in view; entries not reached yet are dimmed.
func (m *ReplayModel) timelineLines(w, h int, transcript bool) []string {
	st := m.opts.Styles
	cur := m.current()
	var lines []string
	var curLine int
	for i, e := range m.data.Timeline {
		if i == cur {
			curLine = len(lines)
		}
		for j, text := range m.entryText(e, w-1, transcript) {
			mark := " "
			if i == cur && j == 0 {
				mark = "▸"
			}
			text = ansi.Truncate(text, w-1, "…")
			switch {
			case e.Kind == EntryBreak:
				text = st.paint(st.Urgent, text)
			case i > cur:
				text = st.paint(st.Meta, text)
			case i == cur:
				text = st.paint(st.Selected, text)
			}
			lines = append(lines, mark+text)
		}
	}
	if transcript {
		// A transcript shows what has happened so far, like a terminal.
		n := 0
		for i := range m.data.Timeline {
			if i <= cur {
				n += len(m.entryText(m.data.Timeline[i], w-1, true))
			}
		}
		lines = lines[:n]
		if len(lines) > h {
			lines = lines[len(lines)-h:]
		}
		return lines
	}
	if len(lines) > h {
		start := min(max(curLine-h/2, 0), len(lines)-h)
		lines = lines[start : start+h]
	}
	return lines
}

// entryText is an entry as one or more pane lines of at most w cells.
func (m *ReplayModel) entryText(e TimelineEntry, w int, transcript bool) []string {
	clock := e.Time.In(m.opts.Loc).Format("15:04:05")
	text := printable(flatSQL(e.Text))
	switch e.Kind {
	case EntryStatement:
		if transcript {
			db := e.Database
			if db == "" {
				db = e.Connection
			}
			out := []string{fmt.Sprintf("%s %s=> %s", clock, printable(db), text)}
			verdict := "         " + e.Decision
			if e.Detail != "" {
				verdict += " · " + e.Detail
			}
			if e.Rule != "" && e.Decision != "allow" {
				verdict += " · rule " + printable(e.Rule)
			}
			return append(out, verdict)
		}
		return []string{padBetween(clock+" "+text, e.Decision, w)}
	case EntryApproval:
		return []string{"           " + printable(e.Text)}
	case EntryBreak:
		return []string{"✗ TAMPERED · " + text}
	}
	return []string{clock + " " + text}
}

// padBetween puts right at the end of a line of w cells, cutting left.
func padBetween(left, right string, w int) string {
	rw := ansi.StringWidth(right)
	if rw+2 > w {
		return ansi.Truncate(left, w, "…")
	}
	left = ansi.Truncate(left, w-rw-2, "…")
	return left + strings.Repeat(" ", w-rw-ansi.StringWidth(left)) + right
}

func (m *ReplayModel) statusLine(w int) string {
	st := m.opts.Styles
	icon := "▶"
	if !m.playing {
		icon = "⏸"
	}
	state := fmt.Sprintf(" %s %sx  %s / %s", icon, speedText(m.speed), clockOf(m.pos), clockOf(m.dur))
	if rep := m.data.Report; rep != nil && rep.Err != nil {
		state += "  " + st.paint(st.Urgent, "TAMPERED")
	}
	var help []string
	for _, b := range m.opts.Keys.ShortHelp() {
		h := b.Help()
		help = append(help, st.paint(st.Key, h.Key)+" "+st.paint(st.Help, h.Desc))
	}
	line := state + "   " + strings.Join(help, " · ")
	return ansi.Truncate(line, w, "")
}

func speedText(s float64) string {
	if s == float64(int(s)) {
		return fmt.Sprintf("%d", int(s))
	}
	return fmt.Sprintf("%g", s)
}

func clockOf(d time.Duration) string {
	s := int(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// box frames lines in a w×h box titled title: ┌ title ──┐ … └──┘.
func box(title string, lines []string, w, h int, st Styles) []string {
	inner := w - 2
	top := "┌ " + title + " "
	top = ansi.Truncate(top, w-1, "") + strings.Repeat("─", max(w-1-ansi.StringWidth(ansi.Truncate(top, w-1, "")), 0)) + "┐"
	out := []string{st.paint(st.Border, top)}
	for i := 0; i < h-2; i++ {
		var l string
		if i < len(lines) {
			l = lines[i]
		}
		pad := max(inner-ansi.StringWidth(l), 0)
		out = append(out, st.paint(st.Border, "│")+l+strings.Repeat(" ", pad)+st.paint(st.Border, "│"))
	}
	out = append(out, st.paint(st.Border, "└"+strings.Repeat("─", max(inner, 0))+"┘"))
	return out
}

// LoadReplay reads what the player needs of session id from st: the events
// (as a timeline, with rep's break when it does not verify) and the cast.
func LoadReplay(st *recorder.Store, id string, rep *recorder.Report) (ReplayData, error) {
	recs, err := st.Events(id)
	if err != nil {
		return ReplayData{}, err
	}
	d := ReplayData{Report: rep, Timeline: Timeline(recs, rep)}
	if rep != nil {
		d.Session = rep.Summary
	} else {
		d.Session.ID = id
	}
	f, err := st.OpenCast(id)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	defer f.Close()
	d.Header, d.Cast, err = recorder.ParseCast(f)
	return d, err
}
