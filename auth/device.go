package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Provider is a discovered OIDC issuer, ready for the device flow, refresh
// and revocation.
type Provider struct {
	cfg      Config
	opts     Options
	meta     discovery
	verifier *oidc.IDTokenVerifier
}

// discovery is the part of /.well-known/openid-configuration used here.
type discovery struct {
	Issuer              string   `json:"issuer"`
	TokenEndpoint       string   `json:"token_endpoint"`
	DeviceEndpoint      string   `json:"device_authorization_endpoint"`
	RevocationEndpoint  string   `json:"revocation_endpoint"`
	JWKSURI             string   `json:"jwks_uri"`
	UserInfoEndpoint    string   `json:"userinfo_endpoint"`
	AuthorizationURL    string   `json:"authorization_endpoint"`
	IDTokenSigningAlgs  []string `json:"id_token_signing_alg_values_supported"`
	GrantTypesSupported []string `json:"grant_types_supported"`
}

// maxBody caps what is read from the provider.
const maxBody = 1 << 20

// requestTimeout bounds one HTTP exchange with the provider.
const requestTimeout = 30 * time.Second

// Discover reads the issuer's discovery document. A provider without a
// device_authorization_endpoint is ErrNoDeviceEndpoint.
func Discover(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	return discover(ctx, cfg, opts, true)
}

// discover is Discover; refresh and revocation do not need the device
// endpoint (requireDevice false).
func discover(ctx context.Context, cfg Config, opts Options, requireDevice bool) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	wellKnown := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", cfg.Issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	var meta discovery
	status, body, err := do(opts.HTTPClient, req)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", cfg.Issuer, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("discovering %s: %w: HTTP %d", cfg.Issuer, ErrBadResponse, status)
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return nil, fmt.Errorf("discovering %s: %w: %v", cfg.Issuer, ErrBadResponse, err)
	}
	if !sameIssuer(meta.Issuer, cfg.Issuer) {
		return nil, fmt.Errorf("discovering %s: %w: the document names issuer %q", cfg.Issuer, ErrBadResponse, meta.Issuer)
	}
	if meta.TokenEndpoint == "" || meta.JWKSURI == "" {
		return nil, fmt.Errorf("discovering %s: %w: no token_endpoint or jwks_uri", cfg.Issuer, ErrBadResponse)
	}
	if requireDevice && meta.DeviceEndpoint == "" {
		return nil, fmt.Errorf("%s: %w", cfg.Issuer, ErrNoDeviceEndpoint)
	}
	pc := oidc.ProviderConfig{
		IssuerURL:     meta.Issuer,
		AuthURL:       meta.AuthorizationURL,
		TokenURL:      meta.TokenEndpoint,
		DeviceAuthURL: meta.DeviceEndpoint,
		UserInfoURL:   meta.UserInfoEndpoint,
		JWKSURL:       meta.JWKSURI,
		Algorithms:    meta.IDTokenSigningAlgs,
	}
	// The key set fetches keys with this context's client; its
	// cancellation is ignored by go-oidc, so it may outlive ctx.
	keyCtx := oidc.ClientContext(context.WithoutCancel(ctx), opts.HTTPClient)
	op := pc.NewProvider(keyCtx)
	p := &Provider{
		cfg:  cfg,
		opts: opts,
		meta: meta,
		verifier: op.VerifierContext(keyCtx, &oidc.Config{
			ClientID: cfg.ClientID,
			Now:      opts.Now,
		}),
	}
	return p, nil
}

// sameIssuer compares issuer URLs forgiving a trailing slash: some issuers
// end in one (Auth0), and people type them with or without. Tokens are then
// checked against the exact discovered issuer.
func sameIssuer(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// Issuer is the discovered issuer URL.
func (p *Provider) Issuer() string { return p.meta.Issuer }

// CanRevoke reports whether the provider has a revocation endpoint.
func (p *Provider) CanRevoke() bool { return p.meta.RevocationEndpoint != "" }

// DeviceCode is what the user needs to approve a sign-in: the one-time code
// and where to enter it. The device code itself stays inside.
type DeviceCode struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string // may be empty
	ExpiresAt               time.Time
	Interval                time.Duration

	deviceCode string
	nonce      string
}

// String shows what the user sees; the device code stays out of prints
// and logs.
func (d DeviceCode) String() string {
	return fmt.Sprintf("user code %s at %s (expires %s)", d.UserCode, d.URL(), d.ExpiresAt.Format(time.RFC3339))
}

// LogValue keeps the device code out of slog records.
func (d DeviceCode) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_code", d.UserCode), slog.String("url", d.URL()), slog.Time("expires", d.ExpiresAt))
}

// URL is the page to open: the complete URI (code filled in) when offered.
func (d DeviceCode) URL() string {
	if d.VerificationURIComplete != "" {
		return d.VerificationURIComplete
	}
	return d.VerificationURI
}

