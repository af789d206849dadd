//go:build linux

package media

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// receiveBench is a receiver on a loopback socket, not started, and a
// source that queues packets on it; the benchmarks and the allocation
// test read them by hand. The
// packets' payload type is not the leg's, so what is measured is the
// read and the receiver's part, not decoding.
type receiveBench struct {
	r    *Receiver
	src  *net.UDPConn
	pkts [][]byte
}

func newReceiveBench(b testing.TB) *receiveBench {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadBuffer(1 << 20)
	b.Cleanup(func() { conn.Close() })
	r := newReceiver(Pair{RTP: conn}, newTestLeg(b, nil), nil)
	raw, _ := conn.SyscallConn()
	raw.Control(func(f uintptr) { r.fd = int(f) })
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	rb := &receiveBench{r: r, src: src}
	for i := range pollBudget {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), SSRC: 1},
			Payload: make([]byte, 160)}
		buf, _ := p.Marshal()
		rb.pkts = append(rb.pkts, buf)
	}
	return rb
}

// queue puts n packets on the receiver's socket.
func (rb *receiveBench) queue(n int) {
	for _, p := range rb.pkts[:n] {
		rb.src.WriteToUDPAddrPort(p, rb.r.LocalAddr())
	}
}

// queueOffClock puts pollBudget packets on the receiver's socket, off
// the benchmark's clock.
func (rb *receiveBench) queueOffClock(b *testing.B) {
	b.StopTimer()
	rb.queue(pollBudget)
	b.StartTimer()
}

// Reading a datagram with its arrival stamp allocates nothing, by either
// way of reading a leg's socket.
func TestReceivePathAllocatesNothing(t *testing.T) {
	rb := newReceiveBench(t)
	buf, oob := make([]byte, 1500), make([]byte, oobSize)
	if n := testing.AllocsPerRun(200, func() {
		rb.queue(1)
		if err := rb.r.readRTP(buf, oob); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Receiver.readRTP: %.2f allocations per datagram", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		rb.queue(1)
		for rb.r.drain(rb.r.fd, false, buf, 0) == 0 { // on its way through loopback
		}
	}); n != 0 {
		t.Errorf("Receiver.drain: %.2f allocations per datagram", n)
	}
	if rb.r.Packets() != 2*201 {
		t.Errorf("%d packets accepted, want %d", rb.r.Packets(), 2*201)
	}
}

// One datagram read by a receiver's own goroutine and handed on.
func BenchmarkReceiverReadRTP(b *testing.B) {
	rb := newReceiveBench(b)
	buf, oob := make([]byte, 1500), make([]byte, oobSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%pollBudget == 0 {
			rb.queueOffClock(b)
		}
		if err := rb.r.readRTP(buf, oob); err != nil {
			b.Fatal(err)
		}
	}
}

// A poller's wake-up on one socket: pollBudget datagrams read and handed
// on; reported per datagram.
func BenchmarkPollerDrainRTP(b *testing.B) {
	rb := newReceiveBench(b)
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		rb.queueOffClock(b)
		if n := rb.r.drain(rb.r.fd, false, buf, time.Now().UnixNano()); n != pollBudget {
			b.Fatalf("read %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pollBudget), "ns/datagram")
}
