package auth_test

// End-to-end: the real `guardrun login` against a real Dex. Dex is built from
// the module in testdata/dex (kept out of guardrun's go.mod) and cached under
// the user cache directory, keyed by that module's go.sum and the Go version;
// GUARDRUN_DEX_BIN names a prebuilt binary instead. Without a Go toolchain
// or module proxy the test skips, except under CI=true, where it fails.
//
// The test plays the browser: it submits the user code, the login form and
// the approval while `guardrun login` polls, then runs `guardrun whoami`.
// Tokens go to the file fallback: no D-Bus session is reachable from the
// child processes, as on a headless Linux (GUARDRUN_KEYRING=file elsewhere),
// so a developer's real keyring is never touched.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// skipOrFail skips a test that lacks a tool, or fails it under CI.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// goBuild runs go build in dir; the error carries go's output.
func goBuild(ctx context.Context, dir, out string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, b)
	}
	return nil
}

// dexBinary returns a Dex binary, building and caching it when needed.
func dexBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("GUARDRUN_DEX_BIN"); bin != "" {
		return bin
	}
	if _, err := exec.LookPath("go"); err != nil {
		skipOrFail(t, "no Go toolchain to build Dex: %v", err)
	}
	modDir, err := filepath.Abs(filepath.Join("testdata", "dex"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "guardrun-test", "dex-"+hex.EncodeToString(h.Sum(nil))[:16])
	bin := filepath.Join(dir, "dex")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building Dex into %s (a minute or more; cached afterwards)", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tmp := filepath.Join(dir, fmt.Sprintf("dex.%d.tmp", os.Getpid()))
	if err := goBuild(ctx, modDir, tmp, "github.com/dexidp/dex/cmd/dex"); err != nil {
		os.Remove(tmp)
		skipOrFail(t, "cannot build Dex (is the module proxy reachable?): %v", err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// guardrunBinary builds the guardrun command of this module.
func guardrunBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		skipOrFail(t, "no Go toolchain to build guardrun: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "guardrun")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := goBuild(ctx, root, bin, "./cmd/guardrun"); err != nil {
		t.Fatalf("building guardrun: %v", err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuf is a buffer written by a child process and read by the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	dexClient   = "guardrun-cli"
	dexEmail    = "jane@acme.dev"
	dexPassword = "password"
	// bcrypt of "password" (Dex's own example hash).
	dexHash = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
	dexUser = "08a8684b-db88-4b73-90a9-3cd1661f5466"
)

// startDex runs Dex on a free loopback port and returns its issuer URL.
func startDex(t *testing.T, bin string) string {
	t.Helper()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", port)
	cfg := fmt.Sprintf(`issuer: %s
storage:
  type: memory
web:
  http: 127.0.0.1:%d
logger:
  level: debug
oauth2:
  grantTypes:
    - "urn:ietf:params:oauth:grant-type:device_code"
    - "refresh_token"
    - "authorization_code"
  skipApprovalScreen: false
expiry:
  deviceRequests: "5m"
  # Shorter than the minute before expiry at which guardrun refreshes, so
  # whoami refreshes against Dex (rotated refresh token, ID token checked
  # again, same subject).
  idTokens: "45s"
staticClients:
  - id: %s
    name: guardrun
    public: true
    redirectURIs:
      - /device/callback
      - /dex/device/callback
enablePasswordDB: true
staticPasswords:
  - email: %q
    hash: %q
    username: jane
    name: Jane Doe
    userID: %q
    emailVerified: true
    groups: ["eng", "db-admins"]
`, issuer, port, dexClient, dexEmail, dexHash, dexUser)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "dex.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dex logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return issuer
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// guardrunEnv is the environment guardrun runs with: its own config dir,
// no browser, and no reachable keyring.
func guardrunEnv(t *testing.T, home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
			"XDG_STATE_HOME", "HOME", "GUARDRUN_KEYRING", "SSH_CONNECTION", "SSH_TTY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_STATE_HOME="+filepath.Join(home, "state"),
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(home, "no-bus"),
	)
	if runtime.GOOS != "linux" {
		env = append(env, "GUARDRUN_KEYRING=file")
	}
	return env
}

var userCodeRe = regexp.MustCompile(`one-time code: (\S+)`)

func TestDexDeviceLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Dex")
	}
	dex := dexBinary(t)
	guardrun := guardrunBinary(t)
	issuer := startDex(t, dex)
	home := t.TempDir()
	env := guardrunEnv(t, home)
	work := t.TempDir() // no guardrun.yaml: the issuer comes from flags

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	flags := []string{"--issuer", issuer, "--client-id", dexClient, "--scope", "openid,profile,email,groups,offline_access"}
	login := exec.CommandContext(ctx, guardrun, append([]string{"login"}, flags...)...)
	login.Env, login.Dir = env, work
	stdout := &syncBuf{}
	login.Stdout = stdout
	stderrPipe, err := login.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuf{}
	codeCh := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			fmt.Fprintln(stderr, sc.Text())
			if m := userCodeRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case codeCh <- m[1]:
				default:
				}
			}
		}
	}()
	var userCode string
	select {
	case userCode = <-codeCh:
	case <-time.After(30 * time.Second):
		login.Process.Kill()
		<-copied
		login.Wait()
		t.Fatalf("no one-time code printed:\n%s", stderr.String())
	}

	browse(t, issuer, userCode)

	<-copied
	if err := login.Wait(); err != nil {
		t.Fatalf("guardrun login: %v\n%s", err, stderr.String())
	}
	out := stderr.String()
	t.Logf("guardrun login said:\n%s", out)
	for _, want := range []string{
		"! First copy your one-time code: " + userCode + "\n",
		"Open " + issuer + "/device?user_code=" + userCode + " in your browser (not opening it: not a terminal)\n",
		"✓ Signed in as " + dexEmail + " (issuer " + issuer + ") · token stored in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("login output lacks %q", want)
		}
	}
	if i, j := strings.Index(out, "one-time code"), strings.Index(out, "Open "); i < 0 || j < i {
		t.Errorf("the code is not printed before the URL")
	}
	secrets := filepath.Join(home, "config", "guardrun", "secrets")
	if runtime.GOOS == "linux" && !strings.Contains(out, "guardrun: warning: no system keyring; tokens stored in files under "+secrets) {
		t.Errorf("no keyring fallback warning")
	}
	if stdout.String() != "" {
		t.Errorf("login wrote to stdout: %q", stdout.String())
	}
	fi, err := os.Stat(filepath.Join(secrets, "login"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}

	// whoami, with no flags and no project file, shows the stored login.
	// Twice: each run refreshes (the access token lives 45 s), the second
	// with the refresh token the first one stored.
	var wout, werr bytes.Buffer
	for i := range 2 {
		wout.Reset()
		werr.Reset()
		who := exec.CommandContext(ctx, guardrun, "whoami", "--output", "json")
		who.Env, who.Dir = env, work
		who.Stdout, who.Stderr = &wout, &werr
		if err := who.Run(); err != nil {
			t.Fatalf("whoami %d: %v\n%s", i+1, err, werr.String())
		}
		var id struct {
			Issuer, Subject, Email, Method, Storage string
			Groups                                  []string
			Verified                                bool
			Expiry                                  time.Time `json:"token_expiry"`
			Refreshed                               time.Time `json:"refreshed_at"`
		}
		if err := json.Unmarshal(wout.Bytes(), &id); err != nil {
			t.Fatalf("whoami json: %v\n%s", err, wout.String())
		}
		if id.Issuer != issuer || id.Email != dexEmail || !id.Verified || id.Method != "sso" || id.Subject == "" ||
			strings.Join(id.Groups, ",") != "eng,db-admins" || id.Expiry.Before(time.Now()) || id.Refreshed.IsZero() {
			t.Errorf("whoami %d: %s", i+1, wout.String())
		}
	}
	for _, s := range []string{wout.String(), werr.String(), out} {
		if strings.Contains(s, "eyJ") {
			t.Errorf("a token was printed: %s", s)
		}
	}

	// A session started in a project that requires SSO records the verified
	// identity, and no token, on its first line.
	proj := t.TempDir()
	yml := fmt.Sprintf("auth:\n  issuer: %s\n  client_id: %s\n  required: true\n", issuer, dexClient)
	if err := os.WriteFile(filepath.Join(proj, "guardrun.yaml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	run := exec.CommandContext(ctx, guardrun, "--", "true")
	run.Env, run.Dir = env, proj
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("guardrun -- true: %v\n%s", err, b)
	}
	records, _ := filepath.Glob(filepath.Join(home, "data", "guardrun", "sessions", "*", "events.jsonl"))
	if len(records) != 1 {
		t.Fatalf("want one session record, found %v", records)
	}
	rec, err := os.ReadFile(records[0])
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(rec), "\n")
	var start struct {
		Type     string `json:"type"`
		Identity struct {
			Issuer, Email, Method string
			Verified              bool
		} `json:"identity"`
	}
	if err := json.Unmarshal([]byte(first), &start); err != nil {
		t.Fatal(err)
	}
	if start.Type != "session_start" || start.Identity.Email != dexEmail || !start.Identity.Verified ||
		start.Identity.Method != "sso" || start.Identity.Issuer != issuer {
		t.Errorf("session record identity: %s", first)
	}
	if strings.Contains(string(rec), "eyJ") {
		t.Errorf("a token reached the session record")
	}

	// logout deletes the tokens; whoami then needs a login (exit 4).
	logout := exec.CommandContext(ctx, guardrun, "logout")
	logout.Env, logout.Dir = env, work
	if b, err := logout.CombinedOutput(); err != nil || !strings.Contains(string(b), "✓ Signed out "+dexEmail) {
		t.Errorf("logout: %v\n%s", err, b)
	}
	who := exec.CommandContext(ctx, guardrun, "whoami", "--issuer", issuer, "--client-id", dexClient)
	who.Env, who.Dir = env, work
	b, err := who.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(b), "guardrun: hint: run guardrun login") {
		t.Errorf("whoami after logout: %v\n%s", err, b)
	}
}

