package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/guardrun/guardrun/auth"
)

func TestBrowserDecision(t *testing.T) {
	cases := []struct {
		name      string
		env       map[string]string
		goos      string
		tty, noBr bool
		open      bool
		why       string
	}{
		{"desktop linux", map[string]string{"DISPLAY": ":0"}, "linux", true, false, true, ""},
		{"wayland", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, "linux", true, false, true, ""},
		{"mac", nil, "darwin", true, false, true, ""},
		{"flag", map[string]string{"DISPLAY": ":0"}, "linux", true, true, false, "--no-browser"},
		{"ssh", map[string]string{"DISPLAY": ":0", "SSH_CONNECTION": "10.0.0.1 22 10.0.0.2 5555"}, "linux", true, false, false, "over SSH"},
		{"ssh tty", map[string]string{"SSH_TTY": "/dev/pts/1"}, "darwin", true, false, false, "over SSH"},
		{"pipe", map[string]string{"DISPLAY": ":0"}, "linux", false, false, false, "not a terminal"},
		{"headless", nil, "linux", true, false, false, "no display"},
	}
	for _, c := range cases {
		open, why := browserDecision(func(k string) string { return c.env[k] }, c.goos, c.tty, c.noBr)
		if open != c.open || why != c.why {
			t.Errorf("%s: got (%v, %q), want (%v, %q)", c.name, open, why, c.open, c.why)
		}
	}
}

// memKeyring is an OS keyring in memory.
type memKeyring map[string]string

func (m memKeyring) Get(s, u string) (string, error) {
	v, ok := m[s+"/"+u]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}
func (m memKeyring) Set(s, u, p string) error { m[s+"/"+u] = p; return nil }
func (m memKeyring) Delete(s, u string) error { delete(m, s+"/"+u); return nil }

type deadKeyring struct{}

func (deadKeyring) Get(string, string) (string, error) { return "", errors.New("no session bus") }
func (deadKeyring) Set(string, string, string) error   { return errors.New("no session bus") }
func (deadKeyring) Delete(string, string) error        { return errors.New("no session bus") }

func loginTestDeps(t *testing.T, kr auth.Keyring, cfg *Config) (loginDeps, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return loginDeps{
		IO:          &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		Config:      func() (*Config, error) { return cfg, nil },
		Getenv:      func(string) string { return "" },
		ConfigDir:   t.TempDir(),
		GOOS:        "linux",
		OpenBrowser: func(string) error { t.Error("browser opened"); return nil },
		Keyring:     kr,
	}, &out, &errOut
}

func TestLoginWithoutIssuer(t *testing.T) {
	deps, _, _ := loginTestDeps(t, memKeyring{}, &Config{})
	err := loginRun(context.Background(), &loginOptions{loginDeps: deps})
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "auth:\n    issuer:") || !strings.Contains(he.Hint, "--issuer") {
		t.Fatalf("err = %v (%#v)", err, he)
	}
	var buf bytes.Buffer
	if code := exitCode(&buf, err); code != ExitError || !strings.Contains(buf.String(), "guardrun: error: no OIDC issuer configured") {
		t.Errorf("exit %d, printed %q", code, buf.String())
	}
}

func TestLoginSecureOnlyRefuses(t *testing.T) {
	deps, _, _ := loginTestDeps(t, deadKeyring{}, &Config{Auth: AuthConfig{Issuer: "https://login.acme.dev", ClientID: "guardrun"}})
	err := loginRun(context.Background(), &loginOptions{loginDeps: deps, SecureOnly: true})
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "no system keyring") || !strings.Contains(he.Hint, "Secret Service") {
		t.Fatalf("err = %v", err)
	}
}

func TestWhoamiNotSignedIn(t *testing.T) {
	for _, cfg := range []*Config{{}, {Auth: AuthConfig{Issuer: "https://login.acme.dev", ClientID: "guardrun"}}} {
		deps, out, _ := loginTestDeps(t, memKeyring{}, cfg)
		err := whoamiRun(context.Background(), &whoamiOptions{loginDeps: deps, Output: "json"})
		var buf bytes.Buffer
		if code := exitCode(&buf, err); code != ExitNeedsLogin {
			t.Errorf("issuer %q: exit %d (%v), want %d", cfg.Auth.Issuer, code, err, ExitNeedsLogin)
		}
		if want := "guardrun: error: not signed in\nguardrun: hint: run guardrun login\n"; buf.String() != want {
			t.Errorf("printed %q, want %q", buf.String(), want)
		}
		if out.Len() != 0 {
			t.Errorf("stdout %q", out.String())
		}
	}
}

func TestLogoutNotSignedIn(t *testing.T) {
	deps, _, errOut := loginTestDeps(t, memKeyring{}, &Config{})
	if err := logoutRun(context.Background(), &deps); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "Not signed in") {
		t.Errorf("stderr %q", errOut.String())
	}
}

func TestAuthFlagsResolve(t *testing.T) {
	cfg := &Config{Auth: AuthConfig{Issuer: "https://login.acme.dev", ClientID: "guardrun", Scopes: []string{"openid", "groups"}}}
	if got := (&authFlags{}).resolve(cfg); got.Issuer != "https://login.acme.dev" || got.ClientID != "guardrun" || len(got.Scopes) != 2 {
		t.Errorf("config only: %+v", got)
	}
	// Another issuer on the command line does not inherit the project's client.
	if got := (&authFlags{Issuer: "https://dex.test/"}).resolve(cfg); got.Issuer != "https://dex.test/" || got.ClientID != "" {
		t.Errorf("--issuer: %+v", got)
	}
	if got := (&authFlags{Issuer: "https://login.acme.dev/"}).resolve(cfg); got.ClientID != "guardrun" {
		t.Errorf("--issuer with a slash: %+v", got)
	}
	if got := (&authFlags{Issuer: "https://dex.test", ClientID: "c"}).resolve(nil); got.ClientID != "c" {
		t.Errorf("flags only: %+v", got)
	}
}

func TestAuthErrorsHaveHints(t *testing.T) {
	c := auth.Config{Issuer: "https://login.acme.dev", ClientID: "guardrun"}
	for _, err := range []error{auth.ErrNoDeviceEndpoint, auth.ErrAccessDenied, auth.ErrCodeExpired, auth.ErrExpired, auth.ErrNotLoggedIn, auth.ErrBadResponse, auth.ErrInvalidIDToken, &auth.OAuthError{Endpoint: "token", Code: "invalid_client"}} {
		var he *HintError
		if !errors.As(authError(err, c), &he) || he.Hint == "" {
			t.Errorf("%v: no hint", err)
		}
	}
	if !errors.Is(authError(context.Canceled, c), context.Canceled) {
		t.Error("cancel is not kept")
	}
}