// defaultInterval is RFC 8628's polling interval when the provider names none.
const defaultInterval = 5 * time.Second

// Start asks for a device code (RFC 8628 section 3.1).
func (p *Provider) Start(ctx context.Context) (*DeviceCode, error) {
	nonce, err := randomString()
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"client_id": {p.cfg.ClientID},
		"scope":     {strings.Join(p.cfg.scopes(), " ")},
		"nonce":     {nonce},
	}
	if p.cfg.Audience != "" {
		form.Set("audience", p.cfg.Audience)
	}
	now := p.opts.Now()
	status, body, err := p.post(ctx, p.meta.DeviceEndpoint, form)
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	if status != http.StatusOK {
		return nil, oauthError("device_authorization", status, body)
	}
	var r struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURL         string `json:"verification_url"` // older Google spelling
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("device authorization: %w: %v", ErrBadResponse, err)
	}
	if r.VerificationURI == "" {
		r.VerificationURI = r.VerificationURL
	}
	if r.DeviceCode == "" || r.UserCode == "" || r.VerificationURI == "" || r.ExpiresIn <= 0 {
		return nil, fmt.Errorf("device authorization: %w: missing device_code, user_code, verification_uri or expires_in", ErrBadResponse)
	}
	dc := &DeviceCode{
		UserCode:                r.UserCode,
		VerificationURI:         r.VerificationURI,
		VerificationURIComplete: r.VerificationURIComplete,
		ExpiresAt:               now.Add(time.Duration(r.ExpiresIn) * time.Second),
		Interval:                time.Duration(r.Interval) * time.Second,
		deviceCode:              r.DeviceCode,
		nonce:                   nonce,
	}
	if dc.Interval <= 0 {
		dc.Interval = defaultInterval
	}
	return dc, nil
}

// slowDownStep is what RFC 8628 section 3.5 adds to the interval, for the
// rest of the flow, on each slow_down.
const slowDownStep = 5 * time.Second

// maxTimeoutBackoff caps the interval grown by connection timeouts.
const maxTimeoutBackoff = time.Minute

// Wait polls the token endpoint as RFC 8628 section 3.4-3.5 says until the
// user approves, denies, or the code expires, then verifies the ID token and
// stores the login in store.
func (p *Provider) Wait(ctx context.Context, dc *DeviceCode, store Store) (Login, error) {
	tr, err := p.poll(ctx, dc)
	if err != nil {
		return Login{}, err
	}
	rec, err := p.record(ctx, tr, dc.nonce, nil)
	if err != nil {
		return Login{}, err
	}
	rec.LoggedInAt = p.opts.Now()
	if err := saveRecord(store, rec); err != nil {
		return Login{}, err
	}
	return rec.login(), nil
}

func (p *Provider) poll(ctx context.Context, dc *DeviceCode) (*tokenResponse, error) {
	interval := dc.Interval
	form := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {dc.deviceCode},
		"client_id":   {p.cfg.ClientID},
	}
	for {
		if err := p.opts.Sleep(ctx, interval); err != nil {
			return nil, err
		}
		if !p.opts.Now().Before(dc.ExpiresAt) {
			return nil, ErrCodeExpired
		}
		status, body, err := p.post(ctx, p.meta.TokenEndpoint, form)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Section 3.5: on a connection timeout, reduce the polling
			// frequency and retry. Anything else (refused, reset, DNS)
			// means the provider is not there: stop.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				interval = min(2*interval, maxTimeoutBackoff)
				p.opts.Logger.Debug("token endpoint timed out; polling slower", "interval", interval)
				continue
			}
			return nil, fmt.Errorf("polling for approval: %w", err)
		}
		if status == http.StatusOK {
			return parseToken(body)
		}
		oe := oauthError("token", status, body)
		var e *OAuthError
		if !errors.As(oe, &e) {
			return nil, fmt.Errorf("polling for approval: %w", oe)
		}
		switch e.Code {
		case "authorization_pending":
			continue
		case "slow_down":
			interval += slowDownStep
			p.opts.Logger.Debug("provider asked to slow down", "interval", interval)
			continue
		case "access_denied":
			return nil, ErrAccessDenied
		case "expired_token":
			return nil, ErrCodeExpired
		}
		return nil, e
	}
}

// tokenResponse is RFC 6749 section 5.1 plus OIDC's id_token.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IDToken      string `json:"id_token"`
}

func parseToken(body []byte) (*tokenResponse, error) {
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("token endpoint: %w: %v", ErrBadResponse, err)
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint: %w: no access_token", ErrBadResponse)
	}
	return &tr, nil
}

