package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Signer signs a session's seal.
type Signer interface {
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) ([]byte, error)
}

// KeyStore keeps small secrets by name: the OS keyring, or a 0600 file when
// no keyring is reachable. Get returns (nil, nil) or an error wrapping
// fs.ErrNotExist when name holds nothing.
type KeyStore interface {
	Get(name string) ([]byte, error)
	Set(name string, data []byte) error
}

// DeviceKeyName is the KeyStore name of this device's signing key.
const DeviceKeyName = "recorder-device-key"

// ErrBadDeviceKey is returned when the KeyStore holds something that is not
// an ed25519 key.
var ErrBadDeviceKey = errors.New("the stored device signing key is not an ed25519 key")

// DeviceSigner returns a Signer with this device's ed25519 key, creating and
// storing the key on first use. The key is stored as the hex of its 32-byte
// seed.
func DeviceSigner(ks KeyStore) (Signer, error) {
	data, err := ks.Get(DeviceKeyName)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the device signing key: %w", err)
	}
	if err == nil && len(data) > 0 {
		priv, err := parsePrivateKey(data)
		if err != nil {
			return nil, err
		}
		return KeySigner(priv), nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := ks.Set(DeviceKeyName, []byte(hex.EncodeToString(priv.Seed()))); err != nil {
		return nil, fmt.Errorf("storing the device signing key: %w", err)
	}
	return KeySigner(priv), nil
}

func parsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	s := strings.TrimSpace(string(data))
	if b, err := hex.DecodeString(s); err == nil {
		data = b
	}
	switch len(data) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(data), nil
	case ed25519.PrivateKeySize:
		return ed25519.NewKeyFromSeed(data[:ed25519.SeedSize]), nil
	}
	return nil, ErrBadDeviceKey
}

// KeySigner signs with priv.
func KeySigner(priv ed25519.PrivateKey) Signer { return keySigner{priv} }

type keySigner struct{ priv ed25519.PrivateKey }

func (k keySigner) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }
func (k keySigner) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(k.priv, msg), nil
}
