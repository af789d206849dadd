//go:build linux

package media

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stallSink logs blocks as blockLog does; its writer, the receiver's
// packet goroutine, stops once at block stallAt until release is closed:
// a process starved of CPU, its packets queuing on the socket meanwhile.
type stallSink struct {
	mu      sync.Mutex
	log     blockLog
	stallAt int // 0: never
	stalled chan struct{}
	release chan struct{}
}

func newStallSink(stallAt int) *stallSink {
	return &stallSink{stallAt: stallAt, stalled: make(chan struct{}), release: make(chan struct{})}
}

func (s *stallSink) WriteAudio(at int64, x []float32) {
	s.mu.Lock()
	s.log.WriteAudio(at, x)
	n := len(s.log.blocks)
	s.mu.Unlock()
	if n == s.stallAt {
		close(s.stalled)
		<-s.release
	}
}

func (s *stallSink) blocks() blockLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return blockLog{blocks: append([]logged(nil), s.log.blocks...)}
}

// receiverKinds are the two ways a leg's socket is read.
var receiverKinds = []struct {
	name  string
	start func(t *testing.T, conn *net.UDPConn, l *Leg) *Receiver
}{
	{"goroutine", func(t *testing.T, conn *net.UDPConn, l *Leg) *Receiver { return NewReceiver(Pair{RTP: conn}, l, nil) }},
	{"poller", func(t *testing.T, conn *net.UDPConn, l *Leg) *Receiver {
		p, err := NewPoller(1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		r, err := p.Add(Pair{RTP: conn}, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}},
}

// phone sends 20 ms PCMU packets over UDP on its own clock, one every
// 20 ms of real time, as a phone does; it notes when it sent each.
type phone struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
	pkts [][]byte
	next int
	sent []time.Time
}

// send sends the next n packets, paced from the first one's time on.
func (p *phone) send(n int) {
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		if _, err := p.conn.WriteToUDPAddrPort(p.pkts[p.next], p.to); err != nil {
			p.t.Fatal(err)
		}
		p.sent = append(p.sent, time.Now())
		p.next++
	}
}

// finish polls until r accepted n packets, then closes it: once Close
// returns the last packet was handled and the stats are final.
func finish(t *testing.T, r *Receiver, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.Packets() < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets accepted, want %d", r.Packets(), n)
		}
	}
	r.Close()
}

// A receiver that reads its packets late (the process starved of CPU for
// over a second) still places them by when they arrived: the audio stays
// contiguous on the RTP clock, every sample where the phone spoke it, with
// no jump of the timeline. A phone that really pauses its RTP clock over a
// hold of the same length is still followed by the arrival clock. Both
// with each way of reading the socket, on real UDP and real time.
func TestReceiverArrivalIsTheKernels(t *testing.T) {
	const stall = 1500 * time.Millisecond
	for _, kind := range receiverKinds {
		t.Run(kind.name+"/reader stalled", func(t *testing.T) {
			t.Parallel()
			sink := newStallSink(6)
			r, ph := startPhone(t, kind.start, sink, 60)
			t.Cleanup(func() { // before Close, which waits for the reader
				select {
				case <-sink.release:
				default:
					close(sink.release)
				}
			})
			ph.send(6)
			<-sink.stalled
			// The reader is stuck in block 6; the phone talks on.
			ph.send(54)
			time.Sleep(stall - time.Since(ph.sent[6])) // the starvation lasts
			close(sink.release)
			finish(t, r, 60)
			log := sink.blocks()
			var end int64
			for i, b := range log.blocks {
				if b.at != end {
					t.Fatalf("block %d at %d (%.3f s), the previous one ended at %d (%.3f s)",
						i, b.at, float64(b.at)/16000, end, float64(end)/16000)
				}
				end += int64(b.n)
			}
			// Where the phone's 60 packets end, less what the resampler
			// still holds (its filter's delay, a few samples).
			if end < 60*320-32 || end > 60*320 {
				t.Errorf("timeline ends at %d, want %d", end, 60*320)
			}
			if st := r.Stats(); st.Discontinuities != 0 || st.SilenceSamples != 0 || st.Lost != 0 {
				t.Errorf("%+v", st)
			}
		})
		t.Run(kind.name+"/phone held", func(t *testing.T) {
			t.Parallel()
			sink := newStallSink(0)
			r, ph := startPhone(t, kind.start, sink, 40)
			ph.send(20)
			time.Sleep(stall) // the hold: the phone's RTP clock stands still
			mark := len(sink.blocks().blocks)
			ph.send(20)
			finish(t, r, 40)
			log := sink.blocks()
			// A packet is sent once its audio was spoken: the first one
			// ends its audio at 320, the first after the hold where it
			// starts the time between the two later.
			want := int64(ph.sent[20].Sub(ph.sent[0])/time.Microsecond) * 16 / 1000
			if got := log.firstAudio(t, mark).at; got < want-1600 || got > want+1600 {
				t.Errorf("first audio after the hold at %.3f s, the phone sent it at %.3f s",
					float64(got)/16000, float64(want)/16000)
			}
			if st := r.Stats(); st.Discontinuities != 1 {
				t.Errorf("hold not seen: %+v", st)
			}
		})
	}
}

