package audiohook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnauthorized is wrapped by every reason a connection is not
// authenticated: answered with disconnect (unauthorized).
var ErrUnauthorized = errors.New("audiohook: unauthorized")

// signedComponents are what a signature must cover: the request line, the
// host and the AudioHook headers, the API key among them.
var signedComponents = []string{"@request-target", "@authority", "audiohook-organization-id",
	"audiohook-session-id", "audiohook-correlation-id", "x-api-key"}

// clockSkew is how far a client's clock may be ahead of ours.
const clockSkew = 3 * time.Second

// minNonce is the shortest nonce taken (the reference client sends 24
// characters of base64).
const minNonce = 22

// verifier checks a connection request's API key and signature; it
// remembers the nonces it took while their signatures are young enough to
// be taken, so that a signed request cannot be replayed. Safe for
// concurrent use.
type verifier struct {
	apiKey string
	secret []byte // nil: requests are not signed
	maxAge time.Duration

	mu     sync.Mutex
	nonces map[string]time.Time // nonce → when it may be forgotten
	swept  time.Time
}

// maxNonces bounds the nonces remembered; past it new signatures are
// refused until old ones expire (a flood of valid signatures needs the
// secret).
const maxNonces = 1 << 16

func newVerifier(apiKey string, secret []byte, maxAge time.Duration) *verifier {
	return &verifier{apiKey: apiKey, secret: secret, maxAge: maxAge, nonces: map[string]time.Time{}}
}

// header is a header field's value as signatures cover it: each line's
// value trimmed, several joined by ", ".
func header(r *http.Request, name string) (string, bool) {
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	for i, v := range vs {
		vs[i] = strings.TrimSpace(v)
	}
	return strings.Join(vs, ", "), true
}

// verify tells why r may not open a session, or nil.
func (v *verifier) verify(r *http.Request, now time.Time) error {
	key, ok := header(r, "X-API-KEY")
	if !ok {
		return fmt.Errorf("%w: no X-API-KEY", ErrUnauthorized)
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(v.apiKey)) != 1 {
		return fmt.Errorf("%w: unknown API key", ErrUnauthorized)
	}
	if v.secret == nil {
		return nil
	}
	input, ok := header(r, "Signature-Input")
	if !ok {
		return fmt.Errorf("%w: not signed (no Signature-Input)", ErrUnauthorized)
	}
	sigField, ok := header(r, "Signature")
	if !ok {
		return fmt.Errorf("%w: no Signature", ErrUnauthorized)
	}
	inputs, err := parseDictionary(input)
	if err != nil || len(inputs) == 0 {
		return fmt.Errorf("%w: Signature-Input: %v", ErrUnauthorized, err)
	}
	sigs, err := parseDictionary(sigField)
	if err != nil {
		return fmt.Errorf("%w: Signature: %v", ErrUnauthorized, err)
	}
	label, base := inputs[0].key, inputs[0].value
	var sig []byte
	for _, m := range sigs {
		if m.key == label && m.value.list == nil {
			sig, _ = m.value.item.([]byte)
		}
	}
	if sig == nil {
		return fmt.Errorf("%w: no signature labelled %q", ErrUnauthorized, label)
	}
	if base.list == nil {
		return fmt.Errorf("%w: Signature-Input: want an inner list", ErrUnauthorized)
	}
	keyid, nonce, created, alg := "", "", int64(-1), "hmac-sha256"
	var expires int64 = -1
	for _, p := range base.params {
		var ok bool
		switch p.key {
		case "keyid":
			keyid, ok = p.value.(string)
		case "nonce":
			nonce, ok = p.value.(string)
		case "alg":
			alg, ok = p.value.(string)
		case "created":
			created, ok = p.value.(int64)
		case "expires":
			expires, ok = p.value.(int64)
		default:
			return fmt.Errorf("%w: unknown signature parameter %q", ErrUnauthorized, p.key)
		}
		if !ok {
			return fmt.Errorf("%w: signature parameter %q of the wrong type", ErrUnauthorized, p.key)
		}
	}
	switch {
	case alg != "hmac-sha256":
		return fmt.Errorf("%w: algorithm %q not supported", ErrUnauthorized, alg)
	case keyid != key:
		return fmt.Errorf("%w: keyid is not the X-API-KEY", ErrUnauthorized)
	case len(nonce) < minNonce:
		return fmt.Errorf("%w: no nonce, or one too short", ErrUnauthorized)
	case created < 0:
		return fmt.Errorf("%w: no created time", ErrUnauthorized)
	case time.Unix(created, 0).After(now.Add(clockSkew)):
		return fmt.Errorf("%w: created in the future", ErrUnauthorized)
	case now.Sub(time.Unix(created, 0)) > v.maxAge:
		return fmt.Errorf("%w: signature too old", ErrUnauthorized)
	case expires >= 0 && time.Unix(expires, 0).Before(now):
		return fmt.Errorf("%w: signature expired", ErrUnauthorized)
	}
	var lines strings.Builder
	covered := map[string]bool{}
	for _, it := range base.list {
		name, ok := it.item.(string)
		if !ok || len(it.params) > 0 {
			return fmt.Errorf("%w: covered components: want plain strings", ErrUnauthorized)
		}
		if covered[name] {
			return fmt.Errorf("%w: component %q twice", ErrUnauthorized, name)
		}
		covered[name] = true
		val, err := component(r, name)
		if err != nil {
			return err
		}
		lines.WriteString(serializeString(name) + ": " + val + "\n")
	}
	for _, c := range signedComponents {
		if !covered[c] {
			return fmt.Errorf("%w: the signature does not cover %s", ErrUnauthorized, c)
		}
	}
	lines.WriteString(`"@signature-params": ` + base.serialize())
	mac := hmac.New(sha256.New, v.secret)
	mac.Write([]byte(lines.String()))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return fmt.Errorf("%w: signatures do not match", ErrUnauthorized)
	}
	if !v.fresh(nonce, now) {
		return fmt.Errorf("%w: nonce replayed", ErrUnauthorized)
	}
	return nil
}

