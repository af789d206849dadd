package sip

import (
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
)

// guard polices requests before any work is done for them: the RFC 3261
// sanity of every request and, for a new INVITE, its source, its rate, the
// INVITEs in progress from its address, its credentials and its session
// timer. What it stops is a refusal, answered by respond; nothing is bound
// or reserved for it.
type guard struct {
	rate       *ingest.PeerRate
	auth       *authenticator                 // digest users (none: no authentication)
	allow      atomic.Pointer[[]netip.Prefix] // sources accepted; empty: any
	maxPending int                            // INVITEs in progress per address; 0: no bound
	minSE      time.Duration

	mu      sync.Mutex
	pending map[netip.Addr]int // INVITEs in progress by source
}

func newGuard(cfg *Config) *guard {
	g := &guard{rate: ingest.NewPeerRate(cfg.InviteRate, cfg.InviteBurst), auth: newAuthenticator(cfg.Realm, cfg.Users),
		maxPending: cfg.MaxUnackedPerSource, minSE: cfg.MinSE, pending: map[netip.Addr]int{}}
	g.allow.Store(&cfg.AllowCIDRs)
	return g
}

// The guard's refusals. Those of malformed requests are told apart by
// identity (respond answers each its own way); all count as bad_request.
var (
	errVersion   = &ingest.Refusal{Reason: "bad_request", SIP: 505}
	errCallID    = &ingest.Refusal{Reason: "bad_request", SIP: 400, Detail: "one Call-ID header"}
	errCSeq      = &ingest.Refusal{Reason: "bad_request", SIP: 400, Detail: "CSeq method does not match"}
	errHops      = &ingest.Refusal{Reason: "bad_request", SIP: 483}
	errExtension = &ingest.Refusal{Reason: "bad_request", SIP: 420}

	errForbidden       = &ingest.Refusal{Reason: "forbidden", SIP: 403}
	errUnauthorized    = &ingest.Refusal{Reason: "unauthorized", SIP: 401}
	errUnacked         = &ingest.Refusal{Reason: "unacked", SIP: 503, RetryAfter: 5 * time.Second, Detail: "too many calls in progress from this address"}
	errSessionExpires  = &ingest.Refusal{Reason: "bad_request", SIP: 400, Detail: "bad Session-Expires"}
	errSessionTooShort = &ingest.Refusal{Reason: "bad_request", SIP: 422}
)

// malformed is the refusal of what the parser let through but RFC 3261
// does not: another SIP version (505), more than one Call-ID or a CSeq
// naming another method (400), an INVITE that has run out of hops (483), a
// Require of an extension we lack (420); nil for a sane request.
func malformed(req *sipmsg.Request) *ingest.Refusal {
	switch {
	case req.SipVersion != "SIP/2.0":
		return errVersion
	case len(req.GetHeaders("call-id"))+len(req.GetHeaders("i")) != 1:
		return errCallID
	case req.CSeq() == nil || req.CSeq().MethodName != req.Method:
		return errCSeq
	case req.Method == sipmsg.INVITE && req.MaxForwards() != nil && req.MaxForwards().Val() == 0:
		return errHops
	case len(unsupported(req)) > 0:
		return errExtension
	}
	return nil
}

// unsupported lists the option tags req requires that we do not support.
func unsupported(req *sipmsg.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			// The option tags a Require may name (RFC 3261 8.2.2.3): session
			// timers (RFC 4028) and recording sessions (RFC 7866).
			if tag = strings.ToLower(strings.TrimSpace(tag)); tag != "" && tag != "timer" && tag != "siprec" {
				out = append(out, tag)
			}
		}
	}
	return out
}

// invite polices a new INVITE (one already found sane). It returns the
// refusal, or nil and done: the INVITE counts as in progress from its
// address until done is called, once it is answered and ACKed or given up.
func (g *guard) invite(req *sipmsg.Request, log *slog.Logger) (r *ingest.Refusal, done func()) {
	src := sourceOf(req)
	if !g.allowed(src) {
		log.Info("sip: source not allowed", "source", src)
		return errForbidden, nil
	}
	if !g.rate.Allow(src.Addr()) {
		return ingest.ErrRate, nil
	}
	if !g.beginPending(src.Addr()) {
		return errUnacked, nil
	}
	done = func() { g.endPending(src.Addr()) }
	if g.auth.required() && !g.auth.verify(req) {
		r = errUnauthorized
	} else if _, r = sessionExpires(req, g.minSE); r == nil {
		return nil, done
	}
	done()
	return r, nil
}

// respond answers a refused request: the refusal of the guard or of
// admission. The guard's own carry what the RFCs want with them: a
// challenge, the tags we lack, our Min-SE, our version.
func (g *guard) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, r *ingest.Refusal) {
	switch {
	case r == errVersion:
		res := sipmsg.NewResponseFromRequest(req, 505, "Version Not Supported", nil)
		res.SipVersion = "SIP/2.0" // ours, not the one we do not speak
		tx.Respond(res)
	case r == errCallID || r == errCSeq: // the Warning says what; the phrase stays plain
		respond(tx, req, 400, "Bad Request", warning(r.Detail))
	case r == errExtension:
		respond(tx, req, 420, "Bad Extension", sipmsg.NewHeader("Unsupported", strings.Join(unsupported(req), ", ")))
	case r.SIP == 401 && g.auth.required():
		respond(tx, req, 401, "Unauthorized", sipmsg.NewHeader("WWW-Authenticate", g.auth.challenge()))
	case r == errSessionTooShort:
		respond(tx, req, 422, reasonPhrase(422), sipmsg.NewHeader("Min-SE", strconv.Itoa(int(g.minSE.Seconds()))))
	default:
		respondRefusal(tx, req, r)
	}
	if errors.Is(r, ingest.ErrRate) || errors.Is(r, errUnacked) {
		// Answered once, no transaction kept: a flood must not hold a
		// retransmission timer for each of its INVITEs.
		tx.Terminate()
	}
}

// setAccess replaces the digest users and the allowed sources.
func (g *guard) setAccess(users map[string]string, allow []netip.Prefix) {
	g.auth.setUsers(users)
	g.allow.Store(&allow)
}

func sourceOf(req *sipmsg.Request) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(req.Source())
	return ap
}

func (g *guard) allowed(src netip.AddrPort) bool {
	allow := *g.allow.Load()
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Contains(src.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// beginPending counts an INVITE in progress from ip, unless ip has
// maxPending already.
func (g *guard) beginPending(ip netip.Addr) bool {
	ip = ip.Unmap()
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.maxPending; n > 0 && g.pending[ip] >= n {
		return false
	}
	g.pending[ip]++
	return true
}

// endPending ends what beginPending counted.
func (g *guard) endPending(ip netip.Addr) {
	ip = ip.Unmap()
	g.mu.Lock()
	if g.pending[ip]--; g.pending[ip] <= 0 {
		delete(g.pending, ip)
	}
	g.mu.Unlock()
}

// sessionExpires reads RFC 4028 headers: the interval the caller asks for
// (0: none), or the refusal of one that is bad or under minSE.
func sessionExpires(req *sipmsg.Request, minSE time.Duration) (time.Duration, *ingest.Refusal) {
	h := req.GetHeader("Session-Expires")
	if h == nil {
		h = req.GetHeader("x") // compact form of Session-Expires
	}
	if h == nil {
		return 0, nil
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs <= 0 {
		return 0, errSessionExpires
	}
	if d := time.Duration(secs) * time.Second; d >= minSE {
		return d, nil
	}
	return 0, errSessionTooShort
}
