package pg

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"

	"golang.org/x/crypto/pbkdf2"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) server side, as PostgreSQL speaks it:
// the user name inside the SCRAM exchange is ignored (the startup message
// names the user) and channel binding is not offered (the client leg is
// loopback plaintext, so "n" or "y" gs2 flags only).

const scramIterations = 4096

// scramSecret is what a server stores for one password: the salt, and the
// keys derived from it. Computed once per tunnel.
type scramSecret struct {
	salt      []byte
	storedKey []byte
	serverKey []byte
}

func newSCRAMSecret(password string) scramSecret {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted := pbkdf2.Key([]byte(password), salt, scramIterations, sha256.Size, sha256.New)
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return scramSecret{salt: salt, storedKey: stored[:], serverKey: hmacSHA256(salted, "Server Key")}
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

var errSCRAM = errors.New("malformed SCRAM message")

// scramServer runs one exchange: first(clientFirst) returns the
// server-first-message, final(clientFinal) checks the proof and returns the
// server-final-message. A wrong proof is ErrAuthFailed; anything that does
// not parse is errSCRAM.
type scramServer struct {
	secret          scramSecret
	gs2             string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

func (s *scramServer) first(msg []byte) (string, error) {
	m := string(msg)
	// gs2-header: cbind-flag "," [authzid] ","
	var rest string
	switch {
	case strings.HasPrefix(m, "n,"), strings.HasPrefix(m, "y,"):
		rest = m[2:]
	default:
		return "", errSCRAM // "p=" channel binding is never offered
	}
	i := strings.IndexByte(rest, ',')
	if i != 0 { // an authzid (a=...) is not supported, as in PostgreSQL
		return "", errSCRAM
	}
	s.gs2 = m[:3]
	s.clientFirstBare = rest[1:]
	attrs := strings.Split(s.clientFirstBare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errSCRAM
	}
	cnonce := attrs[1][2:]
	if cnonce == "" || !printable(cnonce) {
		return "", errSCRAM
	}
	for _, a := range attrs[2:] {
		// extensions must be attr=value; mandatory ones (m=) are not supported
		if len(a) < 2 || a[1] != '=' || a[0] == 'm' {
			return "", errSCRAM
		}
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	s.nonce = cnonce + base64.StdEncoding.EncodeToString(b)
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.secret.salt) +
		",i=4096"
	return s.serverFirst, nil
}

func (s *scramServer) final(msg []byte) (string, error) {
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return "", errSCRAM
	}
	withoutProof := m[:i]
	proof, err := base64.StdEncoding.DecodeString(m[i+3:])
	if err != nil || len(proof) != sha256.Size {
		return "", errSCRAM
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2)) ||
		attrs[1] != "r="+s.nonce {
		return "", errSCRAM
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientSig := hmacSHA256(s.secret.storedKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for k := range clientKey {
		clientKey[k] = proof[k] ^ clientSig[k]
	}
	got := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(got[:], s.secret.storedKey) != 1 {
		return "", ErrAuthFailed
	}
	return "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(s.secret.serverKey, authMessage)), nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
