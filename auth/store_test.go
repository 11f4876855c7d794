package auth

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

// The recorder's KeyStore, as it defines it; SecretStore must satisfy it.
type recorderKeyStore interface {
	Get(name string) ([]byte, error)
	Set(name string, data []byte) error
}

var (
	_ recorderKeyStore = (*SecretStore)(nil)
	_ Store            = (*SecretStore)(nil)
)

func exercise(t *testing.T, s *SecretStore) {
	t.Helper()
	if _, err := s.Get("login"); !errors.Is(err, ErrSecretNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of nothing: %v (want ErrSecretNotFound, matching fs.ErrNotExist for the recorder)", err)
	}
	text := []byte(`{"refresh_token":"r"}`)
	key := []byte{0, 1, 2, 0xff, 0xfe, 0}
	if err := s.Set("login", text); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("device-key", key); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"login": text, "device-key": key} {
		got, err := s.Get(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := s.Set("login", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get("login"); string(got) != "v2" {
		t.Errorf("overwrite: %q", got)
	}
	if err := s.Delete("login"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("login"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := s.Get("login"); !errors.Is(err, ErrSecretNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", probeName} {
		if err := s.Set(bad, []byte("x")); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestSecretStoreKeyring(t *testing.T) {
	keyring.MockInit()
	s, err := NewSecretStore(t.TempDir(), StoreOptions{SecureOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Backend() != BackendKeyring || s.Warning() != "" {
		t.Fatalf("backend %q warning %q", s.Backend(), s.Warning())
	}
	exercise(t, s)
}

func TestSecretStoreFallsBackToFiles(t *testing.T) {
	keyring.MockInitWithError(errors.New("org.freedesktop.DBus.Error.ServiceUnknown"))
	dir := t.TempDir()
	s, err := NewSecretStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Backend() != BackendFile {
		t.Fatalf("backend %q", s.Backend())
	}
	if !strings.Contains(s.Warning(), filepath.Join(dir, "secrets")) {
		t.Errorf("warning %q does not say where", s.Warning())
	}
	exercise(t, s)
	checkModes(t, s)
}

func TestSecretStoreSecureOnlyRefuses(t *testing.T) {
	keyring.MockInitWithError(errors.New("dbus: no session bus"))
	_, err := NewSecretStore(t.TempDir(), StoreOptions{SecureOnly: true})
	if !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("err = %v, want ErrNoKeyring", err)
	}
}

func TestSecretStoreForceFile(t *testing.T) {
	s, err := NewSecretStore(t.TempDir(), StoreOptions{ForceFile: true, Keyring: failKeyring{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Backend() != BackendFile || s.Warning() != "" {
		t.Fatalf("backend %q warning %q", s.Backend(), s.Warning())
	}
	exercise(t, s)
}

type failKeyring struct{}

func (failKeyring) Get(string, string) (string, error) { panic("keyring touched") }
func (failKeyring) Set(string, string, string) error   { panic("keyring touched") }
func (failKeyring) Delete(string, string) error        { panic("keyring touched") }

func checkModes(t *testing.T, s *SecretStore) {
	t.Helper()
	if err := s.Set("login", []byte("x")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	err = filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, _ := d.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", d.Name(), fi.Mode().Perm())
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left: %s", d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecretStoreRealFallback runs NewSecretStore against the real OS
// keyring with no D-Bus session reachable, as on a headless Linux, in a
// child process so that no keyring mock of this process leaks in.
func TestSecretStoreRealFallback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the Secret Service fallback is a Linux matter")
	}
	if os.Getenv("GUARDRUN_TEST_REAL_KEYRING_CHILD") == "1" {
		realFallbackChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecretStoreRealFallback$", "-test.v")
	cmd.Env = append(os.Environ(),
		"GUARDRUN_TEST_REAL_KEYRING_CHILD=1",
		"GUARDRUN_TEST_DIR="+t.TempDir(),
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"),
		"DISPLAY=",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}

func realFallbackChild(t *testing.T) {
	dir := os.Getenv("GUARDRUN_TEST_DIR")
	_, probeErr := keyring.Get(KeyringService, probeName)
	t.Logf("go-keyring without a session bus says: %T %v", probeErr, probeErr)
	if probeErr == nil || errors.Is(probeErr, keyring.ErrNotFound) {
		t.Fatalf("expected an error that is not ErrNotFound, got %v", probeErr)
	}
	if _, err := NewSecretStore(dir, StoreOptions{SecureOnly: true}); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("SecureOnly: err = %v, want ErrNoKeyring", err)
	}
	s, err := NewSecretStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Backend() != BackendFile || s.Warning() == "" {
		t.Fatalf("backend %q warning %q", s.Backend(), s.Warning())
	}
	exercise(t, s)
	checkModes(t, s)
}
