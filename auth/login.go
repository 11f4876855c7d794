package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Store keeps secrets by name. Get returns ErrSecretNotFound for a name that
// holds nothing. SecretStore is the real one.
type Store interface {
	Get(name string) ([]byte, error)
	Set(name string, data []byte) error
	Delete(name string) error
}

// loginName is the store entry holding the signed-in user's record.
const loginName = "login"

// record is the stored login. It holds the refresh token, so it is never
// logged, printed or returned: Login is its public face.
type record struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	Identity     Identity  `json:"identity"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // the access token's
	LoggedInAt   time.Time `json:"logged_in_at"`
	RefreshedAt  time.Time `json:"refreshed_at,omitzero"`
}

// Login is a stored sign-in as it may be shown: no tokens.
type Login struct {
	Identity Identity
	ClientID string
	// Expiry is when the access token expires (zero if the provider did not
	// say); a session started after it refreshes silently.
	Expiry      time.Time
	LoggedInAt  time.Time
	RefreshedAt time.Time
	// Refreshable reports whether a refresh token is held.
	Refreshable bool
}

func (r *record) login() Login {
	return Login{
		Identity:    r.Identity,
		ClientID:    r.ClientID,
		Expiry:      r.Expiry,
		LoggedInAt:  r.LoggedInAt,
		RefreshedAt: r.RefreshedAt,
		Refreshable: r.RefreshToken != "",
	}
}

func saveRecord(store Store, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := store.Set(loginName, b); err != nil {
		return fmt.Errorf("storing the sign-in: %w", err)
	}
	return nil
}

func loadRecord(store Store) (*record, error) {
	b, err := store.Get(loginName)
	if errors.Is(err, ErrSecretNotFound) {
		return nil, ErrNotLoggedIn
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stored sign-in: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Issuer == "" {
		return nil, fmt.Errorf("%w: the stored sign-in is unreadable", ErrNotLoggedIn)
	}
	return &r, nil
}

// Stored returns the stored login without touching the network, or
// ErrNotLoggedIn.
func Stored(store Store) (Login, error) {
	r, err := loadRecord(store)
	if err != nil {
		return Login{}, err
	}
	return r.login(), nil
}

// refreshMargin: an access token this close to expiry is refreshed now
// rather than in the middle of a session.
const refreshMargin = time.Minute

// CurrentLogin returns the stored login for cfg's issuer and client,
// refreshing the access token first when it has expired (or is about to).
// A refreshed ID token is verified again and its claims replace the stored
// ones. Errors: ErrNotLoggedIn (nothing stored, or a login at another
// issuer), ErrExpired (the refresh token no longer works: sign in again),
// or a network/provider error.
func CurrentLogin(ctx context.Context, cfg Config, store Store, opts Options) (Login, error) {
	if err := cfg.validate(); err != nil {
		return Login{}, err
	}
	opts = opts.withDefaults()
	r, err := loadRecord(store)
	if err != nil {
		return Login{}, err
	}
	if !sameIssuer(r.Issuer, cfg.Issuer) || r.ClientID != cfg.ClientID {
		return Login{}, fmt.Errorf("%w at %s (signed in at %s)", ErrNotLoggedIn, cfg.Issuer, r.Issuer)
	}
	if !r.Expiry.IsZero() && opts.Now().Add(refreshMargin).Before(r.Expiry) {
		return r.login(), nil
	}
	if r.RefreshToken == "" {
		return Login{}, ErrExpired
	}
	p, err := discover(ctx, cfg, opts, false)
	if err != nil {
		return Login{}, err
	}
	nr, err := p.refresh(ctx, r)
	if err != nil {
		return Login{}, err
	}
	if err := saveRecord(store, nr); err != nil {
		return Login{}, err
	}
	opts.Logger.Debug("sign-in refreshed", "issuer", nr.Issuer, "subject", nr.Identity.Subject)
	return nr.login(), nil
}

// Current is CurrentLogin's identity: what a session records as its user.
func Current(ctx context.Context, cfg Config, store Store, opts Options) (Identity, error) {
	l, err := CurrentLogin(ctx, cfg, store, opts)
	if err != nil {
		return Identity{}, err
	}
	return l.Identity, nil
}

// LogoutResult says what Logout did.
type LogoutResult struct {
	// Identity is who was signed in (zero when nobody was).
	Identity Identity
	// Revoked: the provider accepted the revocation of the refresh token.
	Revoked bool
	// RevokeErr is why revocation did not happen (ErrNoRevocation, a network
	// error, ...). Local tokens are deleted regardless.
	RevokeErr error
}

// Logout revokes the stored refresh token at its issuer when the issuer has
// a revocation endpoint, then deletes the stored login. Nobody signed in is
// ErrNotLoggedIn. Only a failure to delete the local tokens is an error;
// a failed revocation is reported in LogoutResult.RevokeErr.
func Logout(ctx context.Context, store Store, opts Options) (LogoutResult, error) {
	r, err := loadRecord(store)
	if errors.Is(err, ErrNotLoggedIn) {
		// An unreadable record still gets deleted.
		if derr := store.Delete(loginName); derr != nil {
			return LogoutResult{}, derr
		}
		return LogoutResult{}, ErrNotLoggedIn
	}
	if err != nil {
		return LogoutResult{}, err
	}
	res := LogoutResult{Identity: r.Identity}
	if r.RefreshToken == "" {
		res.RevokeErr = errors.New("no refresh token was held")
	} else if p, err := discover(ctx, Config{Issuer: r.Issuer, ClientID: r.ClientID}, opts, false); err != nil {
		res.RevokeErr = err
	} else if err := p.revoke(ctx, r.RefreshToken); err != nil {
		res.RevokeErr = err
	} else {
		res.Revoked = true
	}
	if err := store.Delete(loginName); err != nil {
		return res, fmt.Errorf("deleting the stored sign-in: %w", err)
	}
	return res, nil
}
