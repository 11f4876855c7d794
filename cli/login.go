package cli

// `guardrun login`, `logout` and `whoami`: device-code SSO against the
// project's OIDC issuer. Human lines go to stderr (stdout stays for data:
// `whoami --output json`); the waiting line is a Bubble Tea view on a
// terminal and plain text elsewhere. Tokens are never printed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/pkg/browser"
	"github.com/spf13/cobra"

	"github.com/guardrun/guardrun/auth"
	"github.com/guardrun/guardrun/tui"
)

// authFlags are the flags login and whoami share to name an issuer without
// a guardrun.yaml (for trying SSO out).
type authFlags struct {
	Issuer   string
	ClientID string
	Scopes   []string
	Audience string
}

func (a *authFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.Issuer, "issuer", "", "OIDC issuer URL (default: auth.issuer of guardrun.yaml)")
	cmd.Flags().StringVar(&a.ClientID, "client-id", "", "OAuth client ID at the issuer (default: auth.client_id)")
	cmd.Flags().StringSliceVar(&a.Scopes, "scope", nil, "scopes to request (default: auth.scopes, or openid profile email offline_access)")
	cmd.Flags().StringVar(&a.Audience, "audience", "", "audience to request (default: auth.audience)")
}

// resolve merges the flags over the configuration's auth section. cfg may
// be nil.
func (a *authFlags) resolve(cfg *Config) auth.Config {
	var c auth.Config
	if cfg != nil {
		c = auth.Config{Issuer: cfg.Auth.Issuer, ClientID: cfg.Auth.ClientID, Scopes: cfg.Auth.Scopes, Audience: cfg.Auth.Audience}
	}
	if a.Issuer != "" {
		c.Issuer = a.Issuer
		if a.ClientID == "" && (cfg == nil || strings.TrimSuffix(cfg.Auth.Issuer, "/") != strings.TrimSuffix(c.Issuer, "/")) {
			c.ClientID = ""
		}
	}
	if a.ClientID != "" {
		c.ClientID = a.ClientID
	}
	if len(a.Scopes) > 0 {
		c.Scopes = a.Scopes
	}
	if a.Audience != "" {
		c.Audience = a.Audience
	}
	return c
}

const authSnippet = `add the issuer to guardrun.yaml:
  auth:
    issuer: https://login.example.com
    client_id: guardrun
or try one out: guardrun login --issuer URL --client-id ID`

// loginDeps are what the auth verbs take from the world; tests replace
// them.
type loginDeps struct {
	IO        *IOStreams
	Config    func() (*Config, error)
	Getenv    func(string) string
	ConfigDir string
	GOOS      string
	// OpenBrowser opens url in the user's browser.
	OpenBrowser func(url string) error
	// Keyring is the OS keyring; nil means go-keyring's.
	Keyring auth.Keyring
	Auth    auth.Options
}

func newLoginDeps(f *Factory) loginDeps {
	return loginDeps{
		IO: f.IO, Config: f.Config, Getenv: f.Getenv, ConfigDir: f.Paths().Config, GOOS: runtime.GOOS,
		OpenBrowser: browser.OpenURL,
	}
}

// store opens the secret store: the OS keyring, or 0600 files when none is
// reachable (GUARDRUN_KEYRING=file asks for files outright).
func (d loginDeps) store(secureOnly bool) (*auth.SecretStore, error) {
	st, err := auth.NewSecretStore(d.ConfigDir, auth.StoreOptions{
		SecureOnly: secureOnly,
		ForceFile:  d.Getenv("GUARDRUN_KEYRING") == "file",
		Keyring:    d.Keyring,
		Logger:     d.Auth.Logger,
	})
	if errors.Is(err, auth.ErrNoKeyring) {
		return nil, &HintError{
			Err:  fmt.Errorf("no system keyring is reachable, and --secure-storage-only refuses file storage"),
			Hint: "start a Secret Service (gnome-keyring, KeePassXC) in this session, or drop --secure-storage-only to keep tokens in a 0600 file",
		}
	}
	return st, err
}

func (d loginDeps) config() *Config {
	if d.Config == nil {
		return nil
	}
	cfg, err := d.Config()
	if err != nil {
		return nil
	}
	return cfg
}

type loginOptions struct {
	loginDeps
	Flags      authFlags
	NoBrowser  bool
	SecureOnly bool
}