// idClaims are the ID token claims guardrun keeps.
type idClaims struct {
	Email         string   `json:"email"`
	EmailVerified *bool    `json:"email_verified"`
	Name          string   `json:"name"`
	PreferredName string   `json:"preferred_username"`
	Groups        []string `json:"groups"`
}

// record turns a token response into what is stored. nonce is checked when
// the ID token carries one (the device grant has no standard nonce, so a
// provider may ignore ours). prev, on refresh, is the stored login: the
// subject must not change (OIDC Core 12.2) and without a new ID token the
// identity carries over.
func (p *Provider) record(ctx context.Context, tr *tokenResponse, nonce string, prev *record) (*record, error) {
	now := p.opts.Now()
	rec := &record{
		Issuer:       p.meta.Issuer,
		ClientID:     p.cfg.ClientID,
		RefreshToken: tr.RefreshToken,
	}
	if tr.ExpiresIn > 0 {
		rec.Expiry = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if prev != nil {
		rec.LoggedInAt = prev.LoggedInAt
		rec.Identity = prev.Identity
		rec.RefreshedAt = now
		if rec.RefreshToken == "" { // not rotated
			rec.RefreshToken = prev.RefreshToken
		}
	}
	if tr.IDToken == "" {
		if prev == nil {
			return nil, fmt.Errorf("%w: the provider returned no ID token (is the openid scope allowed for this client?)", ErrInvalidIDToken)
		}
		return rec, nil
	}
	tok, err := p.verifier.Verify(ctx, tr.IDToken)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidIDToken, err)
	}
	if tok.Nonce != "" && nonce != "" && tok.Nonce != nonce {
		return nil, fmt.Errorf("%w: nonce does not match", ErrInvalidIDToken)
	}
	if prev != nil && prev.Identity.Subject != "" && tok.Subject != prev.Identity.Subject {
		return nil, fmt.Errorf("%w: the refreshed ID token names another subject", ErrInvalidIDToken)
	}
	var c idClaims
	if err := tok.Claims(&c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidIDToken, err)
	}
	name := c.Name
	if name == "" {
		name = c.PreferredName
	}
	rec.Identity = Identity{
		Issuer:   tok.Issuer,
		Subject:  tok.Subject,
		Email:    c.Email,
		Name:     name,
		Groups:   c.Groups,
		Verified: true,
		Method:   "sso",
	}
	if rec.Expiry.IsZero() {
		rec.Expiry = tok.Expiry
	}
	return rec, nil
}

// refresh exchanges the stored refresh token (RFC 6749 section 6).
// invalid_grant means it expired or was revoked: ErrExpired.
func (p *Provider) refresh(ctx context.Context, prev *record) (*record, error) {
	if prev.RefreshToken == "" {
		return nil, ErrExpired
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {prev.RefreshToken},
		"client_id":     {p.cfg.ClientID},
	}
	status, body, err := p.post(ctx, p.meta.TokenEndpoint, form)
	if err != nil {
		return nil, fmt.Errorf("refreshing the sign-in: %w", err)
	}
	if status != http.StatusOK {
		err := oauthError("token", status, body)
		var e *OAuthError
		if errors.As(err, &e) && e.Code == "invalid_grant" {
			return nil, fmt.Errorf("%w (%s)", ErrExpired, e.Description)
		}
		return nil, fmt.Errorf("refreshing the sign-in: %w", err)
	}
	tr, err := parseToken(body)
	if err != nil {
		return nil, err
	}
	return p.record(ctx, tr, "", prev)
}

// revoke revokes a refresh token (RFC 7009).
func (p *Provider) revoke(ctx context.Context, token string) error {
	if p.meta.RevocationEndpoint == "" {
		return ErrNoRevocation
	}
	form := url.Values{
		"token":           {token},
		"token_type_hint": {"refresh_token"},
		"client_id":       {p.cfg.ClientID},
	}
	status, body, err := p.post(ctx, p.meta.RevocationEndpoint, form)
	if err != nil {
		return fmt.Errorf("revoking: %w", err)
	}
	if status != http.StatusOK {
		return oauthError("revocation", status, body)
	}
	return nil
}

func (p *Provider) post(ctx context.Context, endpoint string, form url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return do(p.opts.HTTPClient, req)
}

// do sends req and reads at most maxBody bytes of the answer. Errors name
// the endpoint without its query (which could carry a code).
func do(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, nil, ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// oauthError reads an RFC 6749 section 5.2 error body. A body that is not
// such JSON is ErrBadResponse with the HTTP status.
func oauthError(endpoint string, status int, body []byte) error {
	var r struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Error == "" {
		return fmt.Errorf("%s endpoint: %w: HTTP %d", endpoint, ErrBadResponse, status)
	}
	return &OAuthError{Endpoint: endpoint, Code: r.Error, Description: clip(r.Description), Status: status}
}

func clip(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func randomString() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
