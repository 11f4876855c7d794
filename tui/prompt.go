package tui

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/guardrun/guardrun/policy"
)

// PendingMsg tells a model the queue's current list of pending requests.
type PendingMsg []policy.ApprovalRequest

// AnsweredMsg reports how an answer the model sent fared.
type AnsweredMsg struct {
	ID     string
	Answer policy.Answer
	Err    error
}

// tickMsg moves the countdown and carries the latest status line.
type tickMsg struct {
	t      time.Time
	status string
}

// PromptKeys are the prompt's key bindings; they are data so the help line
// and the tests read the same table.
type PromptKeys struct {
	Approve        key.Binding
	ApproveSession key.Binding
	Deny           key.Binding
	DenyNote       key.Binding
	Next           key.Binding
	Up             key.Binding
	Down           key.Binding
	Send           key.Binding
	Cancel         key.Binding
}

// DefaultPromptKeys is the keymap of UX.md.
func DefaultPromptKeys() PromptKeys {
	return PromptKeys{
		Approve:        key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "approve once")),
		ApproveSession: key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "approve for this session")),
		Deny:           key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "deny")),
		DenyNote:       key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "deny with note")),
		Next:           key.NewBinding(key.WithKeys("tab", "n"), key.WithHelp("tab", "next request")),
		Up:             key.NewBinding(key.WithKeys("up", "k", "pgup"), key.WithHelp("↑/↓", "scroll")),
		Down:           key.NewBinding(key.WithKeys("down", "j", "pgdown", " ")),
		Send:           key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "send")),
		Cancel:         key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

// PromptOptions configure a Prompt. Everything that does I/O is a function
// returning a tea.Cmd, so the model itself stays pure.
type PromptOptions struct {
	// Answer sends an answer and reports the outcome as an AnsweredMsg.
	Answer func(id string, a policy.Answer) tea.Cmd
	// Notify announces a request the model has not seen before (bell, OSC 9).
	// Optional.
	Notify func(policy.ApprovalRequest) tea.Cmd
	// By is who answers (an email or a local user); empty: the request's User.
	By string
	// Via names the surface in the record: "prompt" (default) or "approvals".
	Via string
	// Styles paints the view; the zero value is colourless.
	Styles Styles
	// Keys overrides DefaultPromptKeys when its Approve binding is set.
	Keys PromptKeys
	// Now is the clock when the prompt opens; ticks move it on.
	Now time.Time
	// Width and Height are the terminal's size until a WindowSizeMsg arrives.
	Width, Height int
	// Backdrop is the agent's screen as plain lines, drawn faint behind the box.
	Backdrop []string
	// Status, when set, is read on every tick (in a command) and shown
	// under the keys as one line.
	Status func() string
	// NoTick stops the model from scheduling its own ticks: whoever runs it
	// sends tickMsg instead (the runners here do, so no timer goroutine
	// outlives the program), or nobody does (tests).
	NoTick bool
}

// Prompt is the approval prompt: one box over the agent's screen showing the
// oldest pending request, "1 of N" when more wait.
type Prompt struct {
	opts PromptOptions
	keys PromptKeys

	reqs   []policy.ApprovalRequest // as the queue last said, oldest first
	sent   []string                 // ids this prompt answered: never shown or answered again
	seen   []string                 // ids already announced
	cur    string                   // id on screen
	now    time.Time
	w, h   int
	scroll int
	notice string
	status string

	noting bool
	note   textinput.Model
}

// NewPrompt returns a prompt showing pending.
func NewPrompt(opts PromptOptions, pending []policy.ApprovalRequest) Prompt {
	if opts.Via == "" {
		opts.Via = "prompt"
	}
	keys := opts.Keys
	if len(keys.Approve.Keys()) == 0 {
		keys = DefaultPromptKeys()
	}
	ti := textinput.New()
	ti.Prompt = "note: "
	ti.Placeholder = "returned to the agent with the deny"
	ti.CharLimit = 300
	// A steady cursor: no blink ticks repainting over the agent's terminal.
	ti.Cursor.SetMode(cursor.CursorStatic)
	m := Prompt{opts: opts, keys: keys, now: opts.Now, w: opts.Width, h: opts.Height, note: ti}
	m, _ = m.setPending(pending)
	return m
}