// browse does what the user does in a browser: enter the code, sign in,
// approve.
func browse(t *testing.T, issuer, userCode string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	step := func(what string) func(*http.Response, error) (string, *url.URL) {
		return func(resp *http.Response, err error) (string, *url.URL) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: HTTP %d\n%s", what, resp.StatusCode, b)
			}
			return string(b), resp.Request.URL
		}
	}
	// The code, as on the page verification_uri_complete opens.
	page, at := step("device page")(c.Get(issuer + "/device?user_code=" + url.QueryEscape(userCode)))
	if !strings.Contains(page, userCode) {
		t.Fatalf("device page does not show the code:\n%s", page)
	}
	page, at = step("submit code")(c.PostForm(issuer+"/device/auth/verify_code", url.Values{"user_code": {userCode}}))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login form at %s:\n%s", at, page)
	}
	page, at = step("login")(c.PostForm(at.String(), url.Values{"login": {dexEmail}, "password": {dexPassword}}))
	m := regexp.MustCompile(`name="req" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no approval form at %s:\n%s", at, page)
	}
	page, _ = step("approve")(c.PostForm(at.String(), url.Values{"req": {m[1]}, "approval": {"approve"}}))
	if !strings.Contains(strings.ToLower(page), "success") && !strings.Contains(strings.ToLower(page), "complete") {
		t.Logf("after approval:\n%s", page)
	}
}
