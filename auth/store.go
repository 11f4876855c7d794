package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/zalando/go-keyring"
)

// KeyringService is the service name guardrun's entries carry in the OS
// keyring.
const KeyringService = "guardrun"

// Backend names reported by SecretStore.Backend.
const (
	BackendKeyring = "system keyring"
	BackendFile    = "file"
)

// Keyring is the part of an OS keyring SecretStore uses; go-keyring's
// package functions fit it (OSKeyring). Get returns keyring.ErrNotFound for
// a missing entry; any other error means the keyring is not usable.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// OSKeyring is the operating system's keyring through go-keyring (Keychain,
// Windows Credential Manager, the Secret Service on Linux). With
// keyring.MockInit() in tests it is an in-memory map.
type OSKeyring struct{}

func (OSKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (OSKeyring) Set(service, user, pw string) error       { return keyring.Set(service, user, pw) }
func (OSKeyring) Delete(service, user string) error        { return keyring.Delete(service, user) }

// StoreOptions configures NewSecretStore.
type StoreOptions struct {
	// SecureOnly refuses the file fallback: NewSecretStore returns
	// ErrNoKeyring when the keyring is not reachable.
	SecureOnly bool
	// ForceFile skips the keyring and stores in files (for containers and
	// tests that must not touch a developer's real keyring).
	ForceFile bool
	// Keyring is the keyring to use; nil means OSKeyring.
	Keyring Keyring
	Logger  *slog.Logger
}

// SecretStore keeps small secrets (refresh tokens, the recorder's device
// key) by name: in the OS keyring when one is reachable, otherwise in 0600
// files in a 0700 directory. It satisfies the recorder's KeyStore.
type SecretStore struct {
	kr      Keyring // nil: files
	dir     string  // the files' directory
	warning string
	log     *slog.Logger
}

// probeName is read once to learn whether the keyring answers at all.
const probeName = "keyring-probe"

// NewSecretStore picks the backend. dir is the user's config directory
// (e.g. $XDG_CONFIG_HOME/guardrun); the file fallback lives in
// dir/secrets. When the keyring is unreachable and SecureOnly is false the
// store falls back to files and Warning() says so; the caller must show it.
func NewSecretStore(dir string, opts StoreOptions) (*SecretStore, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &SecretStore{dir: filepath.Join(dir, "secrets"), log: log}
	if opts.ForceFile {
		if opts.SecureOnly {
			return nil, fmt.Errorf("%w: file storage was asked for and refused", ErrNoKeyring)
		}
		return s, nil
	}
	kr := opts.Keyring
	if kr == nil {
		kr = OSKeyring{}
	}
	_, err := kr.Get(KeyringService, probeName)
	if err == nil || errors.Is(err, keyring.ErrNotFound) {
		s.kr = kr
		return s, nil
	}
	// A headless Linux without a Secret Service lands here (no D-Bus
	// session bus, or no service owning org.freedesktop.secrets).
	log.Debug("system keyring unreachable", "err", err)
	if opts.SecureOnly {
		return nil, fmt.Errorf("%w (%v)", ErrNoKeyring, err)
	}
	s.warning = fmt.Sprintf("no system keyring; tokens stored in files under %s (mode 0600)", s.dir)
	return s, nil
}

// Backend is BackendKeyring or BackendFile.
func (s *SecretStore) Backend() string {
	if s.kr != nil {
		return BackendKeyring
	}
	return BackendFile
}

// Location is where the secrets are: "system keyring" or the directory.
func (s *SecretStore) Location() string {
	if s.kr != nil {
		return BackendKeyring
	}
	return s.dir
}

// Warning is non-empty when the store fell back to files because no keyring
// was reachable.
func (s *SecretStore) Warning() string { return s.warning }

// ErrSecretNotFound is returned by Get for a name that holds nothing. It
// also matches fs.ErrNotExist, which is what the recorder's KeyStore asks
// for.
var ErrSecretNotFound error = notFound{}

type notFound struct{}

func (notFound) Error() string        { return "secret not found" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Get returns the secret stored under name, or ErrSecretNotFound.
func (s *SecretStore) Get(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if s.kr != nil {
		v, err := s.kr.Get(KeyringService, name)
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, ErrSecretNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("keyring: reading %s: %w", name, err)
		}
		return decodeValue(v)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrSecretNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeValue(string(b))
}

// Set stores data under name, replacing what was there.
func (s *SecretStore) Set(name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	v := encodeValue(data)
	if s.kr != nil {
		if err := s.kr.Set(KeyringService, name, v); err != nil {
			return fmt.Errorf("keyring: storing %s: %w", name, err)
		}
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	// MkdirAll leaves an existing directory's mode alone; tighten it.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(v); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, name))
}

// Delete removes name; deleting a missing name is not an error.
func (s *SecretStore) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if s.kr != nil {
		err := s.kr.Delete(KeyringService, name)
		if err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return fmt.Errorf("keyring: deleting %s: %w", name, err)
		}
		return nil
	}
	err := os.Remove(filepath.Join(s.dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// checkName keeps names usable as file names and keyring accounts.
func checkName(name string) error {
	if name == "" || name == probeName || strings.HasPrefix(name, ".") || len(name) > 64 {
		return fmt.Errorf("invalid secret name %q", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("invalid secret name %q", name)
		}
	}
	return nil
}

// Values are strings in a keyring. Text (JSON token records) is kept as is
// behind "t:" to stay small (macOS caps an entry near 3 KB); anything else
// (a binary key) is base64 behind "b:".
func encodeValue(data []byte) string {
	if utf8.Valid(data) && !strings.ContainsRune(string(data), 0) {
		return "t:" + string(data)
	}
	return "b:" + base64.StdEncoding.EncodeToString(data)
}

func decodeValue(v string) ([]byte, error) {
	switch {
	case strings.HasPrefix(v, "t:"):
		return []byte(v[2:]), nil
	case strings.HasPrefix(v, "b:"):
		b, err := base64.StdEncoding.DecodeString(v[2:])
		if err != nil {
			return nil, errors.New("stored secret is corrupt")
		}
		return b, nil
	}
	return nil, errors.New("stored secret has an unknown encoding")
}