// Init starts the countdown and announces the first requests.
func (m Prompt) Init() tea.Cmd {
	cmds := []tea.Cmd{m.tick()}
	if m.opts.Notify != nil {
		for _, r := range m.reqs {
			cmds = append(cmds, m.opts.Notify(r))
		}
	}
	return tea.Batch(cmds...)
}

func (m Prompt) tick() tea.Cmd {
	if m.opts.NoTick {
		return nil
	}
	status := m.opts.Status
	return tea.Tick(time.Second, func(t time.Time) tea.Msg {
		msg := tickMsg{t: t}
		if status != nil {
			msg.status = status()
		}
		return msg
	})
}

// Current returns the request on screen, if any.
func (m Prompt) Current() (policy.ApprovalRequest, bool) {
	for _, r := range m.visible() {
		if r.ID == m.cur {
			return r, true
		}
	}
	return policy.ApprovalRequest{}, false
}

// Select shows the request with id, if the prompt still lists it.
func (m Prompt) Select(id string) Prompt {
	if id == m.cur {
		return m
	}
	for _, r := range m.visible() {
		if r.ID == id {
			m.cur, m.scroll = id, 0
			if m.noting {
				m.noting = false
				m.note.Blur()
				m.note.Reset()
			}
		}
	}
	return m
}

// Noting reports whether the note field has the keys.
func (m Prompt) Noting() bool { return m.noting }

// Visible returns the requests the prompt still shows, oldest first.
func (m Prompt) Visible() []policy.ApprovalRequest { return m.visible() }

// Waiting reports how many requests the prompt still shows.
func (m Prompt) Waiting() int { return len(m.visible()) }

func (m Prompt) visible() []policy.ApprovalRequest {
	out := make([]policy.ApprovalRequest, 0, len(m.reqs))
	for _, r := range m.reqs {
		if !slices.Contains(m.sent, r.ID) {
			out = append(out, r)
		}
	}
	return out
}

// setPending takes the queue's new list; it returns the announcements of
// requests not seen before.
func (m Prompt) setPending(reqs []policy.ApprovalRequest) (Prompt, []policy.ApprovalRequest) {
	m.reqs = slices.Clone(reqs)
	var fresh []policy.ApprovalRequest
	for _, r := range m.reqs {
		if !slices.Contains(m.seen, r.ID) {
			m.seen = append(slices.Clip(m.seen), r.ID)
			fresh = append(fresh, r)
		}
	}
	return m.settle(), fresh
}

// settle keeps the request on screen if it is still there, else shows the
// oldest one; a request that vanished without our answer is reported.
func (m Prompt) settle() Prompt {
	vis := m.visible()
	if m.cur != "" && !slices.ContainsFunc(vis, func(r policy.ApprovalRequest) bool { return r.ID == m.cur }) {
		if !slices.Contains(m.sent, m.cur) {
			m.notice = "the previous request was answered elsewhere or timed out"
		}
		m.cur = ""
		m.scroll = 0
		if m.noting {
			m.noting = false
			m.note.Blur()
			m.note.Reset()
		}
	}
	if m.cur == "" && len(vis) > 0 {
		m.cur = vis[0].ID
		m.scroll = 0
	}
	return m
}

// Update handles keys, the queue's lists, answers' outcomes, ticks and resizes.
func (m Prompt) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case PendingMsg:
		var fresh []policy.ApprovalRequest
		m, fresh = m.setPending(msg)
		var cmds []tea.Cmd
		if m.opts.Notify != nil {
			for _, r := range fresh {
				cmds = append(cmds, m.opts.Notify(r))
			}
		}
		return m, tea.Batch(cmds...)
	case AnsweredMsg:
		switch {
		case msg.Err == nil:
		case IsAlreadyAnswered(msg.Err):
			m.notice = "already answered: another answer reached the session first"
		default:
			// The answer did not land: show the request again.
			m.sent = slices.DeleteFunc(slices.Clone(m.sent), func(id string) bool { return id == msg.ID })
			m.notice = "could not send the answer: " + msg.Err.Error()
			m = m.settle()
		}
		return m, nil
	case tickMsg:
		m.now = msg.t
		if m.opts.Status != nil {
			m.status = msg.status
		}
		return m, m.tick()
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		return m, nil
	case tea.KeyMsg:
		if m.noting {
			return m.updateNote(msg)
		}
		return m.updateKey(msg)
	}
	if m.noting {
		var cmd tea.Cmd
		m.note, cmd = m.note.Update(msg)
		return m, cmd
	}
	return m, nil
}

