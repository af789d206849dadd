//go:build linux

package media

import (
	"net"
	"testing"
	"time"
)

func TestPollerFeedsLegsAndLatches(t *testing.T) {
	p, err := NewPoller(2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ports, _ := NewPorts(32000, 32100)
	var rcvs []*Receiver
	for range 3 {
		conn, err := ports.Listen("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		l := newTestLeg(t, nil)
		r, err := p.Add(Pair{RTP: conn}, l, ports)
		if err != nil {
			t.Fatal(err)
		}
		rcvs = append(rcvs, r)
	}
	src, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	other, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer src.Close()
	defer other.Close()
	pkts := pcmuPackets(t, tone(440, 8000, 1600), 1)
	for _, b := range pkts {
		for _, r := range rcvs {
			src.WriteToUDPAddrPort(b, r.LocalAddr())
			other.WriteToUDPAddrPort(b, r.LocalAddr()) // not the latched source
		}
	}
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(5 * time.Millisecond) {
		done := true
		for _, r := range rcvs {
			if r.Ignored() != int64(len(pkts)) {
				done = false
			}
		}
		if done {
			break
		}
	}
	for i, r := range rcvs {
		if r.Ignored() != int64(len(pkts)) || ringOf(r.Leg()).Len() < 3000 {
			t.Errorf("leg %d: ignored %d, %d samples", i, r.Ignored(), ringOf(r.Leg()).Len())
		}
		if s, ok := r.Source(); !ok || s.Port() != uint16(src.LocalAddr().(*net.UDPAddr).Port) {
			t.Errorf("leg %d latched on %v", i, s)
		}
	}
	for _, r := range rcvs {
		r.Close()
		r.Close()
	}
	if ports.InUse() != 0 {
		t.Errorf("%d ports still in use", ports.InUse())
	}
}

// A flooded port is read at most pollBudget datagrams per wake-up, so the
// other ports of its worker are served in between.
func TestPollerBudgetPerSocket(t *testing.T) {
	p, err := NewPoller(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ports, _ := NewPorts(32200, 32300)
	conn, err := ports.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(1 << 20)
	// Not added to the poller: drain is called by hand.
	raw, _ := conn.SyscallConn()
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	r := newReceiver(Pair{RTP: conn}, newTestLeg(t, nil), ports)
	r.fd = fd
	defer conn.Close()
	src, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer src.Close()
	pkts := pcmuPackets(t, tone(440, 8000, 4*8000), 1)
	for _, b := range pkts[:5*pollBudget] {
		src.WriteToUDPAddrPort(b, r.LocalAddr())
	}
	time.Sleep(50 * time.Millisecond) // on the socket
	buf := make([]byte, 1500)
	if n := r.drain(r.fd, false, buf, time.Now().UnixNano()); n != pollBudget {
		t.Fatalf("one wake-up read %d datagrams, want %d", n, pollBudget)
	}
	total := pollBudget
	for n := r.drain(r.fd, false, buf, 0); n > 0; n = r.drain(r.fd, false, buf, 0) {
		total += n
	}
	if total != 5*pollBudget || r.Packets() != int64(total) {
		t.Errorf("read %d, accepted %d, sent %d", total, r.Packets(), 5*pollBudget)
	}
}

// panicSink fails on every write, as a bug in the audio path would.
type panicSink struct{}

func (panicSink) WriteAudio(int64, []float32) { panic("broken sink") }

// A packet whose handling panics is dropped and counted; the reader goes on.
func TestReceiverContainsPanics(t *testing.T) {
	ports, _ := NewPorts(32400, 32500)
	conn, err := ports.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: panicSink{}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReceiver(Pair{RTP: conn}, l, ports)
	defer r.Close()
	src, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer src.Close()
	for _, b := range pcmuPackets(t, tone(440, 8000, 1600), 1) {
		src.WriteToUDPAddrPort(b, r.LocalAddr())
	}
	for start := time.Now(); r.Panics() < 10 && time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	if r.Panics() != 10 {
		t.Errorf("%d panics contained, want one per packet (10)", r.Panics())
	}
}
