package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func signedIn(t *testing.T, fp *fakeProvider) *memStore {
	t.Helper()
	fp.script = []reply{granted()}
	p, dc := start(t, fp)
	store := newMemStore()
	if _, err := p.Wait(context.Background(), dc, store); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestCurrentUsesStoredTokenUntilExpiry(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.clock.Advance(30 * time.Minute)
	id, err := Current(context.Background(), fp.cfg(), store, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "jane@acme.dev" || !id.Verified || id.Method != "sso" {
		t.Errorf("identity %+v", id)
	}
	// fp.refresh is empty: a refresh would have failed the test.
}

func TestCurrentRefreshesSilently(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.clock.Advance(2 * time.Hour)
	fp.claims["groups"] = []string{"eng"}
	fp.refresh = []reply{granted()}
	l, err := CurrentLogin(context.Background(), fp.cfg(), store, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.Identity.Groups, ","); got != "eng" {
		t.Errorf("groups after refresh = %q, want the new token's", got)
	}
	if want := fp.clock.Now().Add(time.Hour); !l.Expiry.Equal(want) {
		t.Errorf("expiry %v, want %v", l.Expiry, want)
	}
	if l.RefreshedAt.IsZero() || l.LoggedInAt.IsZero() {
		t.Errorf("times not kept: %+v", l)
	}
	b, _ := store.Get(loginName)
	if !strings.Contains(string(b), "refresh-1") {
		t.Errorf("refresh token not kept in the store")
	}
}

func TestCurrentRefreshRejected(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.clock.Advance(2 * time.Hour)
	fp.refresh = []reply{{400, `{"error":"invalid_grant","error_description":"refresh token expired"}`}}
	_, err := Current(context.Background(), fp.cfg(), store, fp.opts())
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	noTokens(t, "error", err.Error())
}

func TestCurrentRefreshChangesSubject(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.clock.Advance(2 * time.Hour)
	fp.claims["sub"] = "someone-else"
	fp.refresh = []reply{granted()}
	if _, err := Current(context.Background(), fp.cfg(), store, fp.opts()); !errors.Is(err, ErrInvalidIDToken) {
		t.Fatalf("err = %v, want ErrInvalidIDToken", err)
	}
}

func TestCurrentNotLoggedIn(t *testing.T) {
	fp := newFakeProvider(t)
	if _, err := Current(context.Background(), fp.cfg(), newMemStore(), fp.opts()); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("err = %v, want ErrNotLoggedIn", err)
	}
	store := signedIn(t, fp)
	other := fp.cfg()
	other.Issuer = "https://login.other.dev"
	if _, err := Current(context.Background(), other, store, fp.opts()); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("other issuer: err = %v, want ErrNotLoggedIn", err)
	}
	if _, err := Current(context.Background(), Config{}, store, fp.opts()); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("no config: err = %v, want ErrNoConfig", err)
	}
}

func TestLogoutRevokes(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	res, err := Logout(context.Background(), store, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Revoked || res.RevokeErr != nil || res.Identity.Email != "jane@acme.dev" {
		t.Errorf("result %+v", res)
	}
	if len(fp.revoked) != 1 || fp.revoked[0] != "refresh-1" {
		t.Errorf("revoked %v", fp.revoked)
	}
	if _, err := Stored(store); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("still signed in after logout: %v", err)
	}
	if _, err := Logout(context.Background(), store, fp.opts()); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("second logout: %v", err)
	}
}

func TestLogoutWithoutRevocationEndpoint(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.noRev = true
	res, err := Logout(context.Background(), store, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Revoked || !errors.Is(res.RevokeErr, ErrNoRevocation) {
		t.Errorf("result %+v", res)
	}
	if _, err := Stored(store); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("still signed in after logout")
	}
}

func TestLogoutProviderDown(t *testing.T) {
	fp := newFakeProvider(t)
	store := signedIn(t, fp)
	fp.srv.Close()
	res, err := Logout(context.Background(), store, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Revoked || res.RevokeErr == nil {
		t.Errorf("result %+v", res)
	}
	if _, err := Stored(store); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("local tokens kept when the provider is down")
	}
}

func TestLocalIdentity(t *testing.T) {
	id := LocalIdentity(context.Background())
	if id.Verified || id.Method != "local" || id.Subject == "" {
		t.Errorf("local identity %+v", id)
	}
}
