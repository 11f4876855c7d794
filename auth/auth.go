// Package auth signs the developer in with the OAuth 2.0 device
// authorization grant (RFC 8628) against the organisation's OIDC issuer,
// verifies the ID token, and stores tokens in the OS keyring.
//
// Rules this package keeps:
//   - Tokens never appear in a log line, an error message or a value meant
//     for display; Identity carries claims only.
//   - No clock, sleep or HTTP client is global: Options carries them, and the
//     zero Options uses the real ones.
//   - Errors are sentinels (ErrNotLoggedIn, ErrExpired, ...) or typed
//     (*OAuthError); the cli package turns them into words and exit codes.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Config is the organisation's OIDC issuer and this CLI's client there. It
// mirrors the `auth:` section of guardrun.yaml.
type Config struct {
	Issuer   string
	ClientID string
	// Scopes requested; empty means DefaultScopes(). "openid" is always added.
	Scopes []string
	// Audience, when set, is sent as the `audience` parameter (providers
	// such as Auth0 need it to issue an access token for an API).
	Audience string
}

// DefaultScopes are requested when Config.Scopes is empty. offline_access
// asks for a refresh token so that later sessions need no browser.
func DefaultScopes() []string { return []string{"openid", "profile", "email", "offline_access"} }

func (c Config) scopes() []string {
	s := c.Scopes
	if len(s) == 0 {
		s = DefaultScopes()
	}
	for _, v := range s {
		if v == "openid" {
			return s
		}
	}
	return append([]string{"openid"}, s...)
}

func (c Config) validate() error {
	if c.Issuer == "" || c.ClientID == "" {
		return ErrNoConfig
	}
	return nil
}

// Identity is who runs a session: the ID token's claims when SSO verified
// them, or what the local machine says (Verified false).
type Identity struct {
	Issuer   string   `json:"issuer,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Verified bool     `json:"verified"`
	// Method is how the identity was established: "sso" or "local".
	Method string `json:"method"`
}

// Display is the shortest useful name for a person: email, else name, else
// subject.
func (id Identity) Display() string {
	switch {
	case id.Email != "":
		return id.Email
	case id.Name != "":
		return id.Name
	}
	return id.Subject
}

// Sentinel errors. Wrapped errors keep these reachable through errors.Is.
var (
	// ErrNoConfig: no issuer or client ID configured.
	ErrNoConfig = errors.New("no OIDC issuer configured")
	// ErrNotLoggedIn: no stored login (or one for another issuer/client).
	ErrNotLoggedIn = errors.New("not signed in")
	// ErrExpired: the stored login can no longer be refreshed (refresh token
	// expired or revoked, or none was issued); `guardrun login` again.
	ErrExpired = errors.New("sign-in expired")
	// ErrNoDeviceEndpoint: the issuer's discovery document has no
	// device_authorization_endpoint.
	ErrNoDeviceEndpoint = errors.New("the OIDC provider does not support the device authorization grant")
	// ErrAccessDenied: the user (or the provider) denied the request.
	ErrAccessDenied = errors.New("sign-in was denied")
	// ErrCodeExpired: the one-time code expired before it was approved.
	ErrCodeExpired = errors.New("the one-time code expired before it was approved")
	// ErrBadResponse: the provider answered something that is not the JSON
	// the protocol asks for.
	ErrBadResponse = errors.New("unexpected response from the OIDC provider")
	// ErrInvalidIDToken: the ID token failed verification.
	ErrInvalidIDToken = errors.New("the ID token did not verify")
	// ErrNoKeyring: no system keyring is reachable and file storage was
	// refused (StoreOptions.SecureOnly).
	ErrNoKeyring = errors.New("no system keyring is reachable")
	// ErrNoRevocation: the provider has no revocation_endpoint.
	ErrNoRevocation = errors.New("the OIDC provider has no revocation endpoint")
)

// OAuthError is an OAuth 2.0 error response (RFC 6749 section 5.2) other
// than the ones that have a sentinel. Description comes from the provider
// and never contains a token.
type OAuthError struct {
	Endpoint    string // "token", "device_authorization", "revocation"
	Code        string // "invalid_client", "invalid_grant", ...
	Description string
	Status      int
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("%s endpoint: %s", e.Endpoint, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Options carries what this package would otherwise take from the world.
// The zero value uses http.DefaultClient, time.Now, a real sleep and a
// discarding logger.
type Options struct {
	HTTPClient *http.Client
	Now        func() time.Time
	// Sleep waits d or until ctx ends (then it returns ctx.Err()).
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