func (m Prompt) updateKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	r, ok := m.Current()
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Approve):
		return m.answer(r, policy.VerdictApproveOnce, "")
	case key.Matches(msg, m.keys.ApproveSession):
		return m.answer(r, policy.VerdictApproveSession, "")
	case key.Matches(msg, m.keys.Deny):
		return m.answer(r, policy.VerdictDeny, "")
	case key.Matches(msg, m.keys.DenyNote):
		m.noting = true
		m.notice = ""
		return m, m.note.Focus()
	case key.Matches(msg, m.keys.Next):
		vis := m.visible()
		for i, v := range vis {
			if v.ID == m.cur {
				m.cur = vis[(i+1)%len(vis)].ID
				m.scroll = 0
				break
			}
		}
		return m, nil
	case key.Matches(msg, m.keys.Up):
		m.scroll = max(0, m.scroll-scrollStep(msg))
		return m, nil
	case key.Matches(msg, m.keys.Down):
		m.scroll += scrollStep(msg) // clamped when drawn
		return m, nil
	}
	return m, nil
}

func scrollStep(msg tea.KeyMsg) int {
	if s := msg.String(); s == "pgup" || s == "pgdown" || s == " " {
		return 5
	}
	return 1
}

func (m Prompt) updateNote(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch {
	case key.Matches(msg, m.keys.Send):
		r, ok := m.Current()
		note := strings.TrimSpace(m.note.Value())
		m.noting = false
		m.note.Blur()
		m.note.Reset()
		if !ok {
			return m, nil
		}
		return m.answer(r, policy.VerdictDeny, note)
	case key.Matches(msg, m.keys.Cancel):
		m.noting = false
		m.note.Blur()
		m.note.Reset()
		return m, nil
	}
	var cmd tea.Cmd
	m.note, cmd = m.note.Update(msg)
	return m, cmd
}

// answer hides r at once (so a second key cannot answer it twice) and sends.
func (m Prompt) answer(r policy.ApprovalRequest, v policy.Verdict, note string) (tea.Model, tea.Cmd) {
	by := m.opts.By
	if by == "" {
		by = r.User
	}
	a := policy.Answer{Verdict: v, By: by, Via: m.opts.Via, Message: note}
	m.sent = append(slices.Clip(m.sent), r.ID)
	m.notice = ""
	m.cur = ""
	m = m.settle()
	if m.opts.Answer == nil {
		return m, func() tea.Msg { return AnsweredMsg{ID: r.ID, Answer: a} }
	}
	return m, m.opts.Answer(r.ID, a)
}

// IsAlreadyAnswered reports whether err says another answer won the race: it
// wraps ErrAlreadyAnswered, has an AlreadyAnswered() bool method that says
// so, or (for a broker that cannot import tui, like tunnel's, whose sentinel
// reads "approval request already answered") says "already answered".
func IsAlreadyAnswered(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrAlreadyAnswered) {
		return true
	}
	var aa interface{ AlreadyAnswered() bool }
	if errors.As(err, &aa) {
		return aa.AlreadyAnswered()
	}
	return strings.Contains(err.Error(), "already answered")
}

// View draws the box over the backdrop, exactly Height lines of Width cells.
func (m Prompt) View() string {
	w, h := m.w, m.h
	if w <= 0 || h <= 0 {
		return ""
	}
	box := m.box(min(w, 100), h)
	if len(m.opts.Backdrop) > 0 {
		box = margin(box, w, h)
	}
	return overlay(m.opts.Styles, m.opts.Backdrop, box, w, h)
}

// margin surrounds box with one blank cell where the terminal has room, so
// the agent's text does not run into the border.
func margin(box []string, w, h int) []string {
	bw := 0
	for _, l := range box {
		bw = max(bw, ansi.StringWidth(l))
	}
	if w < bw+2 {
		return box
	}
	out := make([]string, 0, len(box)+2)
	blank := strings.Repeat(" ", bw+2)
	if h >= len(box)+2 {
		out = append(out, blank)
	}
	for _, l := range box {
		out = append(out, " "+l+strings.Repeat(" ", bw-ansi.StringWidth(l))+" ")
	}
	if h >= len(box)+2 {
		out = append(out, blank)
	}
	return out
}

