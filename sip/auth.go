package sip

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// authenticator checks SIP digest credentials (RFC 3261 22, MD5) against
// configured users; with none, every request passes. Nonces it issued stay
// valid for nonceTTL, also across a change of users.
type authenticator struct {
	realm  string
	mu     sync.Mutex
	users  map[string]string // read only; replaced whole by setUsers
	nonces map[string]time.Time
}

// setUsers replaces the users (a configuration reload); calls in progress
// are not asked again.
func (a *authenticator) setUsers(users map[string]string) {
	a.mu.Lock()
	a.users = users
	a.mu.Unlock()
}

// required tells whether requests must carry credentials.
func (a *authenticator) required() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.users) > 0
}

const (
	nonceTTL  = 5 * time.Minute
	maxNonces = 10000
)

func newAuthenticator(realm string, users map[string]string) *authenticator {
	return &authenticator{realm: realm, users: users, nonces: map[string]time.Time{}}
}

// challenge issues a fresh nonce and returns the WWW-Authenticate value.
func (a *authenticator) challenge() string {
	var b [16]byte
	rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	if len(a.nonces) >= maxNonces {
		for n, at := range a.nonces {
			if now.Sub(at) > nonceTTL || len(a.nonces) >= maxNonces {
				delete(a.nonces, n)
			}
		}
	}
	a.nonces[nonce] = now
	a.mu.Unlock()
	return (&digest.Challenge{Realm: a.realm, Nonce: nonce, Algorithm: "MD5"}).String()
}

// verify tells whether req carries valid credentials for a known user.
func (a *authenticator) verify(req *sipmsg.Request) bool {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Realm != a.realm {
		return false
	}
	a.mu.Lock()
	issued, ok := a.nonces[cred.Nonce]
	pass, known := a.users[cred.Username]
	a.mu.Unlock()
	if !ok || time.Since(issued) > nonceTTL || !known {
		return false
	}
	chal := &digest.Challenge{Realm: a.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: cred.URI,
		Username: cred.Username, Password: pass, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) == 1
}