// NewCmdLogin builds `guardrun login`.
func NewCmdLogin(f *Factory) *cobra.Command {
	opts := &loginOptions{loginDeps: newLoginDeps(f)}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in with your organisation's SSO (device code)",
		Long: `Sign in against the OIDC issuer of guardrun.yaml (auth.issuer) with the
OAuth device authorization grant: guardrun shows a one-time code, you approve
it in a browser (on this machine or any other), and the verified identity is
stamped on every session. Tokens go to the system keyring, or to a 0600 file
when no keyring is reachable (GUARDRUN_KEYRING=file asks for the file).`,
		Example: "  guardrun login\n  guardrun login --no-browser\n  guardrun login --issuer https://login.acme.dev --client-id guardrun",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := opts.Config(); err != nil && opts.Flags.Issuer == "" {
				return err
			}
			return loginRun(cmd.Context(), opts)
		},
	}
	opts.Flags.register(cmd)
	cmd.Flags().BoolVar(&opts.NoBrowser, "no-browser", false, "do not open a browser; just print the URL")
	cmd.Flags().BoolVar(&opts.SecureOnly, "secure-storage-only", false, "refuse to store tokens anywhere but the system keyring")
	return cmd
}

// browserDecision says whether opening a browser makes sense here, and if
// not, why (in words for the "not opening it" line).
func browserDecision(getenv func(string) string, goos string, stdinTTY, noBrowser bool) (bool, string) {
	switch {
	case noBrowser:
		return false, "--no-browser"
	case getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "":
		return false, "over SSH"
	case !stdinTTY:
		return false, "not a terminal"
	case goos != "darwin" && goos != "windows" && getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "":
		return false, "no display"
	}
	return true, ""
}

func loginRun(ctx context.Context, opts *loginOptions) error {
	errOut := opts.IO.ErrOut
	acfg := opts.Flags.resolve(opts.config())
	if acfg.Issuer == "" || acfg.ClientID == "" {
		what := "no OIDC issuer configured"
		if acfg.Issuer != "" {
			what = "no OAuth client ID configured for " + acfg.Issuer
		}
		return &HintError{Err: errors.New(what), Hint: authSnippet}
	}
	store, err := opts.store(opts.SecureOnly)
	if err != nil {
		return err
	}
	if w := store.Warning(); w != "" {
		fmt.Fprintf(errOut, "guardrun: warning: %s\n", w)
		fmt.Fprintf(errOut, "guardrun: hint: --secure-storage-only refuses this; a Secret Service (gnome-keyring, KeePassXC) avoids it\n")
	}
	p, err := auth.Discover(ctx, acfg, opts.Auth)
	if err != nil {
		return authError(err, acfg)
	}
	dc, err := p.Start(ctx)
	if err != nil {
		return authError(err, acfg)
	}

	fmt.Fprintf(errOut, "! First copy your one-time code: %s\n", dc.UserCode)
	open, why := browserDecision(opts.Getenv, opts.GOOS, opts.IO.IsStdinTTY(), opts.NoBrowser)
	switch {
	case !open:
		fmt.Fprintf(errOut, "Open %s in your browser (not opening it: %s)\n", dc.URL(), why)
	case opts.OpenBrowser(dc.URL()) != nil:
		fmt.Fprintf(errOut, "Open %s in your browser (could not open one here)\n", dc.URL())
	default:
		fmt.Fprintf(errOut, "Open %s in your browser (opening it now)...\n", dc.URL())
	}

	var login auth.Login
	if opts.IO.CanPrompt() && opts.IO.IsStderrTTY() {
		login, err = waitWithView(ctx, opts, p, dc, store)
	} else {
		fmt.Fprintf(errOut, "Waiting for approval (the code expires in %s)...\n", clockText(time.Until(dc.ExpiresAt)))
		login, err = p.Wait(ctx, dc, store)
	}
	if err != nil {
		return authError(err, acfg)
	}
	fmt.Fprintf(errOut, "✓ Signed in as %s (issuer %s) · token stored in %s\n",
		loginWho(login.Identity), login.Identity.Issuer, storageText(store))
	return nil
}

