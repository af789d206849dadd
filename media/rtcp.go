package media

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// reception is what a receiver report says of one source (RFC 3550 6.4.1,
// A.1, A.8). update runs on the packet path; the report side reads the
// published values from any goroutine.
type reception struct {
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32
	transit  int64
	haveJit  bool
	jitter   uint32 // scaled by 16 (A.8)
	t0       int64  // unix nanos of the source's first packet
	received uint32
}

// receptionPub is a reception's values for reports, readable from any
// goroutine.
type receptionPub struct {
	ssrc, base, extMax, received, jitter atomic.Uint32
	have                                 atomic.Bool
}

// update counts one packet of ssrc; clock is its codec's RTP clock (0: do
// not take it into the jitter), now its arrival. It publishes to pub.
func (x *reception) update(pub *receptionPub, ssrc uint32, seq uint16, ts uint32, clock int, now int64) {
	if !x.started || ssrc != x.ssrc {
		*x = reception{started: true, ssrc: ssrc, maxSeq: seq - 1, t0: now}
		pub.ssrc.Store(ssrc)
		pub.base.Store(uint32(seq))
	}
	switch d := seq - x.maxSeq; {
	case d == 0: // a duplicate
	case d < 0x8000: // in order, maybe after a gap
		if seq < x.maxSeq {
			x.cycles += 1 << 16
		}
		x.maxSeq = seq
	default: // late or reordered: counted, the highest stays
	}
	x.received++
	if clock > 0 {
		arrival := (now - x.t0) / 1000 * int64(clock) / 1_000_000 // in the codec's clock
		transit := arrival - int64(ts)
		if x.haveJit {
			d := int32(transit - x.transit)
			if d < 0 {
				d = -d
			}
			x.jitter += uint32(d) - (x.jitter+8)>>4
		}
		x.transit, x.haveJit = transit, true
	}
	pub.extMax.Store(x.cycles | uint32(x.maxSeq))
	pub.received.Store(x.received)
	pub.jitter.Store(x.jitter >> 4)
	pub.have.Store(true)
}

// rtcpInterval is how often a leg sends a receiver report (RFC 3550's
// minimum of 5 s for a two-party session).
const rtcpInterval = 5 * time.Second

// rtcpSide is a receiver's RTCP: reports it sends and sender reports it
// reads (for the round-trip fields of its reports). Its fields are guarded
// by mu: the RTCP socket's reader and the report sender share them.
type rtcpSide struct {
	conn    *net.UDPConn // the RTCP socket (RTP port + 1); nil: none
	mux     atomic.Bool  // RTCP shares the RTP socket (RFC 5761)
	ssrc    uint32       // ours
	cname   string
	mu      sync.Mutex
	peer    netip.AddrPort // where the peer's RTCP came from
	lsr     uint32         // middle of the last SR's NTP time
	lsrAt   time.Time
	prior   struct{ expected, received uint32 }
	last    time.Time // when the last report went
	buf     []byte
	rtcp    atomic.Int64 // packets received
	reports atomic.Int64 // reports sent
	unauth  atomic.Int64 // SRTCP packets that failed authentication
}

func newRTCPSide(conn *net.UDPConn) *rtcpSide {
	var b [12]byte
	rand.Read(b[:])
	return &rtcpSide{conn: conn, ssrc: binary.BigEndian.Uint32(b[:4]), cname: hex.EncodeToString(b[4:]) + "@callscribe",
		buf: make([]byte, 0, 1500)}
}

// isRTCP tells an RTCP packet on a multiplexed socket (RFC 5761 4).
func isRTCP(pkt []byte) bool {
	return len(pkt) >= 8 && pkt[0]>>6 == 2 && pkt[1] >= 192 && pkt[1] <= 223
}

// SetMux says whether the peer multiplexes RTCP on the RTP port (the SDP
// had a=rtcp-mux).
func (r *Receiver) SetMux(on bool) { r.rtcp.mux.Store(on) }

