package recorder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// Seal is seal.json: written when a session closes cleanly, it names the
// last line of the chain and the whole cast, signed with the device key.
//
// The signature is ed25519 over the canonical JSON of the seal without its
// "signature" member (SignedBytes). An unsigned seal has empty public_key
// and signature.
type Seal struct {
	Session    string `json:"session"`
	Format     int    `json:"format"`
	LastSeq    uint64 `json:"last_seq"`
	LastHash   string `json:"last_hash"`
	CastSHA256 string `json:"cast_sha256"` // of the whole terminal.cast; sha256("") when there is none
	CastBytes  int64  `json:"cast_bytes"`
	PublicKey  string `json:"public_key"` // hex ed25519
	SignedAt   string `json:"signed_at"`
	Signature  string `json:"signature,omitempty"` // hex
}

// SignedBytes are the bytes the signature covers.
func (s Seal) SignedBytes() ([]byte, error) {
	s.Signature = ""
	return Canonical(s)
}

func writeSeal(dir string, seal Seal, signer Signer) error {
	if signer != nil {
		seal.PublicKey = hex.EncodeToString(signer.PublicKey())
		msg, err := seal.SignedBytes()
		if err != nil {
			return err
		}
		sig, err := signer.Sign(msg)
		if err != nil {
			return &StoreError{Op: "sign seal", Path: dir, Err: err}
		}
		seal.Signature = hex.EncodeToString(sig)
	}
	data, err := Canonical(seal)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return writeFileAtomic(filepath.Join(dir, SealFile), data)
}

// writeFileAtomic writes a 0600 file via a temporary file, fsync and
// rename, then syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return &StoreError{Op: "write", Path: path, Err: err}
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return &StoreError{Op: "write", Path: path, Err: err}
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func jsonUnmarshalStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
