package media

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoPorts is returned when every RTP port of the range is in use.
var ErrNoPorts = errors.New("media: no free RTP port")

// Ports hands out even RTP ports from a range, as SDP m-lines expect.
type Ports struct {
	mu     sync.Mutex
	lo, hi int
	next   int
	used   map[int]bool
}

// NewPorts returns an allocator for [lo, hi].
func NewPorts(lo, hi int) (*Ports, error) {
	if lo <= 0 || hi > 65535 || hi < lo+1 {
		return nil, fmt.Errorf("media: bad RTP port range %d-%d", lo, hi)
	}
	lo += lo & 1
	return &Ports{lo: lo, hi: hi, next: lo, used: map[int]bool{}}, nil
}

// Pair is a leg's sockets: RTP on an even port, RTCP on the next one
// (RFC 3550 11). RTCP may be nil (a leg that has none).
type Pair struct {
	RTP, RTCP *net.UDPConn
}

// Listen binds a UDP socket on host (an IP address) at a free even port of
// the range, for RTP only.
func (p *Ports) Listen(host string) (*net.UDPConn, error) {
	pair, err := p.listen(host, false)
	return pair.RTP, err
}

// ListenPair binds an RTP socket on host at a free even port of the range
// and an RTCP socket on the port after it.
func (p *Ports) ListenPair(host string) (Pair, error) { return p.listen(host, true) }

// listen tries the ports from a random one on, so the next call's port
// cannot be guessed and flooded before it is answered.
func (p *Ports) listen(host string, withRTCP bool) (Pair, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return Pair{}, fmt.Errorf("media: RTP address %q: %w", host, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := (p.hi - p.lo + 2) / 2
	p.next = p.lo + 2*rand.IntN(n)
	for range n {
		port := p.next
		p.next += 2
		if p.next > p.hi {
			p.next = p.lo
		}
		if p.used[port] {
			continue
		}
		if withRTCP && port+1 > p.hi {
			continue
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err != nil {
			continue // taken by someone else
		}
		pair := Pair{RTP: conn}
		if withRTCP {
			if pair.RTCP, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port+1)))); err != nil {
				conn.Close()
				continue
			}
		}
		p.used[port] = true
		return pair, nil
	}
	return Pair{}, ErrNoPorts
}

// InUse is the number of ports handed out.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

// Release returns a port to the range.
func (p *Ports) Release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// Receiver reads one leg's RTP socket on its own goroutine and feeds the
// leg. It latches on one source (symmetric RTP) and ignores packets from
// any other until Relatch. Which source may latch is set by Expect: the
// address the peer's SDP gave, or (a peer behind NAT sends from another
// address than it announces) any port of the signalling peer's IP within
// a short window; without Expect the first source latches.
type Receiver struct {
	fd      int         // with a Poller: the socket's descriptor
	rtcpFD  int         // and the RTCP socket's; -1 for none
	poller  *pollWorker // nil: the receiver's own goroutines read
	conn    *net.UDPConn
	rtcp    *rtcpSide
	leg     *Leg
	ports   *Ports
	latched atomic.Pointer[netip.AddrPort]
	expect  atomic.Pointer[expectation]
	relatch atomic.Bool
	last    atomic.Int64 // unix nanos of the last accepted packet
	ignored atomic.Int64
	panics  atomic.Int64 // packets whose handling panicked (dropped)
	packets atomic.Int64 // accepted, readable while the receiver runs
	readers atomic.Int32 // own goroutines still reading
	done    chan struct{}
	once    sync.Once
}

// NewReceiver starts reading the pair's sockets into leg on goroutines of
// its own. ports, if not nil, gets the port back on Close. A Poller reads
// many legs on fewer goroutines.
func NewReceiver(pair Pair, leg *Leg, ports *Ports) *Receiver {
	r := newReceiver(pair, leg, ports)
	readers := []func(){r.run}
	if pair.RTCP != nil {
		readers = append(readers, r.runRTCP)
	}
	r.readers.Store(int32(len(readers)))
	for _, read := range readers {
		go func() {
			read()
			if r.readers.Add(-1) == 0 { // the last reader out says done
				close(r.done)
			}
		}()
	}
	return r
}

func newReceiver(pair Pair, leg *Leg, ports *Ports) *Receiver {
	stampArrivals(pair.RTP)
	stampArrivals(pair.RTCP)
	r := &Receiver{conn: pair.RTP, rtcp: newRTCPSide(pair.RTCP), rtcpFD: -1, leg: leg, ports: ports, done: make(chan struct{})}
	r.last.Store(time.Now().UnixNano())
	return r
}

