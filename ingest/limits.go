package ingest

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// ConnLimits are the limits a door puts on the connections strangers open
// to it: how often and how many at once from one address, checked before
// any work is done for a connection (a WebSocket upgrade, a TCP accept),
// and how long a connection may take to say who it is, stay quiet, and
// last. A door embeds it in its section (yaml inline), so every door
// spells these keys alike, and gives its own defaults. A field that is
// zero where the comment gives zero no meaning takes the door's default
// (Fill).
type ConnLimits struct {
	// ConnectRate limits the connections one address may open: a token
	// bucket per address of this many a second, bursts of connect_burst.
	// Beyond it a connection is refused before any work (a WebSocket door
	// answers 429 with Retry-After before the upgrade; AudioSocket sends an
	// error message, rate, and closes). 0: no limit.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is the size of connect_rate's bucket: the connections
	// one address may open at once.
	ConnectBurst int `yaml:"connect_burst"`
	// MaxConnectionsPerAddress bounds the connections open at once from
	// one address, calls and those that have not said who they are yet;
	// more are refused like connect_rate's (503 with Retry-After before
	// the upgrade, or an error message, limit). 0: no bound (platforms that
	// send many calls from few addresses).
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// StartTimeout ends a connection whose first message (AudioHook's
	// open, a Media Stream's or jambonz's start, a fork's metadata,
	// AudioSocket's UUID) has not come this long after it opened.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// IdleTimeout ends a call no message has come on for this long
	// (reason timeout): a peer that vanished without closing.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxDuration ends a call this long after it started (reason timeout).
	MaxDuration time.Duration `yaml:"max_duration"`
}

// Fill sets the durations that are zero to d's (a door's defaults); the
// rate and the bound keep their zero, which means no limit.
func (l *ConnLimits) Fill(d ConnLimits) {
	for _, f := range []struct{ v, d *time.Duration }{
		{&l.StartTimeout, &d.StartTimeout}, {&l.IdleTimeout, &d.IdleTimeout}, {&l.MaxDuration, &d.MaxDuration},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
}

// Validate checks the limits as written; an error names the first bad one
// by its key ("connect_rate: out of range").
func (l *ConnLimits) Validate() error {
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"connect_rate", l.ConnectRate >= 0}, {"connect_burst", l.ConnectBurst >= 0},
		{"max_connections_per_address", l.MaxConnectionsPerAddress >= 0},
		{"start_timeout", l.StartTimeout > 0}, {"idle_timeout", l.IdleTimeout > 0}, {"max_duration", l.MaxDuration > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}

// MessageLimit bounds one message of a WebSocket door.
type MessageLimit struct {
	// MaxMessageBytes bounds one WebSocket message (AudioHook: one text
	// message, its audio has max_frame_bytes); a larger one ends the
	// connection (close 1009, or AudioHook's disconnect, reason error).
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// Fill sets a zero bound to d's.
func (m *MessageLimit) Fill(d MessageLimit) {
	if m.MaxMessageBytes == 0 {
		m.MaxMessageBytes = d.MaxMessageBytes
	}
}

// Validate checks the bound as written: 1 KiB to 16 MiB.
func (m *MessageLimit) Validate() error {
	if m.MaxMessageBytes < 1024 || m.MaxMessageBytes > 16<<20 {
		return fmt.Errorf("max_message_bytes: out of range (1024 to %d)", 16<<20)
	}
	return nil
}

// ErrConnections refuses a connection over max_connections_per_address.
var ErrConnections = &Refusal{Reason: "limit", SIP: 503, HTTP: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
	Detail: "too many connections from this address"}

// Gate holds a door's per-address limits on the connections it is
// offered: connect_rate and max_connections_per_address. Safe for
// concurrent use.
type Gate struct {
	rate *PeerRate
	max  int

	mu   sync.Mutex
	open map[netip.Addr]int // connections held, by address; only with a bound
}

// NewGate enforces l's rate and bound.
func NewGate(l ConnLimits) *Gate {
	return &Gate{rate: NewPeerRate(l.ConnectRate, l.ConnectBurst), max: l.MaxConnectionsPerAddress,
		open: map[netip.Addr]int{}}
}

// Enter lets a connection from peer in, or says why not: ErrRate over the
// address's rate, ErrConnections over its bound. A connection let in
// holds its place until Leave(peer).
func (g *Gate) Enter(peer netip.Addr) *Refusal {
	if !g.rate.Allow(peer) {
		return ErrRate
	}
	if g.max <= 0 {
		return nil
	}
	peer = peer.Unmap()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[peer] >= g.max {
		return ErrConnections
	}
	g.open[peer]++
	return nil
}

// Leave gives back the place of a connection from peer that Enter let in.
func (g *Gate) Leave(peer netip.Addr) {
	if g.max <= 0 {
		return
	}
	peer = peer.Unmap()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[peer]--; g.open[peer] <= 0 {
		delete(g.open, peer)
	}
}

// Held is the number of connections from peer holding a place (0 without
// a bound).
func (g *Gate) Held(peer netip.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open[peer.Unmap()]
}

// PeerOf is the address of a "host:port" remote address (an
// http.Request's RemoteAddr, a net.Conn's), unmapped; the zero address
// when it has none.
func PeerOf(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// WriteHTTP answers an HTTP request with the refusal: its status,
// Retry-After in whole seconds (at least 1) when it has one, and Detail
// (or the status's text) as the body.
func (r *Refusal) WriteHTTP(w http.ResponseWriter) {
	if r.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(r.RetryAfter.Seconds()), 1)))
	}
	msg := r.Detail
	if msg == "" {
		msg = http.StatusText(r.HTTP)
	}
	http.Error(w, msg, r.HTTP)
}
