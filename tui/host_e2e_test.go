package tui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guardrun/guardrun/policy"
)

// The end-to-end tests run RunAgent for real: the test binary re-executes
// itself inside a tmux pane (TestHelperAgent), wraps a small bash agent, and
// takes its approval requests from a fake queue the test drives over a unix
// socket. The test reads the pane as a human would see it.

const helperEnv = "GUARDRUN_TUI_HELPER"

// TestHelperAgent is not a test: it is the guardrun side of the end-to-end
// tests, run inside tmux.
func TestHelperAgent(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for the end-to-end tests")
	}
	conn, err := net.Dial("unix", os.Getenv("GR_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var wmu sync.Mutex
	send := func(format string, args ...any) {
		wmu.Lock()
		defer wmu.Unlock()
		fmt.Fprintf(conn, format+"\n", args...)
	}
	q := newFakeQueue()
	q.onAnswer = func(id string, a policy.Answer) {
		send("answered %s %s %s %s %q", id, a.Verdict, a.By, a.Via, a.Message)
	}
	// The helper stays alive after RunAgent until the test has looked at the
	// terminal it left (tmux would draw over a dead pane).
	released := make(chan struct{})
	go func() {
		defer close(released)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 4)
			if f[0] == "add" && len(f) == 4 {
				secs, _ := strconv.Atoi(f[2])
				send("added %s %d", f[1], time.Now().UnixNano())
				q.add(testRequest(f[1], f[3], time.Duration(secs)*time.Second))
			}
		}
	}()
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv("GR_ARGV")), &argv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	arm, _ := time.ParseDuration(os.Getenv("GR_ARM"))
	code, err := RunAgent(context.Background(), HostOptions{
		Argv: argv, In: os.Stdin, Out: os.Stdout, Queue: q,
		Who: "agent", Session: "01jdtest", NoColor: os.Getenv("GR_COLOR") == "", ArmDelay: arm, Grace: 2 * time.Second,
	})
	send("exit %d %v", code, err)
	select {
	case <-released:
	case <-time.After(20 * time.Second):
	}
	_ = conn.Close()
	os.Exit(0)
}

// pane is one tmux session running the helper.
type pane struct {
	t     *testing.T
	sock  string
	conn  net.Conn
	lines chan string
}

func needTmux(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test under tmux; skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tmux is required under CI=true: %v", err)
		}
		t.Skip("tmux not installed (apt-get install tmux)")
	}
}

// startPane runs the helper around argv in a w×h tmux pane.
func startPane(t *testing.T, argv []string, w, h int, arm time.Duration, env ...string) *pane {
	t.Helper()
	needTmux(t)
	dir := t.TempDir()
	// A short path: unix socket paths are limited to ~100 bytes.
	sdir, err := os.MkdirTemp("", "grtui")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sdir) })
	p := &pane{t: t, sock: filepath.Join(sdir, "tmux"), lines: make(chan string, 64)}
	ln, err := net.Listen("unix", filepath.Join(sdir, "q"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	accepted := make(chan net.Conn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		if p.conn != nil {
			_ = p.conn.Close()
		}
		wg.Wait()
	})
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g status off\nset -g remain-on-exit on\nset -g history-limit 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	argvJSON, _ := json.Marshal(argv)
	script := filepath.Join(dir, "run.sh")
	// The helper's stderr (a race report, a panic) goes to a file the test
	// reads at the end: the pane belongs to the agent.
	stderr := filepath.Join(dir, "stderr")
	body := fmt.Sprintf("#!/bin/sh\nexport %s=1 GR_SOCK=%q GR_ARGV=%s GR_ARM=%s TERM=xterm-256color %s\nexec %q -test.run='^TestHelperAgent$' 2>%q\n",
		helperEnv, filepath.Join(sdir, "q"), shellQuote(string(argvJSON)), arm, strings.Join(env, " "), os.Args[0], stderr)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	p.tmux("-f", conf, "new-session", "-d", "-s", "e2e", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), script)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", p.sock, "kill-server").Run()
		if b, _ := os.ReadFile(stderr); len(b) > 0 {
			t.Errorf("the helper wrote to stderr:\n%s", b)
		}
	})
	select {
	case p.conn = <-accepted:
	case <-time.After(20 * time.Second):
		t.Fatalf("the helper did not start:\n%s", p.capture())
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (p *pane) keys(keys ...string) {
	p.t.Helper()
	p.tmux(append([]string{"send-keys", "-t", "e2e"}, keys...)...)
}

// typeLine types text literally and presses Enter.
func (p *pane) typeLine(text string) {
	p.t.Helper()
	p.tmux("send-keys", "-t", "e2e", "-l", text)
	p.keys("Enter")
}

func (p *pane) capture() string {
	out, _ := exec.Command("tmux", "-S", p.sock, "capture-pane", "-p", "-t", "e2e").CombinedOutput()
	return string(out)
}

// cursor returns "x,y,visible,alternate".
func (p *pane) cursor() string {
	return strings.TrimSpace(p.tmux("display-message", "-p", "-t", "e2e", "#{cursor_x},#{cursor_y},#{cursor_flag},#{alternate_on}"))
}

// waitFor polls the pane until ok says yes, and returns the screen.
func (p *pane) waitFor(what string, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := p.capture()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

func (p *pane) waitText(text string) string {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("%q on screen", text), func(s string) bool { return strings.Contains(s, text) })
}

// next returns the helper's next report that starts with prefix, skipping
// others.
func (p *pane) next(prefix string) string {
	p.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("no %q from the helper; screen:\n%s", prefix, p.capture())
		}
	}
}

