package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/guardrun/guardrun/auth"
	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/control"
	"github.com/guardrun/guardrun/tunnel/guard"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// This file composes a running session: identity, policy, masking, the
// record, the approval broker and its control socket, and one tunnel per
// connection. `guardrun -- AGENT` and `guardrun connect` both use it.

type sessionOptions struct {
	Agent      string   // "claude", "connect"
	Command    []string // recorded as the session's command
	Conns      []upstreamConn
	Port       int  // fixed port (connect --port, one connection)
	FailOnDead bool // a dead upstream at start is an error (connect), not a warning (agent)
	OnActivity func(guard.Activity)
}

type session struct {
	f        *Factory
	cfg      *Config
	id       string
	identity policy.Identity
	pol      *policy.Policy
	polDesc  string // "guardrun.yaml (baseline + 4 rules)"
	rec      *recorder.Session
	broker   *tunnel.Broker
	secrets  *auth.SecretStore
	logger   *slog.Logger
	logClose func()
	tunnels  []*openTunnel
	socket   string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool

	warnings []error // said after the session's header line
	catalogs []*guard.Catalog

	castMu sync.Mutex
	cast   recorder.CastWriter // the agent's terminal, once it runs in a PTY
}

func (s *session) setCast(c recorder.CastWriter) {
	s.castMu.Lock()
	s.cast = c
	s.castMu.Unlock()
}

func (s *session) castWriter() recorder.CastWriter {
	s.castMu.Lock()
	defer s.castMu.Unlock()
	return s.cast
}

type openTunnel struct {
	conn  upstreamConn
	addr  *net.TCPAddr
	cred  tunnel.Credential
	proxy *pg.Proxy
	env   tunnelEnv
}

// warn prints a warning line (and an optional hint) on stderr.
func (f *Factory) warn(err error) {
	fmt.Fprintf(f.IO.ErrOut, "guardrun: warning: %s\n", err)
	var he *HintError
	if errors.As(err, &he) && he.Hint != "" {
		for _, l := range strings.Split(he.Hint, "\n") {
			fmt.Fprintf(f.IO.ErrOut, "guardrun: hint: %s\n", l)
		}
	}
}