// component is a covered component's value.
func component(r *http.Request, name string) (string, error) {
	switch name {
	case "@request-target":
		return r.RequestURI, nil
	case "@authority":
		return strings.ToLower(r.Host), nil
	case "@method":
		return r.Method, nil
	case "@path":
		return r.URL.EscapedPath(), nil
	case "@query":
		return "?" + r.URL.RawQuery, nil
	case "signature", "signature-input":
		return "", fmt.Errorf("%w: component %q may not be covered", ErrUnauthorized, name)
	}
	if strings.HasPrefix(name, "@") {
		return "", fmt.Errorf("%w: derived component %q not supported", ErrUnauthorized, name)
	}
	v, ok := header(r, name)
	if !ok {
		return "", fmt.Errorf("%w: covered header %q absent", ErrUnauthorized, name)
	}
	return v, nil
}

// fresh takes a nonce once: false if it was taken while it could still be
// valid, or if too many are remembered.
func (v *verifier) fresh(nonce string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.swept) > time.Second {
		for n, t := range v.nonces {
			if now.After(t) {
				delete(v.nonces, n)
			}
		}
		v.swept = now
	}
	if t, ok := v.nonces[nonce]; ok && !now.After(t) {
		return false
	}
	if len(v.nonces) >= maxNonces {
		return false
	}
	v.nonces[nonce] = now.Add(v.maxAge + 2*clockSkew)
	return true
}

// Structured field values (RFC 8941), as much as signatures use:
// dictionaries whose members are items or inner lists, with parameters.

type sfParam struct {
	key   string
	value any // string, int64, bool, []byte, token, float64
}

type token string

type sfItem struct {
	item   any
	params []sfParam
}

// sfValue is a dictionary member's value: an item, or an inner list.
type sfValue struct {
	sfItem
	list []sfItem // non-nil: an inner list (item is unset)
}

type sfMember struct {
	key   string
	value sfValue
}

type sfParser struct {
	s string
	i int
}

var errSF = errors.New("not a structured field")

// maxMembers bounds a dictionary's members (and an inner list's items).
const maxMembers = 64