// add puts a request on the fake queue.
func (p *pane) add(id, sql string) {
	p.t.Helper()
	fmt.Fprintf(p.conn, "add %s 120 %s\n", id, sql)
}

const promptTitle = "guardrun · approval needed"

const agentScript = `echo "agent ready"
while IFS= read -r line; do
  case "$line" in
    quit) echo bye; exit 7 ;;
    slow) (sleep 0.8; echo "late output") & ;;
    many) (sleep 0.8; i=1; while [ $i -le 60 ]; do echo "numbered $i"; i=$((i+1)); done) & ;;
    size) echo "size $(stty size)" ;;
    leave) sleep 1.5; echo "agent leaving"; exit 3 ;;
    alt) printf '\033[?1049h\033[2J\033[H\033[1;31mFULL SCREEN APP\033[m\033[5;10Hcursor here' ;;
    main) printf '\033[?1049l'; echo "back on main" ;;
    modes) printf '\033[?1h\033=\033[?1002h\033[?1006h\033[?2004h\033[?25l'; echo "modes on" ;;
    *) echo "you said: $line" ;;
  esac
done
`

func TestAgentApprovalE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 150*time.Millisecond)
	p.waitText("agent ready")
	p.typeLine("hello")
	p.waitText("you said: hello")
	before, curBefore := p.capture(), p.cursor()

	// A request: the box is drawn over the agent's screen.
	p.add("r1", "DELETE FROM public.orders WHERE created_at < now() - interval '30 days'")
	screen := p.waitText(promptTitle)
	for _, want := range []string{"DELETE FROM public.orders", "[a] approve once", "app (postgres) · session 01jdtest · agent", "you said: hello"} {
		if !strings.Contains(screen, want) {
			t.Errorf("prompt screen lacks %q:\n%s", want, screen)
		}
	}
	time.Sleep(200 * time.Millisecond) // past the arm delay
	p.keys("a")
	if got := p.next("answered"); got != `answered r1 approve_once jane@acme.dev prompt ""` {
		t.Fatalf("queue got %s", got)
	}
	p.waitFor("the agent's screen exactly as it was:\n"+before, func(s string) bool { return s == before })
	if c := p.cursor(); c != curBefore {
		t.Fatalf("cursor %s after the prompt, %s before", c, curBefore)
	}
	// The approving key did not leak to the agent, and the agent has the keys back.
	p.typeLine("world")
	screen = p.waitText("you said: world")
	if strings.Contains(screen, "you said: aworld") {
		t.Fatalf("the prompt's key leaked to the agent:\n%s", screen)
	}

	// Output the agent writes while a prompt is up is kept and shown after.
	p.typeLine("slow")
	p.add("r2", "UPDATE users SET plan = 'pro'")
	p.add("r3", "DROP TABLE tmp")
	screen = p.waitText("1 of 2")
	time.Sleep(1200 * time.Millisecond) // the late output arrives behind the prompt
	screen = p.capture()
	if strings.Contains(screen, "late output") {
		t.Fatalf("the agent drew over the prompt:\n%s", screen)
	}
	p.keys("d")
	if got := p.next("answered"); got != `answered r2 deny jane@acme.dev prompt ""` {
		t.Fatalf("queue got %s", got)
	}
	p.waitText("DROP TABLE tmp")
	p.keys("m")
	p.waitText("note:")
	p.tmux("send-keys", "-t", "e2e", "-l", "use a migration")
	p.keys("Enter")
	if got := p.next("answered"); got != `answered r3 deny jane@acme.dev prompt "use a migration"` {
		t.Fatalf("queue got %s", got)
	}
	screen = p.waitFor("the agent's screen with the late output", func(s string) bool {
		return !strings.Contains(s, promptTitle) && strings.Contains(s, "late output")
	})
	if !strings.Contains(screen, "you said: world") {
		t.Fatalf("earlier output lost:\n%s", screen)
	}
	p.typeLine("quit")
	if got := p.next("exit"); got != "exit 7 <nil>" {
		t.Fatalf("helper reported %q, want the agent's exit code 7", got)
	}
}