// waitWithView polls while the Bubble Tea line shows the spinner and the
// remaining time. ctrl+c in the view cancels the polling.
func waitWithView(ctx context.Context, opts *loginOptions, p *auth.Provider, dc *auth.DeviceCode, store auth.Store) (auth.Login, error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := tui.NewLogin(dc.ExpiresAt, time.Now(), tui.NewStyles(opts.IO.ErrOut, opts.Getenv("NO_COLOR") == ""))
	prog := tea.NewProgram(m, tea.WithInput(opts.IO.In), tea.WithOutput(opts.IO.ErrOut), tea.WithContext(pctx))
	var (
		login auth.Login
		err   error
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		login, err = p.Wait(pctx, dc, store)
		prog.Send(tui.LoginDoneMsg{Err: err})
	}()
	final, runErr := prog.Run()
	cancel()
	<-done
	if lm, ok := final.(tui.LoginModel); ok && lm.Cancelled() {
		return auth.Login{}, context.Canceled
	}
	if err == nil && runErr != nil && !errors.Is(runErr, tea.ErrProgramKilled) {
		// The view failed but the sign-in went through.
		return login, nil
	}
	return login, err
}

func clockText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func loginWho(id auth.Identity) string {
	if s := id.Display(); s != "" {
		return s
	}
	return "(no name)"
}

func storageText(st *auth.SecretStore) string {
	if st.Backend() == auth.BackendKeyring {
		return "the system keyring"
	}
	return st.Location() + " (0600)"
}

// authError turns auth's errors into words and next steps.
func authError(err error, c auth.Config) error {
	var oe *auth.OAuthError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ne):
		return err
	case errors.Is(err, auth.ErrNoConfig):
		return &HintError{Err: err, Hint: authSnippet}
	case errors.Is(err, auth.ErrNotLoggedIn):
		return &HintError{Err: errors.New("not signed in"), Hint: "run guardrun login", Code: ExitNeedsLogin}
	case errors.Is(err, auth.ErrExpired):
		return &HintError{Err: errors.New("your sign-in has expired"), Hint: "run guardrun login", Code: ExitNeedsLogin}
	case errors.Is(err, auth.ErrNoDeviceEndpoint):
		return &HintError{Err: fmt.Errorf("%s does not offer the device authorization grant (no device_authorization_endpoint)", c.Issuer),
			Hint: "ask your identity team to enable the device code flow (RFC 8628) for client " + c.ClientID}
	case errors.Is(err, auth.ErrAccessDenied):
		return &HintError{Err: errors.New("sign-in was denied in the browser"), Hint: "run guardrun login to try again"}
	case errors.Is(err, auth.ErrCodeExpired):
		return &HintError{Err: errors.New("the one-time code expired before it was approved"), Hint: "run guardrun login again and approve the code in time"}
	case errors.Is(err, auth.ErrInvalidIDToken):
		return &HintError{Err: err, Hint: "check auth.issuer and auth.client_id; a wrong system clock also causes this"}
	case errors.As(err, &oe) && (oe.Code == "invalid_client" || oe.Code == "unauthorized_client"):
		return &HintError{Err: err, Hint: fmt.Sprintf("check auth.client_id (%s): it must be a public client allowed to use the device grant", c.ClientID)}
	case errors.Is(err, auth.ErrBadResponse):
		return &HintError{Err: err, Hint: fmt.Sprintf("is %s the OIDC issuer URL (its /.well-known/openid-configuration must answer)?", c.Issuer)}
	case errors.As(err, &ne):
		return &HintError{Err: err, Hint: fmt.Sprintf("is %s reachable from here?", c.Issuer)}
	}
	return err
}

// NewCmdLogout builds `guardrun logout`.
func NewCmdLogout(f *Factory) *cobra.Command {
	opts := &loginDeps{}
	*opts = newLoginDeps(f)
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke your SSO tokens at the provider and delete them here",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return logoutRun(cmd.Context(), opts) },
	}
}

func logoutRun(ctx context.Context, opts *loginDeps) error {
	store, err := opts.store(false)
	if err != nil {
		return err
	}
	res, err := auth.Logout(ctx, store, opts.Auth)
	if errors.Is(err, auth.ErrNotLoggedIn) {
		fmt.Fprintln(opts.IO.ErrOut, "Not signed in; nothing to do.")
		return nil
	}
	if err != nil {
		return err
	}
	var how string
	switch {
	case res.Revoked:
		how = "token revoked at " + res.Identity.Issuer + " and deleted from " + storageText(store)
	case errors.Is(res.RevokeErr, auth.ErrNoRevocation):
		how = "deleted from " + storageText(store) + " (the provider has no revocation endpoint)"
	default:
		how = "deleted from " + storageText(store)
		fmt.Fprintf(opts.IO.ErrOut, "guardrun: warning: could not revoke the token at %s: %v\n", res.Identity.Issuer, res.RevokeErr)
	}
	fmt.Fprintf(opts.IO.ErrOut, "✓ Signed out %s · %s\n", loginWho(res.Identity), how)
	return nil
}

