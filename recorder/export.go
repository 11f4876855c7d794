package recorder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Names of the extra files in an evidence bundle.
const (
	BundlePublicKey = "public_key.pem" // the seal's ed25519 key, PKIX PEM (openssl reads it)
	BundleSigned    = "seal.signed"    // the exact bytes the seal's signature covers
	BundleSignature = "seal.sig"       // the raw 64-byte signature
	BundleSums      = "SHA256SUMS"
	BundleReadme    = "VERIFY.txt"
)

// maxBundle caps what VerifyBundle reads into memory.
const maxBundle = 1 << 30

// Export writes session id's evidence bundle to w: a .tar.gz with one
// directory, guardrun-session-ID/, holding events.jsonl, terminal.cast,
// seal.json, the public key, the signed bytes and signature as separate
// files, SHA256SUMS and VERIFY.txt (how to check it with standard tools).
// A record that does not verify is still exported, as evidence; the report
// says what is wrong.
func (st *Store) Export(id string, w io.Writer) (*Report, error) {
	rep, err := st.Verify(id)
	if err != nil {
		return nil, err
	}
	id = rep.ID
	dir := st.sessionDir(id)
	files := map[string][]byte{}
	for _, name := range []string{EventsFile, CastFile, SealFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, &StoreError{Op: "read", Path: filepath.Join(dir, name), Err: err}
		}
		files[name] = data
	}
	if data, ok := files[SealFile]; ok {
		if seal, err := parseSealBytes(data); err == nil && seal.Signature != "" {
			if pub, err := hex.DecodeString(seal.PublicKey); err == nil && len(pub) == ed25519.PublicKeySize {
				der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(pub))
				if err == nil {
					files[BundlePublicKey] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
				}
			}
			if msg, err := seal.SignedBytes(); err == nil {
				files[BundleSigned] = msg
			}
			if sig, err := hex.DecodeString(seal.Signature); err == nil {
				files[BundleSignature] = sig
			}
		}
	}
	files[BundleReadme] = []byte(verifyText(id, rep, files))
	files[BundleSums] = sums(files)

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	top := "guardrun-session-" + id
	mtime := st.opts.Now().UTC().Truncate(time.Second)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o700, ModTime: mtime}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + name, Mode: 0o600, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return rep, nil
}

