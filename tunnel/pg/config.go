package pg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults for Config's zero values.
const (
	// DefaultMaxMessageSize caps one client message (the length word
	// included). 64 MiB is far above what drivers send in one message (pgx
	// sends COPY in 64 KiB chunks, psql one line per CopyData) while keeping
	// a hostile client from making the tunnel allocate gigabytes.
	DefaultMaxMessageSize = 64 << 20
	// DefaultHandshakeTimeout bounds the client's startup and authentication
	// plus the upstream connection.
	DefaultHandshakeTimeout = 30 * time.Second
	// maxServerMessageSize caps one server message. PostgreSQL limits a
	// single value to 1 GiB; a row may be a little larger.
	maxServerMessageSize = 1<<30 + 1<<20
	// maxStartupSize caps a startup packet, as PostgreSQL does (10000).
	maxStartupSize = 10000
)

// Config configures a Proxy. The zero value of every field but Upstream,
// User and Password works.
type Config struct {
	// Upstream is the real server: a libpq URL or key=value DSN, parsed by
	// pgconn.ParseConfig, so sslmode (up to verify-full), sslrootcert and the
	// PG* environment are honoured on the upstream leg exactly as libpq would.
	Upstream string
	// User and Password are the per-tunnel credential the client presents
	// (see tunnel.NewCredential). Never the upstream's.
	User, Password string
	// Database is the database the tunnel serves: the only one a client may
	// name in its startup, and the one opened upstream. Empty = the
	// upstream's database.
	Database string
	// Hooks judges and filters each connection; nil passes everything.
	Hooks Hooks
	// Logger receives operational logs (never row values, parameters or
	// credentials). nil discards.
	Logger *slog.Logger
	// MaxMessageSize caps one client message; 0 = DefaultMaxMessageSize.
	MaxMessageSize int
	// HandshakeTimeout bounds startup, authentication and the upstream
	// connect; 0 = DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// OnEvent, when set, is called for connection open, close and
	// authentication failures, from the connection's own goroutine. It must
	// be safe for concurrent use and return quickly.
	OnEvent func(Event)
}

// EventKind says what happened to a client connection.
type EventKind int

const (
	// ConnOpened: the client authenticated and its upstream connection is up.
	ConnOpened EventKind = iota + 1
	// ConnClosed: an opened connection ended; Err is nil after a clean
	// Terminate or client disconnect, else why it ended.
	ConnClosed
	// AuthFailed: the client presented a wrong password, user or database;
	// Err matches ErrAuthFailed, ErrWrongUser or ErrWrongDatabase.
	AuthFailed
	// UpstreamFailed: the client authenticated but no upstream connection
	// could be made; Err is an *UpstreamError.
	UpstreamFailed
)

func (k EventKind) String() string {
	switch k {
	case ConnOpened:
		return "open"
	case ConnClosed:
		return "close"
	case AuthFailed:
		return "auth-failed"
	case UpstreamFailed:
		return "upstream-failed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a connection's life for the session record. Conn.User and
// Conn.Database are what the client presented (for AuthFailed they may be
// wrong or empty).
type Event struct {
	Kind EventKind
	Conn ConnInfo
	Err  error
}

// Errors a Proxy returns or reports in events.
var (
	ErrAuthFailed          = errors.New("pg: client password authentication failed")
	ErrWrongUser           = errors.New("pg: client asked for a user this tunnel does not serve")
	ErrWrongDatabase       = errors.New("pg: client asked for a database this tunnel does not serve")
	ErrUpstreamUnreachable = errors.New("pg: upstream server unreachable")
	ErrUpstreamAuth        = errors.New("pg: upstream server rejected the credential")
	ErrUpstreamTLS         = errors.New("pg: TLS to the upstream server failed")
	ErrUpstreamRejected    = errors.New("pg: upstream server refused the connection")
	ErrUpstreamLost        = errors.New("pg: upstream connection lost")
	ErrBadConfig           = errors.New("pg: bad proxy configuration")
)

// UpstreamError is a failure to open the upstream connection. errors.Is
// matches its Kind (ErrUpstreamUnreachable, ErrUpstreamAuth, ErrUpstreamTLS,
// ErrUpstreamRejected) and the underlying error. Its text never contains the
// upstream password.
type UpstreamError struct {
	Addr string // host:port of the upstream
	Kind error
	Err  error
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("%v (%s): %v", e.Kind, e.Addr, e.Err)
}

func (e *UpstreamError) Unwrap() []error { return []error{e.Kind, e.Err} }

// ConfigError is a Config that NewProxy cannot use.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string   { return fmt.Sprintf("pg: config %s: %v", e.Field, e.Err) }
func (e *ConfigError) Unwrap() []error { return []error{ErrBadConfig, e.Err} }

func classifyUpstream(cfg *pgconn.Config, err error) error {
	addr := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	var pgErr *pgconn.PgError
	var kind error
	var x509Host x509.HostnameError
	var x509Auth x509.UnknownAuthorityError
	var x509Inv x509.CertificateInvalidError
	var tlsVerify *tls.CertificateVerificationError
	var tlsRecord tls.RecordHeaderError
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "28P01", "28000":
			kind = ErrUpstreamAuth
		default:
			kind = ErrUpstreamRejected
		}
	case errors.As(err, &x509Host), errors.As(err, &x509Auth), errors.As(err, &x509Inv),
		errors.As(err, &tlsVerify), errors.As(err, &tlsRecord):
		kind = ErrUpstreamTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		kind = ErrUpstreamUnreachable
	default:
		var netErr net.Error
		var opErr *net.OpError
		if errors.As(err, &opErr) || errors.As(err, &netErr) {
			kind = ErrUpstreamUnreachable
		} else if msg := err.Error(); containsAny(msg, "tls", "TLS", "SSL", "certificate") {
			kind = ErrUpstreamTLS
		} else if containsAny(msg, "password", "authentication", "SASL") {
			kind = ErrUpstreamAuth
		} else {
			kind = ErrUpstreamUnreachable
		}
	}
	return &UpstreamError{Addr: addr, Kind: kind, Err: err}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