// overlay centres box on the backdrop and returns h lines.
func overlay(st Styles, backdrop, box []string, w, h int) string {
	bw := 0
	for _, l := range box {
		bw = max(bw, ansi.StringWidth(l))
	}
	left := max(0, (w-bw)/2)
	top := max(0, (h-len(box))/2)
	lines := make([]string, h)
	for y := range h {
		bg := ""
		if y < len(backdrop) {
			bg = ansi.Truncate(backdrop[y], w, "")
		}
		if y < top || y >= top+len(box) {
			lines[y] = st.paint(st.Backdrop, bg)
			continue
		}
		l := ansi.Truncate(bg, left, "")
		l += strings.Repeat(" ", left-ansi.StringWidth(l))
		r := ""
		if ansi.StringWidth(bg) > left+bw {
			r = ansi.TruncateLeft(bg, left+bw, "")
		}
		lines[y] = ansi.Truncate(st.paint(st.Backdrop, l)+box[y-top]+st.paint(st.Backdrop, r), w, "")
	}
	return strings.Join(lines, "\n")
}

// box draws the request on screen in a box bw cells wide and at most maxH
// lines high.
func (m Prompt) box(bw, maxH int) []string {
	st := m.opts.Styles
	bw = max(bw, 24)
	iw := bw - 4
	r, ok := m.Current()

	// Title bar.
	title := "guardrun · approval needed"
	var right string
	if ok {
		vis := m.visible()
		if len(vis) > 1 {
			right = fmt.Sprintf("%d of %d", slices.IndexFunc(vis, func(v policy.ApprovalRequest) bool { return v.ID == r.ID })+1, len(vis))
		}
		if cd, urgent := countdown(r.Deadline, m.now); cd != "" {
			cdp := st.paint(st.Count, cd)
			if urgent {
				cdp = st.paint(st.Urgent, cd)
			}
			if right != "" {
				right = st.paint(st.Count, right+" · ") + cdp
			} else {
				right = cdp
			}
		} else if right != "" {
			right = st.paint(st.Count, right)
		}
	}
	top := m.titleBar(title, right, bw)

	var body []string
	add := func(s string) { body = append(body, s) }
	var sqlLines []string
	var sqlAt int
	var help []string
	if !ok {
		add(st.paint(st.Meta, "answer sent · waiting for the session"))
		if m.notice != "" {
			add(st.paint(st.Notice, m.notice))
		}
	} else {
		add(st.paint(st.Meta, ansi.Truncate(metaLine(r), iw, "…")))
		add("")
		sqlAt = len(body)
		sqlLines = wrapSQL(st, r.SQL, iw-2)
		add("")
		for _, s := range r.Summary {
			for _, l := range hang(st, "▸ ", s, iw) {
				add(l)
			}
		}
		for _, l := range ruleLines(st, r, iw) {
			add(l)
		}
		add("")
		if m.notice != "" {
			for _, l := range strings.Split(ansi.Wrap(m.notice, iw, ""), "\n") {
				add(st.paint(st.Notice, l))
			}
		}
		if m.noting {
			m.note.Width = max(1, iw-len(m.note.Prompt)-1)
			help = append(help, ansi.Truncate(m.note.View(), iw, ""))
			help = append(help, m.helpLine([]key.Binding{m.keys.Send, m.keys.Cancel}, iw)...)
		} else {
			bs := []key.Binding{m.keys.Approve, m.keys.ApproveSession, m.keys.Deny, m.keys.DenyNote}
			if len(m.visible()) > 1 {
				bs = append(bs, m.keys.Next)
			}
			help = m.helpLine(bs, iw)
		}
	}

	// The statement gets what the terminal has left, at least one line.
	fixed := 2 + len(body) + len(help)
	if m.status != "" {
		fixed++
	}
	rows := len(sqlLines)
	if fixed+rows > maxH {
		rows = max(1, maxH-fixed-1) // one line for "more"
	}
	if sqlLines != nil {
		scroll := min(m.scroll, max(0, len(sqlLines)-rows))
		shown := make([]string, 0, rows+1)
		for _, l := range sqlLines[scroll : scroll+min(rows, len(sqlLines))] {
			shown = append(shown, "  "+l)
		}
		if rows < len(sqlLines) {
			shown = append(shown, st.paint(st.Meta, fmt.Sprintf("  ↑/↓ scroll · lines %d–%d of %d", scroll+1, scroll+rows, len(sqlLines))))
		}
		body = slices.Insert(body, sqlAt, shown...)
	}
	body = append(body, help...)
	if m.status != "" {
		body = append(body, st.paint(st.Meta, oneLine(m.status, iw)))
	}

	out := make([]string, 0, len(body)+2)
	out = append(out, top)
	side := st.paint(st.Border, "│")
	for _, l := range body {
		l = ansi.Truncate(l, iw, "")
		out = append(out, side+" "+l+strings.Repeat(" ", iw-ansi.StringWidth(l))+" "+side)
	}
	out = append(out, st.paint(st.Border, "╰"+strings.Repeat("─", bw-2)+"╯"))
	if len(out) > maxH {
		// Too short a terminal: keep the top and the keys.
		keep := len(help) + 1
		out = append(out[:max(1, maxH-keep)], out[len(out)-keep:]...)
		if len(out) > maxH {
			out = out[len(out)-maxH:]
		}
	}
	return out
}

