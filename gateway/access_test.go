package gateway

import (
	"net/http/httptest"
	"testing"
)

// A call's transcript and controls: with a token, the token from anywhere;
// without one, clients on this host only.
func TestCallAccess(t *testing.T) {
	for _, c := range []struct {
		token, remote, auth, query string
		want                       int
	}{
		{"", "127.0.0.1:4000", "", "", 200},
		{"", "[::1]:4000", "", "", 200},
		{"", "[::ffff:127.0.0.1]:4000", "", "", 200},
		{"", "192.0.2.7:4000", "", "", 403},
		{"", "[2001:db8::7]:4000", "", "", 403},
		{"", "bogus", "", "", 403},
		{"s3cret", "192.0.2.7:4000", "Bearer s3cret", "", 200},
		{"s3cret", "192.0.2.7:4000", "", "s3cret", 200},
		{"s3cret", "192.0.2.7:4000", "Bearer nope", "", 401},
		{"s3cret", "127.0.0.1:4000", "", "", 401}, // a token binds this host too
	} {
		r := httptest.NewRequest("POST", "/calls/x/pause?token="+c.query, nil)
		r.RemoteAddr = c.remote
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		if callAccess(w, r, c.token) {
			w.WriteHeader(200)
		}
		if w.Code != c.want {
			t.Errorf("token %q from %s (%q, ?token=%q): %d, want %d", c.token, c.remote, c.auth, c.query, w.Code, c.want)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:80": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "192.0.2.7:8080": false, "gateway.example.com:80": false, "junk": false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}