type whoamiOptions struct {
	loginDeps
	Flags  authFlags
	Output string
}

// NewCmdWhoami builds `guardrun whoami`.
func NewCmdWhoami(f *Factory) *cobra.Command {
	opts := &whoamiOptions{loginDeps: newLoginDeps(f)}
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who you are signed in as",
		Long: `Show the signed-in identity (issuer, subject, email, groups), when the access
token expires and where the tokens are stored. An expired access token is
refreshed first. Not signed in: exit code 4.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return whoamiRun(cmd.Context(), opts) },
	}
	opts.Flags.register(cmd)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

// whoamiJSON is `whoami --output json`.
type whoamiJSON struct {
	Issuer     string    `json:"issuer"`
	Subject    string    `json:"subject"`
	Email      string    `json:"email,omitempty"`
	Name       string    `json:"name,omitempty"`
	Groups     []string  `json:"groups"`
	Verified   bool      `json:"verified"`
	Method     string    `json:"method"`
	ClientID   string    `json:"client_id"`
	Expiry     time.Time `json:"token_expiry,omitzero"`
	SignedInAt time.Time `json:"signed_in_at,omitzero"`
	Refreshed  time.Time `json:"refreshed_at,omitzero"`
	Refresh    bool      `json:"refreshable"`
	Storage    string    `json:"storage"`
	Location   string    `json:"storage_location"`
}

func whoamiRun(ctx context.Context, opts *whoamiOptions) error {
	if opts.Output != "text" && opts.Output != "json" && opts.Output != "" {
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json"}
	}
	store, err := opts.store(false)
	if err != nil {
		return err
	}
	acfg := opts.Flags.resolve(opts.config())
	if acfg.Issuer == "" || acfg.ClientID == "" {
		// No project issuer: show whatever login is stored.
		stored, err := auth.Stored(store)
		if err != nil {
			return authError(err, acfg)
		}
		acfg = auth.Config{Issuer: stored.Identity.Issuer, ClientID: stored.ClientID}
	}
	l, err := auth.CurrentLogin(ctx, acfg, store, opts.Auth)
	if err != nil {
		return authError(err, acfg)
	}
	if opts.Output == "json" {
		groups := l.Identity.Groups
		if groups == nil {
			groups = []string{}
		}
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(whoamiJSON{
			Issuer: l.Identity.Issuer, Subject: l.Identity.Subject, Email: l.Identity.Email, Name: l.Identity.Name,
			Groups: groups, Verified: l.Identity.Verified, Method: l.Identity.Method, ClientID: l.ClientID,
			Expiry: l.Expiry, SignedInAt: l.LoggedInAt, Refreshed: l.RefreshedAt, Refresh: l.Refreshable,
			Storage: store.Backend(), Location: store.Location(),
		})
	}
	printWhoami(opts.IO.Out, l, store, time.Now())
	return nil
}

func printWhoami(w io.Writer, l auth.Login, store *auth.SecretStore, now time.Time) {
	id := l.Identity
	head := loginWho(id)
	if id.Name != "" && id.Name != head {
		head += " (" + id.Name + ")"
	}
	fmt.Fprintf(w, "%s\n", head)
	row := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k, v) }
	row("issuer", id.Issuer)
	row("subject", id.Subject)
	if id.Email != "" {
		row("email", id.Email)
	}
	if len(id.Groups) > 0 {
		row("groups", strings.Join(id.Groups, ", "))
	}
	if !l.Expiry.IsZero() {
		left := l.Expiry.Sub(now).Round(time.Minute)
		note := "refreshed when a session starts"
		if left > 0 {
			note = fmt.Sprintf("in %dm", int(left/time.Minute))
			if left >= time.Hour {
				note = fmt.Sprintf("in %dh%02dm", int(left/time.Hour), int(left%time.Hour/time.Minute))
			}
		}
		row("token", fmt.Sprintf("expires %s (%s)", l.Expiry.Local().Format("2006-01-02 15:04"), note))
	}
	row("storage", storageText(store))
}
