package ingest

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// A burst from one address at a gate with a bound lets exactly the bound
// in, whatever the interleaving; a place given back lets one more in; the
// IPv4-mapped form of an address is the address; others are not held back.
func TestGateBoundUnderBurst(t *testing.T) {
	g := NewGate(ConnLimits{MaxConnectionsPerAddress: 3})
	peer := netip.MustParseAddr("192.0.2.7")
	const n = 64
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		in      int
		refused = map[*Refusal]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := peer
			if i%2 == 1 {
				p = netip.AddrFrom16(peer.As16()) // ::ffff:192.0.2.7
			}
			why := g.Enter(p)
			mu.Lock()
			defer mu.Unlock()
			if why == nil {
				in++
			} else {
				refused[why]++
			}
		}()
	}
	wg.Wait()
	if in != 3 || refused[ErrConnections] != n-3 || g.Held(peer) != 3 {
		t.Fatalf("%d in, refused %v, held %d", in, refused, g.Held(peer))
	}
	if why := g.Enter(netip.MustParseAddr("192.0.2.8")); why != nil {
		t.Fatalf("another address: %v", why)
	}
	g.Leave(netip.AddrFrom16(peer.As16()))
	if why := g.Enter(peer); why != nil {
		t.Fatalf("after a leave: %v", why)
	}
	if why := g.Enter(peer); why != ErrConnections {
		t.Fatalf("over the bound again: %v", why)
	}
	for range 3 {
		g.Leave(peer)
	}
	if h := g.Held(peer); h != 0 {
		t.Fatalf("held %d after every leave", h)
	}
	g.Leave(peer) // one too many leaves nothing below zero
	if h := g.Held(peer); h != 0 {
		t.Fatalf("held %d after a stray leave", h)
	}
}

// The rate lets a burst's worth in and refuses the rest with ErrRate,
// before the bound counts them; without limits every connection is let in
// and none is held.
func TestGateRate(t *testing.T) {
	g := NewGate(ConnLimits{ConnectRate: 0.01, ConnectBurst: 4, MaxConnectionsPerAddress: 100})
	peer := netip.MustParseAddr("2001:db8::1")
	in := 0
	for range 10 {
		switch why := g.Enter(peer); why {
		case nil:
			in++
		case ErrRate:
		default:
			t.Fatalf("refused %v", why)
		}
	}
	if in != 4 || g.Held(peer) != 4 {
		t.Fatalf("%d in, %d held", in, g.Held(peer))
	}

	open := NewGate(ConnLimits{})
	for range 1000 {
		if why := open.Enter(peer); why != nil {
			t.Fatalf("no limits: %v", why)
		}
	}
	if h := open.Held(peer); h != 0 {
		t.Fatalf("no bound, yet %d held", h)
	}
	open.Leave(peer)
}

// Validate names each bad limit by its key; Fill takes a door's default
// durations and leaves a zero rate and bound (no limit) alone.
func TestConnLimits(t *testing.T) {
	ok := ConnLimits{StartTimeout: time.Second, IdleTimeout: time.Second, MaxDuration: time.Hour}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		key  string
		edit func(*ConnLimits)
	}{
		{"connect_rate", func(l *ConnLimits) { l.ConnectRate = -1 }},
		{"connect_burst", func(l *ConnLimits) { l.ConnectBurst = -1 }},
		{"max_connections_per_address", func(l *ConnLimits) { l.MaxConnectionsPerAddress = -1 }},
		{"start_timeout", func(l *ConnLimits) { l.StartTimeout = 0 }},
		{"idle_timeout", func(l *ConnLimits) { l.IdleTimeout = -time.Second }},
		{"max_duration", func(l *ConnLimits) { l.MaxDuration = 0 }},
	} {
		l := ok
		bad.edit(&l)
		if err := l.Validate(); err == nil || !strings.HasPrefix(err.Error(), bad.key+":") {
			t.Errorf("%s: %v", bad.key, err)
		}
	}
	d := ConnLimits{ConnectRate: 5, ConnectBurst: 20, MaxConnectionsPerAddress: 9,
		StartTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MaxDuration: 4 * time.Hour}
	l := ConnLimits{IdleTimeout: time.Second}
	l.Fill(d)
	want := ConnLimits{StartTimeout: 5 * time.Second, IdleTimeout: time.Second, MaxDuration: 4 * time.Hour}
	if l != want {
		t.Errorf("filled %+v, want %+v", l, want)
	}

	for _, n := range []int{0, 1023, 16<<20 + 1} {
		m := MessageLimit{MaxMessageBytes: n}
		if err := m.Validate(); err == nil || !strings.HasPrefix(err.Error(), "max_message_bytes:") {
			t.Errorf("max_message_bytes %d: %v", n, err)
		}
	}
	m := MessageLimit{}
	m.Fill(MessageLimit{MaxMessageBytes: 4096})
	if err := m.Validate(); err != nil || m.MaxMessageBytes != 4096 {
		t.Errorf("filled %d: %v", m.MaxMessageBytes, err)
	}
}

// PeerOf reads a remote address as the doors get it; what it cannot read
// is the zero address (one shared bucket and count), not a panic.
func TestPeerOf(t *testing.T) {
	for in, want := range map[string]netip.Addr{
		"192.0.2.1:5060":        netip.MustParseAddr("192.0.2.1"),
		"[::ffff:192.0.2.1]:80": netip.MustParseAddr("192.0.2.1"),
		"[2001:db8::2]:443":     netip.MustParseAddr("2001:db8::2"),
		"pipe":                  {},
		"":                      {},
	} {
		if got := PeerOf(in); got != want {
			t.Errorf("PeerOf(%q) = %v, want %v", in, got, want)
		}
	}
}

// A refusal written as HTTP carries its status, Retry-After in whole
// seconds (at least one) and its detail, or the status's text.
func TestRefusalWriteHTTP(t *testing.T) {
	for _, c := range []struct {
		r           *Refusal
		retry, body string
	}{
		{ErrRate, "1", "too many calls from this address"},
		{ErrConnections, "5", "too many connections from this address"},
		{&Refusal{HTTP: http.StatusServiceUnavailable, RetryAfter: 100 * time.Millisecond}, "1", http.StatusText(http.StatusServiceUnavailable)},
		{&Refusal{HTTP: 400, Detail: "bad"}, "", "bad"},
	} {
		w := httptest.NewRecorder()
		c.r.WriteHTTP(w)
		if w.Code != c.r.HTTP || w.Header().Get("Retry-After") != c.retry || strings.TrimSpace(w.Body.String()) != c.body {
			t.Errorf("%+v: %d, Retry-After %q, %q", c.r, w.Code, w.Header().Get("Retry-After"), w.Body.String())
		}
	}
}