func TestAgentResizeDuringPromptE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 0)
	p.waitText("agent ready")
	p.typeLine("size")
	p.waitText("size 30 100")
	p.add("r1", "DELETE FROM public.orders")
	screen := p.waitText(promptTitle)
	if top := lineWith(screen, promptTitle); len([]rune(strings.TrimRight(top, " "))) != 100 {
		t.Fatalf("box top is %d wide at 100 columns: %q", len([]rune(top)), top)
	}
	p.tmux("resize-window", "-t", "e2e", "-x", "80", "-y", "24")
	screen = p.waitFor("the box laid out at 80 columns", func(s string) bool {
		top := lineWith(s, promptTitle)
		return top != "" && len([]rune(strings.TrimRight(top, " "))) == 80
	})
	if n := len(strings.Split(strings.TrimRight(screen, "\n"), "\n")); n > 24 {
		t.Fatalf("%d lines on a 24-line pane", n)
	}
	time.Sleep(300 * time.Millisecond)
	p.keys("s")
	if got := p.next("answered"); !strings.HasPrefix(got, "answered r1 approve_session") {
		t.Fatalf("queue got %s", got)
	}
	p.waitFor("the prompt to go", func(s string) bool { return !strings.Contains(s, promptTitle) })
	p.typeLine("size")
	p.waitText("size 24 80")
	p.typeLine("quit")
	if got := p.next("exit"); got != "exit 7 <nil>" {
		t.Fatalf("helper reported %q", got)
	}
}

func TestAgentExitsDuringPromptE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 0)
	p.waitText("agent ready")
	p.typeLine("leave")
	p.add("r1", "DELETE FROM public.orders")
	p.waitText(promptTitle)
	if got := p.next("exit"); got != "exit 3 <nil>" {
		t.Fatalf("helper reported %q, want the agent's exit code 3", got)
	}
	screen := p.waitText("agent leaving")
	if !strings.HasPrefix(screen, "agent ready\nleave\nagent leaving\n") {
		t.Errorf("the agent's screen is not what it wrote:\n%s", screen)
	}
	if strings.Contains(screen, promptTitle) || strings.Contains(screen, "│") {
		t.Fatalf("the prompt was left on screen:\n%s", screen)
	}
	if c := p.cursor(); c != "0,3,1,0" {
		t.Fatalf("cursor/alternate screen after exit = %s, want a visible cursor on the main screen:\n%s", c, screen)
	}
}

func TestAgentCtrlCE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", `trap 'echo got-int; exit 42' INT; echo ready; sleep 5; echo no-int`}, 100, 30, 0)
	p.waitText("ready")
	start := time.Now()
	p.keys("C-c")
	p.waitText("got-int")
	if got := p.next("exit"); got != "exit 42 <nil>" {
		t.Fatalf("helper reported %q", got)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Ctrl-C took %v to reach the agent", d)
	}
}

// TestAgentAltScreenAndModesE2E: an agent on the alternate screen, with the
// input modes full-screen programs use, gets all of it back after a prompt.
func TestAgentAltScreenAndModesE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 0)
	p.waitText("agent ready")
	p.typeLine("modes")
	p.waitText("modes on")
	p.typeLine("alt")
	p.waitText("FULL SCREEN APP")
	const flags = "#{cursor_x},#{cursor_y},#{cursor_flag},#{alternate_on},#{keypad_cursor_flag},#{keypad_flag},#{mouse_button_flag},#{mouse_sgr_flag}"
	before := p.capture()
	flagsBefore := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "e2e", flags))
	if flagsBefore != "20,4,0,1,1,1,1,1" {
		t.Fatalf("the agent's own modes did not take: %s", flagsBefore)
	}
	p.add("r1", "TRUNCATE audit_log")
	p.waitText(promptTitle)
	time.Sleep(300 * time.Millisecond)
	p.keys("a")
	p.next("answered")
	p.waitFor("the agent's screen exactly as it was:\n"+before, func(s string) bool { return s == before })
	if got := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "e2e", flags)); got != flagsBefore {
		t.Fatalf("modes after the prompt %s, before %s (cursor x,y,visible,alt,cursor keys,keypad,mouse,sgr)", got, flagsBefore)
	}
	// Leaving the alternate screen shows the main screen the agent left.
	p.typeLine("main")
	screen := p.waitText("back on main")
	if !strings.Contains(screen, "modes on") || strings.Contains(screen, "FULL SCREEN APP") {
		t.Fatalf("main screen after the alternate one:\n%s", screen)
	}
	p.typeLine("quit")
	p.next("exit")
}

