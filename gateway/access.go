package gateway

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
)

// callAccess says whether r may read a call's transcript or control the
// call, and answers it when not. With a token configured the request must
// carry it (Authorization: Bearer, or ?token= for an EventSource, which
// sets no headers): 401 otherwise. Without one only clients on this host
// are served (a local page or application, a proxy beside the gateway):
// 403 for others, so a gateway whose HTTP port is reachable from elsewhere
// never serves a transcript to whoever guesses a call id.
func callAccess(w http.ResponseWriter, r *http.Request, token string) bool {
	if token == "" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Unmap().IsLoopback() {
			return true
		}
		http.Error(w, "no token is configured (webrtc.token): only clients on the gateway's host are served", http.StatusForbidden)
		return false
	}
	if tokenMatches(r.Header.Get("Authorization"), "Bearer "+token) || tokenMatches(r.URL.Query().Get("token"), token) {
		return true
	}
	unauthorized(w)
	return false
}

// unauthorized answers a request without the bearer token it needs.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="callscribe"`)
	http.Error(w, "a bearer token is required", http.StatusUnauthorized)
}

// tokenMatches compares a credential in constant time.
func tokenMatches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
