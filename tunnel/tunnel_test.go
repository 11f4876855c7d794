package tunnel

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:0", "localhost:0", "LOCALHOST:0", "127.0.0.2:0"} {
		ln, err := Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("Listen(%q) bound %s", addr, ln.Addr())
		}
		ln.Close()
	}
	if ln, err := Listen("[::1]:0"); err == nil {
		if !strings.HasPrefix(ln.Addr().String(), "[::1]:") {
			t.Errorf("Listen([::1]:0) bound %s", ln.Addr())
		}
		ln.Close()
	} else if errors.Is(err, ErrNotLoopback) {
		t.Errorf("Listen([::1]:0): %v", err)
	} // else: no IPv6 on this machine
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.1.2.3:5432", "example.com:0", "[fe80::1%lo]:0", "[::ffff:10.0.0.1]:0", "nonsense"} {
		ln, err := Listen(addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded on %s; want ErrNotLoopback", addr, ln.Addr())
			continue
		}
		if addr != "nonsense" && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%q) = %v; want ErrNotLoopback", addr, err)
		}
	}
}

func TestNewCredential(t *testing.T) {
	a, b := NewCredential(), NewCredential()
	if a.User != DefaultUser || len(a.Password) != 24 {
		t.Fatalf("credential %q/%d chars", a.User, len(a.Password))
	}
	if a.Password == b.Password {
		t.Fatal("two credentials share a password")
	}
	for _, r := range a.Password {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			t.Fatalf("password has %q, not URL-safe", r)
		}
	}
}