// LocalAddr is where the peer sends RTP.
func (r *Receiver) LocalAddr() netip.AddrPort {
	return r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Leg is the leg fed.
func (r *Receiver) Leg() *Leg { return r.leg }

// expectation is who may latch a receiver.
type expectation struct {
	sdp   netip.AddrPort // the address the peer announced
	peer  netip.Addr     // the signalling peer's IP
	until int64          // unix nanos: the peer's IP may latch until then
}

// Expect says who may latch: packets from sdp always, packets from any port
// of peer until window has passed (NAT); others are ignored and counted.
// An unspecified sdp address (0.0.0.0) only allows the peer rule.
func (r *Receiver) Expect(sdp netip.AddrPort, peer netip.Addr, window time.Duration) {
	e := &expectation{sdp: netip.AddrPortFrom(sdp.Addr().Unmap(), sdp.Port()), peer: peer.Unmap(),
		until: time.Now().Add(window).UnixNano()}
	r.expect.Store(e)
}

// mayLatch tells whether a packet from may become the latched source.
func (r *Receiver) mayLatch(from netip.AddrPort, now int64) bool {
	e := r.expect.Load()
	if e == nil {
		return true
	}
	ip := from.Addr().Unmap()
	if e.sdp.Addr().IsValid() && !e.sdp.Addr().IsUnspecified() && ip == e.sdp.Addr() && from.Port() == e.sdp.Port() {
		return true
	}
	return e.peer.IsValid() && ip == e.peer && now < e.until
}

// Relatch makes the next acceptable packet's source the latched one (a
// re-INVITE moved the peer's media; call Expect with its new address).
func (r *Receiver) Relatch() { r.relatch.Store(true) }

// Source is the latched peer address, if any.
func (r *Receiver) Source() (netip.AddrPort, bool) {
	p := r.latched.Load()
	if p == nil {
		return netip.AddrPort{}, false
	}
	return *p, true
}

// Touch restarts the idle clock, as if a packet had come (a resumed call
// is given time for its media to start again).
func (r *Receiver) Touch() { r.last.Store(time.Now().UnixNano()) }

// Idle is the time since the last accepted packet.
func (r *Receiver) Idle() time.Duration {
	return time.Duration(time.Now().UnixNano() - r.last.Load())
}

// Packets counts the packets accepted from the latched source.
func (r *Receiver) Packets() int64 { return r.packets.Load() }

// Panics counts packets whose handling panicked; they were dropped.
func (r *Receiver) Panics() int64 { return r.panics.Load() }

// Ignored counts packets from sources other than the latched one.
func (r *Receiver) Ignored() int64 { return r.ignored.Load() }

// Done is closed when the reader has stopped.
func (r *Receiver) Done() <-chan struct{} { return r.done }

func (r *Receiver) run() {
	buf, oob := make([]byte, 1500), make([]byte, oobSize)
	for r.readRTP(buf, oob) == nil {
	}
}

// readRTP reads one datagram of the RTP socket, blocking, and takes it at
// its arrival (the kernel's stamp, see stampArrivals). It fails once the
// socket is closed.
func (r *Receiver) readRTP(buf, oob []byte) error {
	n, oobn, _, from, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return err
	}
	r.acceptAt(buf[:n], from, arrival(oob[:oobn]))
	return nil
}

func (r *Receiver) runRTCP() {
	buf, oob := make([]byte, 1500), make([]byte, oobSize)
	for {
		n, oobn, _, from, err := r.rtcp.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return // closed
		}
		r.acceptRTCPSafe(buf[:n], from, arrival(oob[:oobn]))
	}
}

// acceptRTCPSafe is acceptRTCP that survives a panic (dropped, counted).
func (r *Receiver) acceptRTCPSafe(pkt []byte, from netip.AddrPort, now int64) {
	defer func() {
		if v := recover(); v != nil {
			r.panics.Add(1)
		}
	}()
	r.acceptRTCP(pkt, from, now)
}

// acceptAt latches on the first source and hands its packets to the leg;
// the packet arrived at now (unix nanoseconds).
func (r *Receiver) acceptAt(pkt []byte, from netip.AddrPort, now int64) {
	// A packet that makes the decoding path panic is dropped and counted;
	// the leg, its call and the process go on.
	defer func() {
		if v := recover(); v != nil {
			r.panics.Add(1)
		}
	}()
	cur := r.latched.Load()
	if cur == nil || r.relatch.Load() {
		if !r.mayLatch(from, now) {
			r.ignored.Add(1)
			return
		}
		// Only the peer's RTP latches: well formed, and authenticated on an
		// SRTP leg (a forged packet from the right address latches nothing).
		if !r.leg.HandleRTPAt(pkt, now) {
			return
		}
		r.relatch.Store(false)
		p := new(netip.AddrPort) // only here: from itself must not escape
		*p = from
		r.latched.Store(p)
		r.last.Store(now)
		r.packets.Add(1)
		return
	}
	if *cur != from {
		r.ignored.Add(1)
		return
	}
	if r.rtcp.mux.Load() && isRTCP(pkt) {
		r.acceptRTCP(pkt, from, now)
		return
	}
	r.last.Store(now)
	r.packets.Add(1)
	r.leg.HandleRTPAt(pkt, now)
}

// Stats are the leg's counters with the receiver's own; final once Done
// is closed.
func (r *Receiver) Stats() LegStats {
	s := r.leg.Stats()
	s.Ignored = r.ignored.Load()
	s.Panics = r.panics.Load()
	s.RTCP = r.rtcp.rtcp.Load()
	s.Reports = r.rtcp.reports.Load()
	s.Unauthenticated += r.rtcp.unauth.Load()
	return s
}

// Close stops the reader and releases the port; the leg's stats are final
// once Done is closed. Idempotent.
func (r *Receiver) Close() error {
	var err error
	r.once.Do(func() {
		if r.poller != nil {
			r.poller.remove(r)
			close(r.done)
		}
		err = r.conn.Close()
		if r.rtcp.conn != nil {
			r.rtcp.conn.Close()
		}
		<-r.done
		if r.ports != nil {
			r.ports.Release(int(r.LocalAddr().Port()))
		}
	})
	return err
}
