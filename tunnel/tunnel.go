// Package tunnel holds what every protocol tunnel shares: loopback-only
// listeners, the per-session credential, and the Approver that held
// statements wait on. Protocol proxies live in subpackages (tunnel/pg).
//
// Rules kept here: a tunnel never binds a non-loopback address; it never
// imports tui or cli (a human reaches it only through Approver); whoever
// starts a goroutine waits for it.
package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/guardrun/guardrun/policy"
)

// Approver asks a human about one held statement. Approve blocks until an
// answer, the request's deadline, or ctx is done; on timeout or ctx it
// returns a deny answer (never an approval). Only the asking connection
// waits: implementations must be safe for concurrent use.
type Approver interface {
	Approve(ctx context.Context, req policy.ApprovalRequest) (policy.Answer, error)
}

// ErrNotLoopback is returned by Listen for an address that is not a loopback
// address. A tunnel hands out a credential that lets anyone who reaches the
// port act with the upstream's privileges; it must not be reachable from the
// network.
var ErrNotLoopback = errors.New("tunnel: address is not loopback")

// AddrError says which address Listen refused and why. It matches
// ErrNotLoopback with errors.Is when the address is not a loopback one.
type AddrError struct {
	Addr string
	Err  error
}

func (e *AddrError) Error() string { return "tunnel: listen on " + e.Addr + ": " + e.Err.Error() }
func (e *AddrError) Unwrap() error { return e.Err }

// DefaultAddr is where a tunnel listens when no address is given: a free
// port on the IPv4 loopback.
const DefaultAddr = "127.0.0.1:0"

// Listen opens a TCP listener on a loopback address: "127.0.0.1:PORT",
// "[::1]:PORT" or "localhost:PORT" (which is bound to 127.0.0.1, never
// resolved through DNS). An empty addr means DefaultAddr; a port of 0 picks
// a free one. Any other host is refused with an error matching
// ErrNotLoopback, before anything is bound.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &AddrError{Addr: addr, Err: err}
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return nil, &AddrError{Addr: addr, Err: ErrNotLoopback}
	}
	network := "tcp4"
	if ip.Is6() && !ip.Is4In6() {
		network = "tcp6"
	}
	ln, err := net.Listen(network, net.JoinHostPort(ip.Unmap().String(), port))
	if err != nil {
		return nil, &AddrError{Addr: addr, Err: err}
	}
	return ln, nil
}

// Credential is the user name and password a client presents to one tunnel.
// It is random per tunnel and worthless anywhere else: the real upstream
// credential never leaves guardrun.
type Credential struct {
	User     string
	Password string
}

// DefaultUser is the user name clients of a tunnel log in as.
const DefaultUser = "guardrun"

// NewCredential returns a fresh credential: DefaultUser and 24 random
// URL-safe characters (144 bits from crypto/rand), safe to put in a URL or
// an environment variable without quoting.
func NewCredential() Credential {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return Credential{User: DefaultUser, Password: base64.RawURLEncoding.EncodeToString(b)}
}