// acceptRTCP takes one RTCP datagram from the latched peer: SRTCP is
// authenticated, a sender report remembered for our reports' LSR and DLSR.
// The first accepted packet latches the peer's RTCP address as the first
// RTP packet latches its RTP address: later ones from another port of that
// host are ignored (on a plain leg anyone who can reach us can write the
// peer's address as the source), until the RTP peer moves to another host.
func (r *Receiver) acceptRTCP(pkt []byte, from netip.AddrPort, now int64) {
	cur := r.latched.Load()
	if cur == nil || cur.Addr() != from.Addr() {
		r.ignored.Add(1)
		return
	}
	x := r.rtcp
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.peer.IsValid() && x.peer.Addr() == cur.Addr() && x.peer != from {
		r.ignored.Add(1)
		return
	}
	if len(pkt) < 8 || pkt[0]>>6 != 2 {
		return
	}
	if k := r.leg.keys.Load(); k != nil {
		plain, err := k.inRTCP.DecryptRTCP(x.buf[:0], pkt, nil)
		if err != nil {
			x.unauth.Add(1)
			return
		}
		pkt = plain
	}
	x.rtcp.Add(1)
	x.peer = from
	// The first packet of a compound packet is an SR or an RR.
	if pkt[1] == 200 && len(pkt) >= 28 {
		x.lsr = binary.BigEndian.Uint32(pkt[10:14])
		x.lsrAt = time.Unix(0, now)
	}
}

// errNoPeer is returned by SendReport while there is nowhere to send: no
// packet from the peer yet and no usable address announced (Expect).
var errNoPeer = errors.New("media: no RTCP peer yet")

// SendReport sends an RTCP receiver report (with our CNAME) to the peer if
// the last one went at least 5 s ago: the reception of its stream so far,
// or no report block before any RTP came. A report tells the peer, its SBC
// and the NATs between that the call is alive on our side. Any goroutine.
func (r *Receiver) SendReport(now time.Time) error {
	x := r.rtcp
	x.mu.Lock()
	defer x.mu.Unlock()
	if now.Sub(x.last) < rtcpInterval {
		return nil
	}
	src := r.latched.Load()
	if src == nil {
		// Before the peer's first packet: the address it announced, as RFC
		// 3550 sends RTCP from the start. It also opens a firewall in
		// front of us for the peer's media.
		e := r.expect.Load()
		if e == nil || !e.sdp.Addr().IsValid() || e.sdp.Addr().IsUnspecified() || e.sdp.Port() == 0 {
			return errNoPeer
		}
		src = &e.sdp
	}
	conn, to := r.conn, *src
	switch {
	case x.mux.Load():
	case x.peer.IsValid() && x.peer.Addr() == src.Addr(): // not a host the RTP peer left
		conn, to = x.conn, x.peer
	default:
		conn, to = x.conn, netip.AddrPortFrom(src.Addr(), src.Port()+1)
	}
	if conn == nil {
		return nil
	}
	rr := &rtcp.ReceiverReport{SSRC: x.ssrc}
	rx := &r.leg.rxPub
	if rx.have.Load() {
		base, ext, got := rx.base.Load(), rx.extMax.Load(), rx.received.Load()
		expected := ext - base + 1
		lost := int64(expected) - int64(got)
		lost = max(min(lost, 0x7fffff), -0x800000)
		ei, ri := expected-x.prior.expected, got-x.prior.received
		x.prior.expected, x.prior.received = expected, got
		var fraction uint8
		if li := int64(ei) - int64(ri); ei > 0 && li > 0 {
			fraction = uint8(min(li<<8/int64(ei), 255))
		}
		b := rtcp.ReceptionReport{SSRC: rx.ssrc.Load(), FractionLost: fraction, TotalLost: uint32(lost) & 0xffffff,
			LastSequenceNumber: ext, Jitter: rx.jitter.Load(), LastSenderReport: x.lsr}
		if x.lsr != 0 {
			b.Delay = uint32(now.Sub(x.lsrAt) * 65536 / time.Second)
		}
		rr.Reports = []rtcp.ReceptionReport{b}
	}
	pkt, err := rtcp.Marshal([]rtcp.Packet{rr, rtcp.NewCNAMESourceDescription(x.ssrc, x.cname)})
	if err != nil {
		return err
	}
	if k := r.leg.keys.Load(); k != nil {
		if pkt, err = k.out.EncryptRTCP(nil, pkt, nil); err != nil {
			return err
		}
	}
	x.last = now
	if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
		return err
	}
	x.reports.Add(1)
	return nil
}