// openLogger opens guardrun's log file: logs never go to the terminal the
// agent owns, and never carry row values, parameters, tokens or passwords.
func (f *Factory) openLogger() (*slog.Logger, func()) {
	dir := f.Paths().State
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return slog.New(slog.DiscardHandler), func() {}
	}
	fh, err := os.OpenFile(filepath.Join(dir, "guardrun.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return slog.New(slog.DiscardHandler), func() {}
	}
	level := slog.LevelInfo
	if f.Getenv("GUARDRUN_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(fh, &slog.HandlerOptions{Level: level})), func() { fh.Close() }
}

// secretStore opens the keyring-backed store, printing its warning once.
func (f *Factory) secretStore(logger *slog.Logger) (*auth.SecretStore, error) {
	st, err := auth.NewSecretStore(f.Paths().Config, auth.StoreOptions{Logger: logger, ForceFile: f.Getenv("GUARDRUN_KEYRING") == "file"})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// identity decides who runs the session: the SSO login when the project
// configures an issuer, else the local user (marked unverified).
func (f *Factory) identity(ctx context.Context, cfg *Config, secrets *auth.SecretStore, logger *slog.Logger) (policy.Identity, error) {
	var id auth.Identity
	if cfg.Auth.Issuer != "" && secrets != nil {
		acfg := auth.Config{Issuer: cfg.Auth.Issuer, ClientID: cfg.Auth.ClientID, Scopes: cfg.Auth.Scopes, Audience: cfg.Auth.Audience}
		got, err := auth.Current(ctx, acfg, secrets, auth.Options{Logger: logger})
		switch {
		case err == nil:
			id = got
		case cfg.Auth.Required && (errors.Is(err, auth.ErrNotLoggedIn) || errors.Is(err, auth.ErrExpired)):
			msg := "not signed in (this project requires SSO)"
			if errors.Is(err, auth.ErrExpired) {
				msg = "your sign-in expired (this project requires SSO)"
			}
			return policy.Identity{}, &HintError{Err: errors.New(msg), Hint: "run guardrun login", Code: ExitNeedsLogin}
		case cfg.Auth.Required:
			return policy.Identity{}, &HintError{Err: fmt.Errorf("cannot confirm your sign-in: %w", err), Hint: "check the network and run guardrun login", Code: ExitNeedsLogin}
		default:
			f.warn(&HintError{Err: fmt.Errorf("not signed in (%v); recording your local identity, unverified", err), Hint: "run guardrun login"})
			id = auth.LocalIdentity(ctx)
		}
	} else {
		id = auth.LocalIdentity(ctx)
	}
	return policy.Identity{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Name: id.Name, Groups: id.Groups, Verified: id.Verified}, nil
}

// answerer names who answers an approval from this machine: the SSO email
// when signed in to the project's issuer, "" otherwise (the session then
// records the local user of the socket's peer).
func (f *Factory) answerer(ctx context.Context) string {
	cfg, err := f.Config()
	if err != nil || cfg.Auth.Issuer == "" {
		return ""
	}
	st, err := f.secretStore(nil)
	if err != nil {
		return ""
	}
	l, err := auth.Stored(st)
	if err != nil || l.Identity.Issuer != cfg.Auth.Issuer {
		return ""
	}
	return l.Identity.Email
}

// loadPolicy parses the configured policy, or returns the baseline.
func loadPolicy(cfg *Config) (*policy.Policy, string, error) {
	if cfg.Policy == nil {
		return policy.Baseline(), "built-in baseline", nil
	}
	p, err := policy.Parse(cfg.PolicyFile, cfg.Policy)
	if err != nil {
		return nil, "", &HintError{Err: err, Hint: "guardrun refuses to open tunnels with a policy that does not load; `guardrun policy check` lints it"}
	}
	return p, fmt.Sprintf("%s (%s)", filepath.Base(cfg.PolicyFile), p.Describe()), nil
}

func gitCommit(ctx context.Context, dir string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// startSession opens everything a session needs. On error nothing is left
// running.
func startSession(ctx context.Context, f *Factory, cfg *Config, o sessionOptions) (_ *session, err error) {
	s := &session{f: f, cfg: cfg}
	s.logger, s.logClose = f.openLogger()
	defer func() {
		if err != nil {
			s.close(1, "start failed: "+err.Error())
		}
	}()
	pol, polDesc, err := loadPolicy(cfg)
	if err != nil {
		return nil, err
	}
	s.pol, s.polDesc = pol, polDesc
	masker, err := newMasker(cfg, pol)
	if err != nil {
		return nil, err
	}
	secrets, serr := f.secretStore(s.logger)
	if serr != nil {
		f.warn(fmt.Errorf("no secret store: %v; the session seal will not be signed", serr))
	} else {
		s.secrets = secrets
	}
	if s.identity, err = f.identity(ctx, cfg, secrets, s.logger); err != nil {
		return nil, err
	}

	var signer recorder.Signer
	if secrets != nil {
		// Say where the device key lives only when it is first made outside
		// a keyring: quiet when nothing is new.
		if _, gerr := secrets.Get(recorder.DeviceKeyName); gerr != nil && secrets.Warning() != "" {
			f.warn(fmt.Errorf("%s; the session signing key is kept there", secrets.Warning()))
		}
		if signer, err = recorder.DeviceSigner(secrets); err != nil {
			f.warn(fmt.Errorf("cannot load the device signing key (%v); the seal will not be signed", err))
			signer = nil
		}
	}
	failMode := recorder.FailStop
	if cfg.Recording.OnError == "warn" {
		failMode = recorder.FailWarn
	}
	store, err := recorder.OpenStore(cfg.Recording.Dir, recorder.StoreOptions{
		Signer: signer, Logger: s.logger, OnError: failMode,
		OnFailure: func(id string, err error) {
			if err != nil {
				fmt.Fprintf(f.IO.ErrOut, "\r\nguardrun: error: session %s cannot be recorded: %v\r\n", recorder.ShortID(id), err)
			} else {
				fmt.Fprintf(f.IO.ErrOut, "\r\nguardrun: session %s is being recorded again\r\n", recorder.ShortID(id))
			}
		},
	})
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("cannot open the session store: %w", err), Hint: "check recording.dir in your configuration and its permissions"}
	}
	// Check every upstream before anything is recorded: a connect that
	// cannot reach its database leaves no empty session behind, and an
	// agent starts with a warning instead.
	// The checks run side by side, with the git look-up: startup is a cost
	// every agent launch pays.
	checks := make([]error, len(o.Conns))
	wd, _ := f.Getwd()
	var commit string
	var wg sync.WaitGroup
	for i, c := range o.Conns {
		wg.Add(1)
		go func() { defer wg.Done(); checks[i] = preflight(ctx, c) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); commit = gitCommit(ctx, wd) }()
	wg.Wait()
	for _, err := range checks {
		if err == nil {
			continue
		}
		if o.FailOnDead {
			return nil, err
		}
		s.warnings = append(s.warnings, err)
	}
	host, _ := os.Hostname()
	s.rec, err = store.Create(recorder.Start{
		Identity: recorder.Identity{Issuer: s.identity.Issuer, Subject: s.identity.Subject, Email: s.identity.Email, Name: s.identity.Name,
			Groups: s.identity.Groups, Verified: s.identity.Verified, Method: methodOf(s.identity)},
		Command: maskArgs(masker, o.Command), Agent: o.Agent, WorkDir: wd, GitCommit: commit, Host: host,
		Version: Build().Version, PolicyDigest: pol.Digest(), PolicyDescription: polDesc,
	})
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("cannot start the session record: %w", err), Hint: "check recording.dir in your configuration and its permissions"}
	}
	s.id = s.rec.ID()

	s.broker = tunnel.NewBroker(tunnel.BrokerOptions{
		Logger: s.logger,
		// A `guardrun approvals --watch` started before the session finds
		// it within a poll; give it that long before denying as nobody's.
		NobodyGrace: 1500 * time.Millisecond,
		OnAsked: func(r policy.ApprovalRequest) {
			s.record(recorder.ApprovalRequested{ID: r.ID, Connection: r.Connection, SQL: r.SQL, Rule: r.Rule, Reasons: r.Reasons, Deadline: r.Deadline})
		},
		OnAnswered: func(r policy.ApprovalRequest, a policy.Answer, d time.Duration) {
			s.record(recorder.ApprovalAnswered{ID: r.ID, Verdict: string(a.Verdict), By: a.By, Via: a.Via, Message: a.Message, Waited: d})
		},
	})

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel

	// The control socket lets `guardrun approvals` answer from elsewhere.
	s.socket = control.SocketPath(f.Paths().Runtime, s.id)
	srv, err := control.Listen(s.socket, s.broker, control.SessionInfo{ID: s.id, Agent: o.Agent, User: s.identity.Who(), Started: time.Now(), PID: os.Getpid()}, s.logger)
	if err != nil {
		f.warn(fmt.Errorf("approvals from another terminal are unavailable: %v", err))
		s.socket = ""
	} else {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.Serve(runCtx) }()
	}

	onActivity := castMarker(s)
	if user := o.OnActivity; user != nil {
		mark := onActivity
		onActivity = func(a guard.Activity) { mark(a); user(a) }
	}
	o.OnActivity = onActivity
	classifier := sql.NewClassifier(8192)
	for i, c := range o.Conns {
		port := 0
		if o.Port != 0 && len(o.Conns) == 1 {
			port = o.Port
		}
		t, err := s.openTunnel(runCtx, c, port, classifier, masker, o)
		if err != nil {
			return nil, err
		}
		t.env.Default = i == 0
		s.tunnels = append(s.tunnels, t)
	}
	return s, nil
}

