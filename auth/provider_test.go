package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProvider is an OIDC issuer on httptest whose token endpoint answers
// from a script, one reply per poll.
type fakeProvider struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	clock  *fakeClock
	noDev  bool // omit device_authorization_endpoint
	noRev  bool // omit revocation_endpoint
	claims map[string]any

	mu       sync.Mutex
	script   []reply // token endpoint replies for the device grant
	refresh  []reply // token endpoint replies for refresh_token
	polls    []time.Time
	devForm  []string // device endpoint forms seen
	revoked  []string
	nonce    string
	idNonce  string // when set, the ID token carries this nonce instead
	interval int
}

type reply struct {
	status int
	body   string // raw body; "" with status 200 means a good token response
}

func pending() reply  { return reply{400, `{"error":"authorization_pending"}`} }
func slowDown() reply { return reply{400, `{"error":"slow_down"}`} }
func granted() reply  { return reply{200, ""} }

const testClient = "guardrun-cli"

// signingKey is generated once: RSA key generation dominates these tests,
// more so under the race detector.
var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func newFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	key, err := signingKey()
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakeProvider{
		t:        t,
		key:      key,
		clock:    &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		interval: 5,
		claims: map[string]any{
			"sub":            "user-1",
			"email":          "jane@acme.dev",
			"email_verified": true,
			"name":           "Jane Doe",
			"groups":         []string{"eng", "db-admins"},
		},
	}
	fp.srv = httptest.NewServer(http.HandlerFunc(fp.serve))
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakeProvider) cfg() Config { return Config{Issuer: fp.srv.URL, ClientID: testClient} }

func (fp *fakeProvider) opts() Options {
	return Options{HTTPClient: fp.srv.Client(), Now: fp.clock.Now, Sleep: fp.clock.Sleep}
}

func (fp *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		d := map[string]any{
			"issuer":                                fp.srv.URL,
			"token_endpoint":                        fp.srv.URL + "/token",
			"jwks_uri":                              fp.srv.URL + "/keys",
			"authorization_endpoint":                fp.srv.URL + "/auth",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		if !fp.noDev {
			d["device_authorization_endpoint"] = fp.srv.URL + "/device/code"
		}
		if !fp.noRev {
			d["revocation_endpoint"] = fp.srv.URL + "/revoke"
		}
		json.NewEncoder(w).Encode(d)
	case "/keys":
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
			"n": b64(fp.key.N.Bytes()), "e": b64(big.NewInt(int64(fp.key.E)).Bytes()),
		}}})
	case "/device/code":
		r.ParseForm()
		fp.devForm = append(fp.devForm, r.Form.Encode())
		fp.nonce = r.Form.Get("nonce")
		fmt.Fprintf(w, `{"device_code":"dev-secret-code","user_code":"WDJB-MJHT","verification_uri":"%s/device","verification_uri_complete":"%s/device?user_code=WDJB-MJHT","expires_in":300,"interval":%d}`,
			fp.srv.URL, fp.srv.URL, fp.interval)
	case "/token":
		r.ParseForm()
		var rep reply
		switch r.Form.Get("grant_type") {
		case "urn:ietf:params:oauth:grant-type:device_code":
			if r.Form.Get("device_code") != "dev-secret-code" || r.Form.Get("client_id") != testClient {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			fp.polls = append(fp.polls, fp.clock.Now())
			if len(fp.script) == 0 {
				fp.t.Errorf("unexpected poll %d", len(fp.polls))
				w.WriteHeader(500)
				return
			}
			rep, fp.script = fp.script[0], fp.script[1:]
		case "refresh_token":
			if len(fp.refresh) == 0 {
				fp.t.Errorf("unexpected refresh")
				w.WriteHeader(500)
				return
			}
			if r.Form.Get("refresh_token") != "refresh-1" {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_grant","error_description":"unknown refresh token"}`)
				return
			}
			rep, fp.refresh = fp.refresh[0], fp.refresh[1:]
		default:
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"unsupported_grant_type"}`)
			return
		}
		if rep.status == 200 && rep.body == "" {
			nonce := fp.nonce
			if fp.idNonce != "" {
				nonce = fp.idNonce
			}
			rep.body = fmt.Sprintf(`{"access_token":"access-1","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-1","id_token":%q}`, fp.idToken(nonce))
		}
		w.WriteHeader(rep.status)
		fmt.Fprint(w, rep.body)
	case "/revoke":
		r.ParseForm()
		fp.revoked = append(fp.revoked, r.Form.Get("token"))
	default:
		http.NotFound(w, r)
	}
}

// idToken signs an RS256 JWT for the current fake time.
func (fp *fakeProvider) idToken(nonce string) string {
	now := fp.clock.Now()
	c := map[string]any{
		"iss": fp.srv.URL, "aud": testClient,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	for k, v := range fp.claims {
		c[k] = v
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	p, _ := json.Marshal(c)
	signing := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, fp.key, crypto.SHA256, sum[:])
	if err != nil {
		fp.t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// fakeClock advances only when slept on, so polling runs instantly.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	if !ok {
		return nil, ErrSecretNotFound
	}
	return v, nil
}

func (s *memStore) Set(name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), data...)
	return nil
}

func (s *memStore) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

// noTokens fails the test when a token shows in s.
func noTokens(t *testing.T, what, s string) {
	t.Helper()
	for _, tok := range []string{"access-1", "refresh-1", "dev-secret-code", "eyJ"} {
		if strings.Contains(s, tok) {
			t.Errorf("%s shows a token (%s…): %s", what, tok[:3], s)
		}
	}
}
