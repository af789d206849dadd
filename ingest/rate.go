package ingest

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// PeerRate limits how often one address may offer a call (a token bucket
// per IP), before any work is done for the offer. The zero rate allows
// everything. Safe for concurrent use.
type PeerRate struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	peers map[netip.Addr]*peerBucket
	swept time.Time
}

type peerBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// peerIdle is how long an address's bucket is kept after its last offer;
// maxPeers bounds the addresses tracked at once.
const (
	peerIdle = time.Minute
	maxPeers = 1 << 16
)

// NewPeerRate allows each address perSecond offers a second with bursts of
// burst; perSecond <= 0 allows everything.
func NewPeerRate(perSecond float64, burst int) *PeerRate {
	return &PeerRate{limit: rate.Limit(perSecond), burst: max(burst, 1), peers: map[netip.Addr]*peerBucket{}}
}

// ErrRate refuses an offer over its address's rate.
var ErrRate = &Refusal{Reason: "rate", SIP: 503, HTTP: 429, RetryAfter: time.Second, Detail: "too many calls from this address"}

// Allow tells whether peer may offer a call now.
func (p *PeerRate) Allow(peer netip.Addr) bool {
	if p == nil || p.limit <= 0 {
		return true
	}
	now := time.Now()
	peer = peer.Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.swept) > peerIdle { // forget quiet addresses: the map stays bounded
		for a, b := range p.peers {
			if now.Sub(b.seen) > peerIdle {
				delete(p.peers, a)
			}
		}
		p.swept = now
	}
	b := p.peers[peer]
	if b == nil {
		if len(p.peers) >= maxPeers { // a flood from many addresses shares one bucket
			peer = netip.Addr{}
			b = p.peers[peer]
		}
		if b == nil {
			b = &peerBucket{lim: rate.NewLimiter(p.limit, p.burst)}
			p.peers[peer] = b
		}
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