func methodOf(id policy.Identity) string {
	if id.Verified {
		return "sso"
	}
	return "local"
}

func (s *session) record(ev recorder.Event) {
	if s.rec == nil {
		return
	}
	if err := s.rec.Record(ev); err != nil {
		s.logger.Error("recording failed", "type", ev.EventType(), "err", err)
	}
}

func (s *session) openTunnel(ctx context.Context, c upstreamConn, port int, classifier *sql.Classifier, masker *mask.Masker, o sessionOptions) (*openTunnel, error) {
	ln, err := tunnel.Listen(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("cannot open a tunnel for %s: %w", c.Name, err), Hint: "pick another port with --port, or leave it out to let guardrun choose"}
	}
	cred := tunnel.NewCredential()
	cat := guard.NewCatalog(c.DSN)
	s.catalogs = append(s.catalogs, cat)
	g := guard.New(guard.Options{
		Connection: c.Name, ConnType: c.Type, Session: recorder.ShortID(s.id), Agent: o.Agent, Identity: s.identity,
		Judge: s.pol, Classifier: classifier, Approver: s.broker, Timeout: s.pol.ApprovalTimeout(),
		Masker: guard.PolicyMasker(masker.ForConnection(c.Name)), Recorder: s.rec, Catalog: cat, Logger: s.logger.With("connection", c.Name), OnActivity: o.OnActivity,
	})
	proxy, err := pg.NewProxy(pg.Config{
		Upstream: c.DSN, User: cred.User, Password: cred.Password, Database: c.Database,
		Hooks: g, Logger: s.logger.With("connection", c.Name),
		OnEvent: func(ev pg.Event) {
			switch ev.Kind {
			case pg.AuthFailed:
				s.record(recorder.AuthFailure{Connection: c.Name, Remote: ev.Conn.Remote, User: ev.Conn.User, Reason: errText(ev.Err)})
			case pg.UpstreamFailed:
				s.record(recorder.Warning{Message: fmt.Sprintf("%s: upstream %s unreachable: %s", c.Name, c.Display(), errText(ev.Err))})
			}
		},
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("connection %s: %w", c.Name, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	db := proxy.Database()
	t := &openTunnel{conn: c, addr: addr, cred: cred, proxy: proxy}
	t.env = tunnelEnv{
		Name: c.Name, Host: addr.IP.String(), Port: addr.Port, User: cred.User, Password: cred.Password, Database: db,
		URL: fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", cred.User, cred.Password, addr.String(), pathEscape(db)),
		Env: c.Env, Hide: c.Hide,
	}
	s.record(recorder.TunnelOpen{Connection: c.Name, ConnType: c.Type, Listen: addr.String(), Upstream: c.Display()})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := proxy.Serve(ctx, ln)
		ev := recorder.TunnelClose{Connection: c.Name}
		if err != nil && !errors.Is(err, context.Canceled) {
			ev.Error = err.Error()
		}
		s.record(ev)
	}()
	return t, nil
}

// preflight connects to an upstream once and closes.
func preflight(ctx context.Context, c upstreamConn) error {
	p, err := pg.NewProxy(pg.Config{Upstream: c.DSN, User: "preflight", Password: "preflight"})
	if err != nil {
		return fmt.Errorf("connection %s: %s", c.Name, errText(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Check(ctx); err != nil {
		return upstreamProblem(c, err)
	}
	return nil
}

// errText is an error's text with anything that looks like a DSN password
// removed: upstream errors can quote the connection string.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return redactDSN(err.Error())
}

func pathEscape(s string) string {
	return strings.NewReplacer("/", "%2F", "?", "%3F", "#", "%23", " ", "%20").Replace(s)
}

// close stops the tunnels, waits for them and seals the record.
func (s *session) close(exitCode int, reason string) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.broker != nil {
		s.broker.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	for _, c := range s.catalogs {
		c.Close()
	}
	var err error
	if s.rec != nil {
		err = s.rec.CloseReason(exitCode, reason)
	}
	if s.logClose != nil {
		s.logClose()
	}
	return err
}

// envs returns what the agent gets for each tunnel.
func (s *session) envs() []tunnelEnv {
	out := make([]tunnelEnv, len(s.tunnels))
	for i, t := range s.tunnels {
		out[i] = t.env
	}
	return out
}

// maskArgs masks a command line before it is recorded: a client's argv can
// carry SQL with personal data or a secret (psql -c "... WHERE email = ...").
func maskArgs(m *mask.Masker, argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i], _ = m.Text(a)
	}
	return out
}

// sessionKey is a fresh random key for the masker's hash strategy: stable
// within the session, never stored.
func sessionKey() []byte {
	k := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}
