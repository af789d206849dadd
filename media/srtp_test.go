package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

// srtpPeer is the far end of an SRTP leg: it protects what it sends with its
// key and reads what we send with ours.
type srtpPeer struct {
	enc, dec *srtp.Context
}

func newSRTPPair(t *testing.T, suite string) (*SRTP, *srtpPeer) {
	t.Helper()
	s, ok := LookupSRTPSuite(suite)
	if !ok {
		t.Fatalf("no suite %s", suite)
	}
	theirs, ours := NewSRTPKey(s), NewSRTPKey(s)
	keys, err := NewSRTP(s, theirs, ours)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := srtp.CreateContext(theirs[:s.keyLen], theirs[s.keyLen:], s.profile)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(ours[:s.keyLen], ours[s.keyLen:], s.profile)
	if err != nil {
		t.Fatal(err)
	}
	return keys, &srtpPeer{enc: enc, dec: dec}
}

func (p *srtpPeer) protect(t *testing.T, pkts [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(pkts))
	for i, b := range pkts {
		var err error
		if out[i], err = p.enc.EncryptRTP(nil, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Every suite: the leg decodes what the peer protected exactly as the same
// packets in the clear; a packet altered in flight, one under another key and
// a replayed one are dropped and counted, and cost no audio.
func TestLegSRTPSuites(t *testing.T) {
	plain := pcmuPackets(t, tone(440, 8000, 8000), 7)
	ref := newTestLeg(t, nil)
	for _, p := range plain {
		ref.HandleRTP(p)
	}
	want := readAll(ref)
	for _, suite := range SRTPSuites() {
		t.Run(suite.Name, func(t *testing.T) {
			keys, peer := newSRTPPair(t, suite.Name)
			_, stranger := newSRTPPair(t, suite.Name)
			l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(2 * 16000), SRTP: keys})
			if err != nil {
				t.Fatal(err)
			}
			sealed := peer.protect(t, plain)
			forged := stranger.protect(t, plain[:3])
			for i, p := range sealed {
				if i == 10 {
					bad := append([]byte(nil), p...)
					bad[len(bad)-1] ^= 1 // the tag, or the GCM-sealed payload
					l.HandleRTP(bad)
					l.HandleRTP(forged[0])
				}
				l.HandleRTP(p)
				if i == 20 {
					l.HandleRTP(p) // replayed
				}
			}
			got := readAll(l)
			st := l.Stats()
			if st.Unauthenticated != 3 || st.Lost != 0 || st.Malformed != 0 {
				t.Errorf("stats %+v, want 3 unauthenticated and nothing lost", st)
			}
			if len(got) != len(want) {
				t.Fatalf("%d samples, %d in the clear", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("sample %d differs from the clear leg's", i)
				}
			}
		})
	}
}

// Plain RTP sent to an SRTP leg is not audio: it does not authenticate.
func TestLegSRTPRefusesPlainRTP(t *testing.T) {
	keys, _ := newSRTPPair(t, "AES_CM_128_HMAC_SHA1_80")
	l, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(16000), SRTP: keys})
	for _, p := range pcmuPackets(t, tone(440, 8000, 1600), 7) {
		l.HandleRTP(p)
	}
	if st := l.Stats(); st.Unauthenticated != 10 || ringOf(l).Len() != 0 {
		t.Errorf("stats %+v, %d samples", st, ringOf(l).Len())
	}
}

// A rekeyed leg (a re-INVITE's new keys) decrypts with the new keys from the
// next packet on.
func TestLegRekey(t *testing.T) {
	k1, p1 := newSRTPPair(t, "AES_CM_128_HMAC_SHA1_32")
	k2, p2 := newSRTPPair(t, "AEAD_AES_128_GCM")
	l, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(2 * 16000), SRTP: k1})
	pkts := pcmuPackets(t, tone(440, 8000, 3200), 7)
	for _, p := range p1.protect(t, pkts[:10]) {
		l.HandleRTP(p)
	}
	l.Rekey(k2)
	for _, p := range p2.protect(t, pkts[10:]) {
		l.HandleRTP(p)
	}
	if st := l.Stats(); st.Unauthenticated != 0 || st.Packets != 20 || l.SRTP() != k2 {
		t.Errorf("stats %+v", st)
	}
}

