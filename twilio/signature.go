package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Signature is Twilio's request signature (X-Twilio-Signature) of a request
// to rawURL with the form parameters params (nil for a GET, whose query
// stays in the URL): the base64 HMAC-SHA1, keyed by the account's auth
// token, of the URL followed by each parameter's name and value, in the
// order of their names.
func Signature(authToken, rawURL string, params map[string]string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(rawURL))
	for _, k := range names {
		h.Write([]byte(k))
		h.Write([]byte(params[k]))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// ValidSignature tells whether sig signs rawURL (and params) under
// authToken. Twilio signs a URL with its port or without it inconsistently
// (twilio-go's RequestValidator says as much), so, as its SDKs do, the URL
// is tried with its scheme's default port added where it has none, and
// without any port.
func ValidSignature(authToken, rawURL string, params map[string]string, sig string) bool {
	if sig == "" {
		return false
	}
	ok := false
	for _, u := range portSpellings(rawURL) {
		// Every spelling is compared, in constant time each.
		ok = subtle.ConstantTimeCompare([]byte(Signature(authToken, u, params)), []byte(sig)) == 1 || ok
	}
	return ok
}

// portSpellings is rawURL with a port (its scheme's default where it has
// none: 443 for https and wss, else 80) and without one.
func portSpellings(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return []string{rawURL}
	}
	host := u.Hostname()
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	with, without := *u, *u
	without.Host = host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" || u.Scheme == "wss" {
			port = "443"
		}
		with.Host = host + ":" + port
	}
	return []string{with.String(), without.String()}
}

// signedURLs are the URLs Twilio may have signed for an upgrade request:
// public (the configured URL, with the request's query) or, without it, the
// request's own host, path and query, over wss (what Twilio dials; a proxy
// may have ended the TLS) or ws.
func signedURLs(public string, r *http.Request) []string {
	if public != "" {
		if p, err := url.Parse(public); err == nil { // checked by Validate
			p.RawQuery = r.URL.RawQuery
			return []string{p.String()}
		}
	}
	u := url.URL{Scheme: "wss", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	ws := u
	ws.Scheme = "ws"
	return []string{u.String(), ws.String()}
}