func (m Prompt) titleBar(title, right string, bw int) string {
	st := m.opts.Styles
	tw := ansi.StringWidth(title)
	rw := ansi.StringWidth(right)
	fill := bw - 2 - 1 - (tw + 2) - 1
	if rw > 0 {
		fill -= rw + 2
	}
	if fill < 1 {
		right, rw = "", 0
		fill = bw - 2 - 1 - (tw + 2) - 1
	}
	if fill < 1 {
		title = ansi.Truncate(title, max(1, bw-8), "…")
		fill = max(1, bw-2-1-(ansi.StringWidth(title)+2)-1)
	}
	s := st.paint(st.Border, "╭─ ") + st.paint(st.Title, title) + st.paint(st.Border, " "+strings.Repeat("─", fill))
	if rw > 0 {
		s += " " + right + " "
	}
	return s + st.paint(st.Border, "─╮")
}

func (m Prompt) helpLine(bs []key.Binding, width int) []string {
	st := m.opts.Styles
	var lines []string
	cur, curW := "", 0
	for _, b := range bs {
		h := b.Help()
		item := st.paint(st.Key, "["+h.Key+"]") + " " + st.paint(st.Help, h.Desc)
		iw := ansi.StringWidth("[" + h.Key + "] " + h.Desc)
		sep := 2
		if curW == 0 {
			sep = 0
		}
		if curW > 0 && curW+sep+iw > width {
			lines = append(lines, cur)
			cur, curW, sep = "", 0, 0
		}
		cur += strings.Repeat(" ", sep) + item
		curW += sep + iw
	}
	if curW > 0 {
		lines = append(lines, cur)
	}
	return lines
}

func metaLine(r policy.ApprovalRequest) string {
	parts := []string{}
	conn := r.Connection
	if r.ConnType != "" {
		conn += " (" + r.ConnType + ")"
	}
	if conn != "" {
		parts = append(parts, conn)
	}
	if r.Session != "" {
		parts = append(parts, "session "+r.Session)
	}
	if r.Agent != "" {
		parts = append(parts, r.Agent)
	}
	if r.User != "" {
		parts = append(parts, r.User)
	}
	return strings.Join(parts, " · ")
}

func ruleLines(st Styles, r policy.ApprovalRequest, iw int) []string {
	if r.Rule == "" && len(r.Reasons) == 0 {
		return nil
	}
	rule := r.Rule
	if rule == "" {
		rule = "default"
	}
	head := "rule " + st.paint(st.Rule, rule)
	if len(r.Reasons) == 1 {
		return hang(st, "▸ ", head+": "+r.Reasons[0], iw)
	}
	out := hang(st, "▸ ", head, iw)
	for _, why := range r.Reasons {
		out = append(out, hang(st, "  · ", why, iw)...)
	}
	return out
}

// hang wraps text after a bullet, continuation lines indented under the text.
func hang(st Styles, bullet, text string, iw int) []string {
	bw := ansi.StringWidth(bullet)
	lines := strings.Split(ansi.Wrap(text, max(1, iw-bw), ""), "\n")
	for i, l := range lines {
		if i == 0 {
			lines[i] = st.paint(st.Bullet, bullet) + l
		} else {
			lines[i] = strings.Repeat(" ", bw) + l
		}
	}
	return lines
}

// countdown formats the time left until deadline; urgent under 15 s.
func countdown(deadline, now time.Time) (string, bool) {
	if deadline.IsZero() || now.IsZero() {
		return "", false
	}
	left := deadline.Sub(now)
	if left <= 0 {
		return "timing out", true
	}
	secs := int(math.Ceil(left.Seconds()))
	return fmt.Sprintf("%d:%02d", secs/60, secs%60), secs <= 15
}