// startPhone starts a receiver on a loopback socket into a leg writing to
// sink, and a phone that will send it n packets of a tone.
func startPhone(t *testing.T, start func(*testing.T, *net.UDPConn, *Leg) *Receiver, sink Sink, n int) (*Receiver, *phone) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, conn, l)
	t.Cleanup(func() { r.Close() })
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return r, &phone{t: t, conn: src, to: r.LocalAddr(), pkts: pcmuPackets(t, tone(440, 8000, n*160), 1)}
}

// cmsg is one control message as the kernel lays it out: header, data,
// padding to the next one.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := unix.Cmsghdr{Level: level, Type: typ}
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func bytesOf[T any](v *T) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v)) }

func TestKernelArrival(t *testing.T) {
	const at = 1_700_000_123_456_789_012
	ts := unix.NsecToTimespec(at)
	tv := unix.NsecToTimeval(at)
	nsec := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, bytesOf(&ts))
	tos := cmsg(unix.SOL_IP, unix.IP_TOS, []byte{0xb8})
	for _, c := range []struct {
		name string
		oob  []byte
		want int64 // 0: none
	}{
		{"none", nil, 0},
		{"ns", nsec, at},
		{"us", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMP, bytesOf(&tv)), tv.Nano()},
		{"after another", append(append([]byte(nil), tos...), nsec...), at},
		{"unaligned buffer", append([]byte{0}, nsec...)[1:], at},
		{"only another", tos, 0},
		{"truncated", nsec[:len(nsec)-8], 0},
		{"stamp cut short", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, bytesOf(&ts)[:8]), 0},
		{"zero stamp", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, make([]byte, unsafe.Sizeof(ts))), 0},
		{"header only", nsec[:unix.SizeofCmsghdr-1], 0},
	} {
		got, ok := kernelArrival(c.oob)
		if ok != (c.want != 0) || got != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, got, ok, c.want)
		}
	}
}

// The kernel stamps a leg's datagrams: the stamp read with one lies
// between its send and its read, however late the read. (Linux turns
// stamping on with deferred work the first time a socket asks for it;
// until then a datagram is stamped as it is read. So the test waits for
// the stamps to start, then checks three in a row.)
func TestKernelStampsArrivals(t *testing.T) {
	rb := newReceiveBench(t)
	buf, oob := make([]byte, 1500), make([]byte, oobSize)
	// lateRead sends a datagram and reads it 20 ms later: how long after
	// the send it was stamped and read.
	lateRead := func() (stamped, read time.Duration) {
		sent := time.Now().UnixNano()
		rb.queue(1)
		time.Sleep(20 * time.Millisecond) // read late, as a starved reader does
		_, oobn, _, _, err := rb.r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		at, ok := kernelArrival(oob[:oobn])
		if !ok {
			t.Fatalf("no stamp in %d bytes of control messages", oobn)
		}
		return time.Duration(at - sent), time.Duration(time.Now().UnixNano() - sent)
	}
	for deadline := time.Now().Add(3 * time.Second); ; {
		if stamped, _ := lateRead(); stamped < 10*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("datagrams stamped when read, not when they arrived")
		}
	}
	for range 3 {
		if stamped, read := lateRead(); stamped < 0 || stamped > 10*time.Millisecond || read < 20*time.Millisecond {
			t.Errorf("stamped %v after the send, read %v after it", stamped, read)
		}
	}
}