// rtcpPeer is a peer's RTP and RTCP sockets.
func rtcpPeer(t *testing.T) (rtpConn, rtcpConn *net.UDPConn) {
	t.Helper()
	ports, _ := NewPorts(33000, 33100)
	pair, err := ports.ListenPair("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pair.RTP.Close(); pair.RTCP.Close() })
	return pair.RTP, pair.RTCP
}

func readRTCP(t *testing.T, conn *net.UDPConn, dec *srtp.Context) []rtcp.Packet {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no RTCP: %v", err)
	}
	b := buf[:n]
	if dec != nil {
		if b, err = dec.DecryptRTCP(nil, b, nil); err != nil {
			t.Fatalf("SRTCP: %v", err)
		}
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

// A receiver reports its reception to the peer's RTCP port (RTP port + 1):
// the peer's SSRC, the highest sequence number, what was lost; after the
// peer's sender report, its LSR and the delay since. With SRTP the report
// is SRTCP under our key, and the peer's SRTCP is read with its key.
func TestReceiverSendsReports(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "RTP"
		if secure {
			name = "SRTP"
		}
		t.Run(name, func(t *testing.T) {
			ports, _ := NewPorts(32200, 32300)
			pair, err := ports.ListenPair("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			var keys *SRTP
			var peer *srtpPeer
			if secure {
				keys, peer = newSRTPPair(t, "AES_CM_128_HMAC_SHA1_80")
			}
			l, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(4 * 16000), SRTP: keys})
			r := NewReceiver(pair, l, ports)
			defer r.Close()
			if pair.RTCP.LocalAddr().(*net.UDPAddr).Port != int(r.LocalAddr().Port())+1 {
				t.Fatalf("RTCP on %v, RTP on %v", pair.RTCP.LocalAddr(), r.LocalAddr())
			}
			srcRTP, srcRTCP := rtcpPeer(t)
			pkts := pcmuPackets(t, tone(440, 8000, 8000), 0xabc)
			sent := 0
			for i, p := range pkts {
				if i == 5 || i == 6 {
					continue // lost
				}
				if secure {
					p = peer.protect(t, [][]byte{p})[0]
				}
				srcRTP.WriteToUDPAddrPort(p, r.LocalAddr())
				sent++
			}
			for start := time.Now(); r.Packets() < int64(sent) && time.Since(start) < 3*time.Second; {
				time.Sleep(5 * time.Millisecond)
			}
			var dec *srtp.Context
			if secure {
				dec = peer.dec
			}
			if err := r.SendReport(time.Now()); err != nil {
				t.Fatal(err)
			}
			got := readRTCP(t, srcRTCP, dec)
			rr, ok := got[0].(*rtcp.ReceiverReport)
			if !ok || len(rr.Reports) != 1 {
				t.Fatalf("got %v, want a receiver report with one block", got)
			}
			if _, ok := got[1].(*rtcp.SourceDescription); !ok {
				t.Errorf("no SDES CNAME after the report: %v", got)
			}
			b := rr.Reports[0]
			if b.SSRC != 0xabc || b.LastSequenceNumber != uint32(100+len(pkts)-1) || b.TotalLost != 2 || b.FractionLost == 0 {
				t.Errorf("report block %+v", b)
			}
			if err := r.SendReport(time.Now()); err != nil { // within 5 s: nothing goes
				t.Fatal(err)
			}

			// The peer's sender report, then our next report 5 s on.
			sr, _ := (&rtcp.SenderReport{SSRC: 0xabc, NTPTime: 0x0102030405060708}).Marshal()
			if secure {
				sr, _ = peer.enc.EncryptRTCP(nil, sr, nil)
			}
			srcRTCP.WriteToUDPAddrPort(sr, pair.RTCP.LocalAddr().(*net.UDPAddr).AddrPort())
			for start := time.Now(); r.rtcp.rtcp.Load() < 1 && time.Since(start) < 3*time.Second; {
				time.Sleep(5 * time.Millisecond)
			}
			// A sender report from another port of the peer's host (the
			// peer's address written as the source): ignored, and our
			// reports stay with the port the peer's RTCP came from.
			spoof, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer spoof.Close()
			fake, _ := (&rtcp.SenderReport{SSRC: 0xabc, NTPTime: 0x1112131415161718}).Marshal()
			if secure {
				fake, _ = peer.enc.EncryptRTCP(nil, fake, nil)
			}
			ignored := r.Ignored()
			spoof.WriteToUDPAddrPort(fake, pair.RTCP.LocalAddr().(*net.UDPAddr).AddrPort())
			for start := time.Now(); r.Ignored() == ignored && time.Since(start) < 3*time.Second; {
				time.Sleep(5 * time.Millisecond)
			}
			if err := r.SendReport(time.Now().Add(rtcpInterval)); err != nil {
				t.Fatal(err)
			}
			got = readRTCP(t, srcRTCP, dec)
			b = got[0].(*rtcp.ReceiverReport).Reports[0]
			if b.LastSenderReport != 0x03040506 || b.Delay == 0 {
				t.Errorf("after an SR: LSR %#x, DLSR %d", b.LastSenderReport, b.Delay)
			}
			r.Close()
			if st := r.Stats(); st.Reports != 2 || st.RTCP != 1 || st.Unauthenticated != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Before the peer's first packet a report goes to the address it
// announced (RTP port + 1), without a report block; an unspecified
// address (a call on hold) gets none.
func TestReceiverReportsBeforeFirstPacket(t *testing.T) {
	ports, _ := NewPorts(32600, 32700)
	pair, err := ports.ListenPair("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(16000)})
	r := NewReceiver(pair, l, ports)
	defer r.Close()
	if err := r.SendReport(time.Now()); err == nil {
		t.Error("a report with nowhere to go")
	}
	r.Expect(netip.MustParseAddrPort("0.0.0.0:4000"), netip.MustParseAddr("127.0.0.1"), time.Second)
	if err := r.SendReport(time.Now()); err == nil {
		t.Error("a report to an unspecified address")
	}
	srcRTP, srcRTCP := rtcpPeer(t)
	r.Expect(srcRTP.LocalAddr().(*net.UDPAddr).AddrPort(), netip.MustParseAddr("127.0.0.1"), time.Second)
	if err := r.SendReport(time.Now()); err != nil {
		t.Fatal(err)
	}
	got := readRTCP(t, srcRTCP, nil)
	if rr, ok := got[0].(*rtcp.ReceiverReport); !ok || len(rr.Reports) != 0 {
		t.Errorf("got %v, want a receiver report without blocks", got)
	}
}

// With rtcp-mux the peer's RTCP comes on the RTP port: it is read as RTCP,
// not audio, and reports go back to the RTP source.
func TestReceiverRTCPMux(t *testing.T) {
	ports, _ := NewPorts(32400, 32500)
	pair, _ := ports.ListenPair("127.0.0.1")
	l := newTestLeg(t, nil)
	r := NewReceiver(pair, l, ports)
	defer r.Close()
	r.SetMux(true)
	src, _ := rtcpPeer(t)
	pkts := pcmuPackets(t, tone(440, 8000, 1600), 9)
	for _, p := range pkts {
		src.WriteToUDPAddrPort(p, r.LocalAddr())
	}
	sr, _ := (&rtcp.SenderReport{SSRC: 9, NTPTime: 1 << 40}).Marshal()
	src.WriteToUDPAddrPort(sr, r.LocalAddr())
	for start := time.Now(); r.rtcp.rtcp.Load() < 1 && time.Since(start) < 3*time.Second; {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.SendReport(time.Now()); err != nil {
		t.Fatal(err)
	}
	got := readRTCP(t, src, nil)
	if rr, ok := got[0].(*rtcp.ReceiverReport); !ok || rr.Reports[0].SSRC != 9 {
		t.Errorf("got %v", got)
	}
	r.Close()
	if st := r.Stats(); st.Packets != int64(len(pkts)) || st.Malformed != 0 || st.UnknownPT != 0 || st.RTCP != 1 {
		t.Errorf("stats %+v", st)
	}
}

// The reception statistics of RFC 3550 A.1 and A.8: sequence wrap, loss and
// jitter of a stream arriving with a steady 5 ms wobble.
func TestReceptionStatistics(t *testing.T) {
	var x reception
	var pub receptionPub
	now := int64(1e9)
	seq := uint16(65530)
	for i := range 100 {
		wobble := int64(0)
		if i%2 == 1 {
			wobble = 5e6
		}
		if i != 50 {
			x.update(&pub, 42, seq, uint32(i*160), 8000, now+int64(i)*20e6+wobble)
		}
		seq++
	}
	if got, want := pub.extMax.Load(), uint32(1<<16|(65530+99-65536)); got != want {
		t.Errorf("extended highest %#x, want %#x", got, want)
	}
	if exp := pub.extMax.Load() - pub.base.Load() + 1; exp != 100 || pub.received.Load() != 99 {
		t.Errorf("expected %d, received %d", exp, pub.received.Load())
	}
	// |D| is 40 clock units every packet: the estimate converges to 40.
	if j := pub.jitter.Load(); j < 36 || j > 40 {
		t.Errorf("jitter %d, want about 40", j)
	}
}

// On an SRTP leg only an authenticated packet latches: a forged one from
// an address that may latch is dropped and latches nothing, so the peer's
// own packets are still taken.
func TestSRTPForgeryDoesNotLatch(t *testing.T) {
	ports, _ := NewPorts(32600, 32700)
	pair, _ := ports.ListenPair("127.0.0.1")
	keys, peer := newSRTPPair(t, "AES_CM_128_HMAC_SHA1_80")
	_, stranger := newSRTPPair(t, "AES_CM_128_HMAC_SHA1_80")
	l, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(2 * 16000), SRTP: keys})
	r := NewReceiver(pair, l, ports)
	defer r.Close()
	forger, _ := rtcpPeer(t)
	genuine, _ := rtcpPeer(t)
	r.Expect(genuine.LocalAddr().(*net.UDPAddr).AddrPort(), netip.MustParseAddr("127.0.0.1"), time.Minute)
	pkts := pcmuPackets(t, tone(440, 8000, 1600), 5)
	for _, p := range stranger.protect(t, pkts[:3]) {
		forger.WriteToUDPAddrPort(p, r.LocalAddr())
	}
	time.Sleep(50 * time.Millisecond)
	for _, p := range peer.protect(t, pkts[3:]) {
		genuine.WriteToUDPAddrPort(p, r.LocalAddr())
	}
	for start := time.Now(); r.Packets() < int64(len(pkts)-3) && time.Since(start) < 3*time.Second; {
		time.Sleep(5 * time.Millisecond)
	}
	if src, ok := r.Source(); !ok || src != genuine.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("latched on %v, want the genuine peer", src)
	}
	r.Close()
	if st := r.Stats(); st.Unauthenticated != 3 || r.Packets() != int64(len(pkts)-3) {
		t.Errorf("stats %+v, %d packets taken", st, r.Packets())
	}
}
