package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, fp *fakeProvider) (*Provider, *DeviceCode) {
	t.Helper()
	ctx := context.Background()
	p, err := Discover(ctx, fp.cfg(), fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	dc, err := p.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p, dc
}

func TestDeviceFlowBranches(t *testing.T) {
	cases := []struct {
		name      string
		interval  int
		script    []reply
		wantErr   error  // errors.Is
		wantText  string // in err.Error()
		wantSleep []time.Duration
	}{
		{
			name:      "pending then granted",
			script:    []reply{pending(), pending(), granted()},
			wantSleep: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name:     "slow_down adds 5s for good",
			interval: 2,
			script:   []reply{pending(), slowDown(), pending(), slowDown(), pending(), granted()},
			wantSleep: []time.Duration{2 * time.Second, 2 * time.Second, 7 * time.Second, 7 * time.Second,
				12 * time.Second, 12 * time.Second},
		},
		{
			name:      "no interval means 5s",
			interval:  0,
			script:    []reply{granted()},
			wantSleep: []time.Duration{5 * time.Second},
		},
		{
			name:      "access_denied stops",
			script:    []reply{pending(), {400, `{"error":"access_denied"}`}},
			wantErr:   ErrAccessDenied,
			wantSleep: []time.Duration{5 * time.Second, 5 * time.Second},
		},
		{
			name:      "expired_token stops",
			script:    []reply{{400, `{"error":"expired_token"}`}},
			wantErr:   ErrCodeExpired,
			wantSleep: []time.Duration{5 * time.Second},
		},
		{
			name:     "bad JSON on 200",
			script:   []reply{{200, `{"access_token": `}},
			wantErr:  ErrBadResponse,
			wantText: "token endpoint",
		},
		{
			name:     "HTML error page",
			script:   []reply{{502, `<html>bad gateway</html>`}},
			wantErr:  ErrBadResponse,
			wantText: "HTTP 502",
		},
		{
			name:     "other OAuth error",
			script:   []reply{{401, `{"error":"invalid_client","error_description":"unknown client"}`}},
			wantText: "token endpoint: invalid_client: unknown client",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fp := newFakeProvider(t)
			fp.interval = tc.interval
			if tc.interval == 0 && tc.name != "no interval means 5s" {
				fp.interval = 5
			}
			fp.script = tc.script
			p, dc := start(t, fp)
			store := newMemStore()
			l, err := p.Wait(context.Background(), dc, store)
			if tc.wantErr == nil && tc.wantText == "" {
				if err != nil {
					t.Fatal(err)
				}
				want := Identity{Issuer: fp.srv.URL, Subject: "user-1", Email: "jane@acme.dev", Name: "Jane Doe",
					Groups: []string{"eng", "db-admins"}, Verified: true, Method: "sso"}
				if !reflect.DeepEqual(l.Identity, want) {
					t.Errorf("identity = %+v, want %+v", l.Identity, want)
				}
				if _, err := store.Get(loginName); err != nil {
					t.Errorf("login not stored: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("no error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("err = %q, want it to contain %q", err, tc.wantText)
				}
				noTokens(t, "error", err.Error())
				if _, err := store.Get(loginName); !errors.Is(err, ErrSecretNotFound) {
					t.Errorf("something was stored after a failure")
				}
			}
			if tc.wantSleep != nil && !reflect.DeepEqual(fp.clock.sleeps, tc.wantSleep) {
				t.Errorf("sleeps = %v, want %v", fp.clock.sleeps, tc.wantSleep)
			}
			// The provider saw polls exactly one interval apart.
			for i := 1; i < len(fp.polls) && i < len(tc.wantSleep); i++ {
				if got := fp.polls[i].Sub(fp.polls[i-1]); got != tc.wantSleep[i] {
					t.Errorf("poll %d came %v after the previous, want %v", i, got, tc.wantSleep[i])
				}
			}
		})
	}
}

func TestDeviceCodeExpiresLocally(t *testing.T) {
	fp := newFakeProvider(t)
	fp.interval = 100
	fp.script = []reply{pending(), pending()}
	p, dc := start(t, fp)
	// expires_in is 300: polls at 100 and 200, then at 300 the code is dead
	// and no third request is sent.
	_, err := p.Wait(context.Background(), dc, newMemStore())
	if !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("err = %v, want ErrCodeExpired", err)
	}
	if len(fp.polls) != 2 {
		t.Errorf("polls = %d, want 2", len(fp.polls))
	}
}

func TestServerDown(t *testing.T) {
	fp := newFakeProvider(t)
	p, dc := start(t, fp)
	fp.srv.Close()
	_, err := p.Wait(context.Background(), dc, newMemStore())
	if err == nil || !strings.Contains(err.Error(), "polling for approval") {
		t.Fatalf("err = %v, want a polling error", err)
	}
	if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrCodeExpired) {
		t.Errorf("server down reported as %v", err)
	}
	noTokens(t, "error", err.Error())
}

func TestDiscoverDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := Discover(context.Background(), Config{Issuer: url, ClientID: "x"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "discovering "+url) {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitCancelled(t *testing.T) {
	fp := newFakeProvider(t)
	fp.script = []reply{pending()}
	p, dc := start(t, fp)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Wait(ctx, dc, newMemStore()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNoDeviceEndpoint(t *testing.T) {
	fp := newFakeProvider(t)
	fp.noDev = true
	_, err := Discover(context.Background(), fp.cfg(), fp.opts())
	if !errors.Is(err, ErrNoDeviceEndpoint) {
		t.Fatalf("err = %v, want ErrNoDeviceEndpoint", err)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	fp := newFakeProvider(t)
	cfg := fp.cfg()
	cfg.Issuer += "/"
	p, err := Discover(context.Background(), cfg, fp.opts())
	if err != nil || p.Issuer() != fp.srv.URL {
		t.Fatalf("a trailing slash is not forgiven: %v", err)
	}
	// Another server handing out the provider's document names an issuer
	// that is not the one asked for.
	proxy := httptest.NewServer(http.HandlerFunc(fp.serve))
	defer proxy.Close()
	cfg.Issuer = proxy.URL
	_, err = Discover(context.Background(), cfg, fp.opts())
	if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "names issuer") {
		t.Fatalf("err = %v, want ErrBadResponse naming the issuer", err)
	}
}

func TestStartSendsCodeFirstFields(t *testing.T) {
	fp := newFakeProvider(t)
	cfg := fp.cfg()
	cfg.Scopes = []string{"email", "groups"}
	cfg.Audience = "https://api.acme.dev"
	p, err := Discover(context.Background(), cfg, fp.opts())
	if err != nil {
		t.Fatal(err)
	}
	dc, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dc.UserCode != "WDJB-MJHT" || dc.URL() != fp.srv.URL+"/device?user_code=WDJB-MJHT" {
		t.Errorf("code %q url %q", dc.UserCode, dc.URL())
	}
	if want := fp.clock.Now().Add(300 * time.Second); !dc.ExpiresAt.Equal(want) {
		t.Errorf("expires %v, want %v", dc.ExpiresAt, want)
	}
	form := fp.devForm[0]
	for _, want := range []string{"scope=openid+email+groups", "audience=https%3A%2F%2Fapi.acme.dev", "client_id=guardrun-cli"} {
		if !strings.Contains(form, want) {
			t.Errorf("device request %q lacks %q", form, want)
		}
	}
}

func TestIDTokenChecks(t *testing.T) {
	t.Run("wrong nonce", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.idNonce = "someone-elses"
		fp.script = []reply{granted()}
		p, dc := start(t, fp)
		if _, err := p.Wait(context.Background(), dc, newMemStore()); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.claims["aud"] = "another-client"
		fp.script = []reply{granted()}
		p, dc := start(t, fp)
		if _, err := p.Wait(context.Background(), dc, newMemStore()); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
	t.Run("wrong issuer", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.claims["iss"] = "https://evil.example"
		fp.script = []reply{granted()}
		p, dc := start(t, fp)
		if _, err := p.Wait(context.Background(), dc, newMemStore()); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.claims["exp"] = fp.clock.Now().Add(-time.Minute).Unix()
		fp.script = []reply{granted()}
		p, dc := start(t, fp)
		if _, err := p.Wait(context.Background(), dc, newMemStore()); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.script = []reply{{200, `{"access_token":"a","id_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}`}}
		p, dc := start(t, fp)
		_, err := p.Wait(context.Background(), dc, newMemStore())
		if !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
	t.Run("no id token", func(t *testing.T) {
		fp := newFakeProvider(t)
		fp.script = []reply{{200, `{"access_token":"a","token_type":"Bearer"}`}}
		p, dc := start(t, fp)
		if _, err := p.Wait(context.Background(), dc, newMemStore()); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("err = %v, want ErrInvalidIDToken", err)
		}
	})
}

// timeoutOnce fails the first token request with a timeout, as a
// connection that hangs would, then lets requests through.
type timeoutOnce struct {
	next  http.RoundTripper
	fired bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (rt *timeoutOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/token" && !rt.fired {
		rt.fired = true
		return nil, timeoutErr{}
	}
	return rt.next.RoundTrip(r)
}

func TestTimeoutSlowsPolling(t *testing.T) {
	fp := newFakeProvider(t)
	fp.script = []reply{pending(), granted()}
	opts := fp.opts()
	opts.HTTPClient = &http.Client{Transport: &timeoutOnce{next: fp.srv.Client().Transport}}
	p, err := Discover(context.Background(), fp.cfg(), opts)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(context.Background(), dc, newMemStore()); err != nil {
		t.Fatal(err)
	}
	// RFC 8628 section 3.5: after a timeout, poll less often.
	want := []time.Duration{5 * time.Second, 10 * time.Second, 10 * time.Second}
	if !reflect.DeepEqual(fp.clock.sleeps, want) {
		t.Errorf("sleeps = %v, want %v", fp.clock.sleeps, want)
	}
}

func TestNoTokensInLogs(t *testing.T) {
	fp := newFakeProvider(t)
	var logs bytes.Buffer
	opts := fp.opts()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fp.script = []reply{pending(), slowDown(), granted()}
	p, err := Discover(context.Background(), fp.cfg(), opts)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger.Info("device code issued", "code", dc) // as a careless caller might
	store := newMemStore()
	l, err := p.Wait(context.Background(), dc, store)
	if err != nil {
		t.Fatal(err)
	}
	fp.clock.Advance(2 * time.Hour)
	fp.refresh = []reply{granted()}
	if _, err := CurrentLogin(context.Background(), fp.cfg(), store, opts); err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged; the check below proves nothing")
	}
	noTokens(t, "log", logs.String())
	noTokens(t, "login", fmt.Sprintf("%+v %v", l, l))
	noTokens(t, "device code", fmt.Sprintf("%+v", *dc))
}