// TestAgentColourPromptE2E: with colour on, the box keeps its geometry and
// the agent's screen still comes back exactly.
func TestAgentColourPromptE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 0, "GR_COLOR=1")
	p.waitText("agent ready")
	p.typeLine("hello")
	p.waitText("you said: hello")
	before := p.capture()
	p.add("r1", "SELECT * FROM users WHERE email = 'x'")
	screen := p.waitText(promptTitle)
	if top := lineWith(screen, promptTitle); len([]rune(strings.TrimRight(top, " "))) != 100 {
		t.Fatalf("box top is %d wide with colour: %q", len([]rune(top)), top)
	}
	if bottom := lineWith(screen, "╰"); len([]rune(strings.TrimRight(bottom, " "))) != 100 {
		t.Fatalf("box bottom is %d wide with colour: %q", len([]rune(bottom)), bottom)
	}
	styled := p.tmux("capture-pane", "-p", "-e", "-t", "e2e")
	if !strings.Contains(styled, "\x1b[") || !strings.Contains(styled, "SELECT") {
		t.Fatalf("no colour in the prompt:\n%q", styled)
	}
	time.Sleep(300 * time.Millisecond)
	p.keys("d")
	p.next("answered")
	p.waitFor("the agent's screen exactly as it was:\n"+before, func(s string) bool { return s == before })
	p.typeLine("quit")
	p.next("exit")
}

// TestAgentScrollbackDuringPromptE2E: lines the agent printed while hidden
// that scrolled off the screen end up in the terminal's scrollback, in
// order, once each.
func TestAgentScrollbackDuringPromptE2E(t *testing.T) {
	p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", agentScript}, 100, 30, 0)
	p.waitText("agent ready")
	p.typeLine("many")
	p.add("r1", "DELETE FROM public.orders")
	p.waitText(promptTitle)
	time.Sleep(1500 * time.Millisecond)
	p.keys("a")
	p.next("answered")
	p.waitFor("the agent's last line", func(s string) bool { return strings.Contains(s, "numbered 60") && !strings.Contains(s, promptTitle) })
	all := p.tmux("capture-pane", "-p", "-t", "e2e", "-S", "-500")
	var got []string
	for _, l := range strings.Split(all, "\n") {
		if strings.HasPrefix(l, "numbered ") {
			got = append(got, strings.TrimSpace(l))
		}
	}
	var want []string
	for i := 1; i <= 60; i++ {
		want = append(want, fmt.Sprintf("numbered %d", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("scrollback and screen hold %v, want numbered 1..60 once each; pane with history:\n%s", got, all)
	}
	if !strings.Contains(all, "agent ready") {
		t.Fatalf("what was on screen before the prompt is gone:\n%s", all)
	}
	p.typeLine("quit")
	p.next("exit")
}

// TestAgentSignalsE2E: SIGTERM and SIGHUP sent to guardrun reach the agent,
// whose own exit code comes back.
func TestAgentSignalsE2E(t *testing.T) {
	for _, sig := range []string{"TERM", "HUP"} {
		t.Run(sig, func(t *testing.T) {
			p := startPane(t, []string{"bash", "--norc", "--noprofile", "-c", `trap 'echo got-` + sig + `; exit 5' ` + sig + `; echo ready; while :; do sleep 0.1; done`}, 100, 30, 0)
			p.waitText("ready")
			pid := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "e2e", "#{pane_pid}"))
			if out, err := exec.Command("kill", "-"+sig, pid).CombinedOutput(); err != nil {
				t.Fatalf("kill: %v %s", err, out)
			}
			if got := p.next("exit"); got != "exit 5 <nil>" {
				t.Fatalf("helper reported %q, want the agent's exit code 5", got)
			}
			p.waitText("got-" + sig)
		})
	}
}

func lineWith(screen, text string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, text) {
			return l
		}
	}
	return ""
}