func parseDictionary(s string) ([]sfMember, error) {
	p := &sfParser{s: s}
	var out []sfMember
	p.skip(" ")
	for p.i < len(p.s) {
		if len(out) == maxMembers {
			return nil, errSF
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		var v sfValue
		if p.eat('=') {
			if p.peek() == '(' {
				v.list, v.params, err = p.innerList()
			} else {
				v.sfItem, err = p.item()
			}
			if err != nil {
				return nil, err
			}
		} else {
			v.item = true
			if v.params, err = p.parameters(); err != nil {
				return nil, err
			}
		}
		out = append(out, sfMember{k, v})
		p.skip(" \t")
		if p.i == len(p.s) {
			break
		}
		if !p.eat(',') {
			return nil, errSF
		}
		p.skip(" \t")
		if p.i == len(p.s) {
			return nil, errSF
		}
	}
	return out, nil
}

func (p *sfParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *sfParser) eat(c byte) bool {
	if p.peek() == c && p.i < len(p.s) {
		p.i++
		return true
	}
	return false
}

func (p *sfParser) skip(set string) {
	for p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *sfParser) key() (string, error) {
	c := p.peek()
	if !(c >= 'a' && c <= 'z' || c == '*') {
		return "", errSF
	}
	j := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_-.*", c) >= 0 {
			p.i++
			continue
		}
		break
	}
	return p.s[j:p.i], nil
}

func (p *sfParser) innerList() ([]sfItem, []sfParam, error) {
	if !p.eat('(') {
		return nil, nil, errSF
	}
	list := []sfItem{}
	for {
		p.skip(" ")
		if p.eat(')') {
			params, err := p.parameters()
			return list, params, err
		}
		if len(list) == maxMembers {
			return nil, nil, errSF
		}
		it, err := p.item()
		if err != nil {
			return nil, nil, err
		}
		list = append(list, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return nil, nil, errSF
		}
	}
}

func (p *sfParser) item() (sfItem, error) {
	v, err := p.bare()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.parameters()
	return sfItem{v, params}, err
}

func (p *sfParser) parameters() ([]sfParam, error) {
	var out []sfParam
	for p.eat(';') {
		if len(out) == maxMembers {
			return nil, errSF
		}
		p.skip(" ")
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		var v any = true
		if p.eat('=') {
			if v, err = p.bare(); err != nil {
				return nil, err
			}
		}
		out = append(out, sfParam{k, v})
	}
	return out, nil
}

func (p *sfParser) bare() (any, error) {
	c := p.peek()
	switch {
	case c == '"':
		p.i++
		var b strings.Builder
		for p.i < len(p.s) {
			c := p.s[p.i]
			p.i++
			switch {
			case c == '\\':
				if p.i == len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
					return nil, errSF
				}
				b.WriteByte(p.s[p.i])
				p.i++
			case c == '"':
				return b.String(), nil
			case c < 0x20 || c > 0x7e:
				return nil, errSF
			default:
				b.WriteByte(c)
			}
		}
		return nil, errSF
	case c == ':':
		p.i++
		j := strings.IndexByte(p.s[p.i:], ':')
		if j < 0 {
			return nil, errSF
		}
		b, err := base64.StdEncoding.DecodeString(p.s[p.i : p.i+j])
		if err != nil {
			return nil, errSF
		}
		p.i += j + 1
		return b, nil
	case c == '?':
		p.i++
		switch {
		case p.eat('1'):
			return true, nil
		case p.eat('0'):
			return false, nil
		}
		return nil, errSF
	case c == '-' || c >= '0' && c <= '9':
		j := p.i
		p.i++
		for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.') && p.i-j < 20 {
			p.i++
		}
		num := p.s[j:p.i]
		if strings.Contains(num, ".") {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return nil, errSF
			}
			return f, nil
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || len(strings.TrimPrefix(num, "-")) > 15 {
			return nil, errSF
		}
		return n, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		j := p.i
		for p.i < len(p.s) && !strings.ContainsRune(" \t,;()=\"", rune(p.s[p.i])) {
			p.i++
		}
		return token(p.s[j:p.i]), nil
	}
	return nil, errSF
}

func serializeString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func serializeBare(v any) string {
	switch v := v.(type) {
	case string:
		return serializeString(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		if v {
			return "?1"
		}
		return "?0"
	case []byte:
		return ":" + base64.StdEncoding.EncodeToString(v) + ":"
	case token:
		return string(v)
	}
	return ""
}

func serializeParams(ps []sfParam) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(";" + p.key)
		if v, ok := p.value.(bool); !ok || !v {
			b.WriteString("=" + serializeBare(p.value))
		}
	}
	return b.String()
}

// serialize writes an inner list as RFC 8941 does: the form the
// signature's base holds.
func (v sfValue) serialize() string {
	parts := make([]string, len(v.list))
	for i, it := range v.list {
		parts[i] = serializeBare(it.item) + serializeParams(it.params)
	}
	return "(" + strings.Join(parts, " ") + ")" + serializeParams(v.params)
}