func sums(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for name := range files {
		if name != BundleSums {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		sum := sha256.Sum256(files[name])
		fmt.Fprintf(&b, "%x  %s\n", sum, name)
	}
	return []byte(b.String())
}

func parseSealBytes(data []byte) (Seal, error) {
	var s Seal
	err := jsonUnmarshalStrict(data, &s)
	return s, err
}

func verifyText(id string, rep *Report, files map[string][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "guardrun session %s: evidence bundle\n\n", id)
	fmt.Fprintf(&b, "State when exported: %s", rep.State)
	if rep.Err != nil {
		fmt.Fprintf(&b, " (%v)", rep.Err)
	}
	b.WriteString("\n")
	if _, ok := files[BundlePublicKey]; ok {
		fmt.Fprintf(&b, "Signing key (ed25519, hex): %s\n", rep.PublicKey)
	}
	b.WriteString(`
Files
  events.jsonl    the session's events, one canonical JSON object a line,
                  hash-chained: hash = sha256(prev + the line without "hash")
  terminal.cast   the agent's terminal (asciicast v2: asciinema play terminal.cast)
  seal.json       last line and cast digest, signed with the device's ed25519 key
  public_key.pem  the key that signed the seal
  seal.signed     the exact bytes the signature covers (seal.json without "signature")
  seal.sig        the raw signature
  SHA256SUMS      digests of every file above

With guardrun
  guardrun sessions verify --bundle THIS-FILE.tar.gz

With standard tools (in the unpacked directory)
  1. Files are intact:
       sha256sum -c SHA256SUMS
  2. The signature is the device key's (OpenSSL 3):
       openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in seal.signed -sigfile seal.sig
     and seal.signed is seal.json without its signature:
       python3 -c 'import json,sys;d=json.load(open("seal.json"));d.pop("signature");sys.stdout.write(json.dumps(d,sort_keys=True,separators=(",",":")))' | cmp - seal.signed
  3. The chain is whole and ends where the seal says:
       python3 -c 'import json,hashlib
       prev="0"*64
       for n,l in enumerate(open("events.jsonl"),1):
           d=json.loads(l); h=d.pop("hash"); assert d["prev"]==prev and d["seq"]==n, n
           c=json.dumps(d,sort_keys=True,separators=(",",":"))
           assert hashlib.sha256((prev+c).encode()).hexdigest()==h, n
           prev=h
       s=json.load(open("seal.json")); assert s["last_hash"]==prev and s["last_seq"]==n
       print("chain ok:", n, "events")'
  4. The cast is the one sealed:
       sha256sum terminal.cast     (equals cast_sha256 in seal.json)
     Checkpoint events in events.jsonl bind its first cast_bytes bytes as the
     session ran: head -c CAST_BYTES terminal.cast | sha256sum

Whether the signing key belongs to the person the record names is for you
to decide: compare it with the key their device published.
`)
	return b.String()
}

// VerifyBundle verifies an evidence bundle written by Export: every file
// against SHA256SUMS, then the record itself as Verify does, then the
// separate signature files against the seal.
func VerifyBundle(r io.Reader) (*Report, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a guardrun evidence bundle (.tar.gz): %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var top string
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the bundle: %w", err)
		}
		name := path.Clean(h.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if h.Typeflag == tar.TypeDir {
			if top == "" && !strings.Contains(name, "/") {
				top = name
			}
			continue
		}
		if h.Typeflag != tar.TypeReg || dir == "" || strings.Contains(dir, "/") {
			return nil, fmt.Errorf("unexpected entry %q in the bundle", h.Name)
		}
		if top == "" {
			top = dir
		}
		if dir != top {
			return nil, fmt.Errorf("unexpected entry %q in the bundle", h.Name)
		}
		total += h.Size
		if total > maxBundle {
			return nil, errors.New("the bundle is too large")
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading the bundle: %w", err)
		}
		files[base] = data
	}
	id := strings.TrimPrefix(top, "guardrun-session-")
	if !validID(id) || len(id) != IDLen {
		return nil, errors.New("not a guardrun evidence bundle (no guardrun-session-ID directory)")
	}
	rep, err := verifyRecord(id, func(name string) (io.ReadCloser, error) {
		data, ok := files[name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, err
	}
	if rep.Err != nil {
		return rep, nil
	}
	if err := checkSums(files); err != nil {
		rep.fail(err)
		return rep, nil
	}
	if seal, ok := files[SealFile]; ok && rep.Signed {
		s, _ := parseSealBytes(seal)
		msg, _ := s.SignedBytes()
		sig, _ := hex.DecodeString(s.Signature)
		switch {
		case !bytes.Equal(files[BundleSigned], msg):
			rep.fail(&TamperError{File: BundleSigned, What: "is not seal.json without its signature"})
		case !bytes.Equal(files[BundleSignature], sig):
			rep.fail(&TamperError{File: BundleSignature, What: "is not the seal's signature"})
		case !pemMatches(files[BundlePublicKey], s.PublicKey):
			rep.fail(&TamperError{File: BundlePublicKey, What: "is not the key that signed the seal"})
		}
	}
	return rep, nil
}

func checkSums(files map[string][]byte) *TamperError {
	list, ok := files[BundleSums]
	if !ok {
		return &TamperError{File: BundleSums, What: "is missing"}
	}
	listed := map[string]bool{}
	for i, line := range strings.Split(strings.TrimRight(string(list), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			return &TamperError{File: BundleSums, Line: i + 1, What: "is malformed"}
		}
		data, present := files[name]
		if !present {
			return &TamperError{File: BundleSums, Line: i + 1, What: fmt.Sprintf("names %s, which is missing", name)}
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			return &TamperError{File: name, What: fmt.Sprintf("does not match SHA256SUMS line %d", i+1)}
		}
		listed[name] = true
	}
	for name := range files {
		if name != BundleSums && !listed[name] {
			return &TamperError{File: name, What: "is not listed in SHA256SUMS"}
		}
	}
	return nil
}

func pemMatches(data []byte, pubHex string) bool {
	block, _ := pem.Decode(data)
	if block == nil {
		return false
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return false
	}
	pub, ok := k.(ed25519.PublicKey)
	return ok && hex.EncodeToString(pub) == pubHex
}
