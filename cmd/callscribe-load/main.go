// Command callscribe-load generates load on loopback and measures it.
//
//	callscribe-load rtp [-legs N] [-seconds S]
//
// opens N call legs (RTP socket, symmetric latching, reorder, G.711 decode,
// resampling to 16 kHz, ring buffer) and streams G.711 into every one in
// real time from a child process, then reports the receive side's CPU per
// 1,000 legs. Only 127.0.0.1 is used.
//
//	callscribe-load sip [-sip 127.0.0.1:5060] [-url http://127.0.0.1:8080] [-redis ADDR] [-calls N] [-rounds R]
//
// places N concurrent SIP calls (R each, one after the other) speaking the
// test model's recordings in G.711 to a running gateway and reports the word
// error rate of the finals on Redis against the reference texts, speech end
// to the last final, and the gateway's CPU per call in progress.
//
//	callscribe-load webrtc [-url http://127.0.0.1:8080] [-redis ADDR] [-sessions N] [-repeat R]
//
// publishes Opus speech from N WHIP sessions to a running gateway and
// reports how long after each utterance's last word its final reached Redis,
// and the gateway's CPU per session.
//
//	callscribe-load twilio [-url http://127.0.0.1:8080] [-redis ADDR] [-streams N] [-both] [-token T] [-sip ADDR]
//
// opens N concurrent Twilio Media Streams (one track, or both) speaking the
// test model's recordings in real time and reports the word error rate,
// word to partial and final on Redis, and the gateway's CPU per leg; with
// -sip, then N SIP calls of the same recordings, for an RTP leg's CPU.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/media"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: callscribe-load rtp [-legs N] [-seconds S] | sip [-sip ADDR] [-url URL] [-redis ADDR] [-calls N] | webrtc [-url URL] [-redis ADDR] [-sessions N] | twilio [-url URL] [-redis ADDR] [-streams N] [-sip ADDR] | pcap -in WAV -out PCAP")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "rtp":
		err = rtpLoad(os.Args[2:], os.Stdout)
	case "webrtc":
		err = webrtcLoad(os.Args[2:], os.Stdout)
	case "sip":
		err = sipLoad(os.Args[2:], os.Stdout)
	case "audiohook":
		err = audiohookLoad(os.Args[2:], os.Stdout)
	case "twilio":
		err = twilioLoad(os.Args[2:], os.Stdout)
	case "twilio-play": // one WAV through the Twilio door (scripts/demo/run --door twilio)
		err = twilioPlay(os.Args[2:], os.Stdout)
	case "rtp-send": // the child: sends to the ports read from stdin
		err = rtpSend(os.Args[2:], os.Stdin)
	case "pcap":
		err = pcapMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "callscribe-load: %v\n", err)
		os.Exit(1)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func raiseFileLimit(n uint64) {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < n {
		rl.Cur = min(n, rl.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func rtpLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rtp", flag.ContinueOnError)
	legs := fs.Int("legs", 1000, "concurrent legs")
	seconds := fs.Int("seconds", 10, "seconds of streaming measured")
	workers := fs.Int("poll", 2, "epoll workers reading the sockets; 0: one goroutine per leg")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the measured window to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var poller *media.Poller
	if *workers > 0 {
		var err error
		if poller, err = media.NewPoller(*workers); err != nil {
			return err
		}
		defer poller.Close()
	}
	raiseFileLimit(uint64(*legs)*2 + 256)
	ports, err := media.NewPorts(20000, 20000+2*(*legs)+1000)
	if err != nil {
		return err
	}
	rcvs := make([]*media.Receiver, *legs)
	sinks := make([]countSink, *legs)
	for i := range rcvs {
		conn, err := ports.Listen("127.0.0.1")
		if err != nil {
			return fmt.Errorf("leg %d: %w", i, err)
		}
		leg, err := media.NewLeg(media.LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: 101, Sink: &sinks[i]})
		if err != nil {
			return err
		}
		if poller == nil {
			rcvs[i] = media.NewReceiver(media.Pair{RTP: conn}, leg, ports)
		} else if rcvs[i], err = poller.Add(media.Pair{RTP: conn}, leg, ports); err != nil {
			return err
		}
	}
	defer func() {
		for _, r := range rcvs {
			r.Close()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "rtp-send", "-seconds", strconv.Itoa(*seconds+1))
	child.Stderr = os.Stderr
	in, err := child.StdinPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	bw := bufio.NewWriter(in)
	for _, r := range rcvs {
		fmt.Fprintln(bw, r.LocalAddr())
	}
	bw.Flush()
	in.Close()

	time.Sleep(time.Second) // let the stream settle
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	packets := func() (n int64) {
		for _, r := range rcvs {
			n += r.Packets()
		}
		return n
	}
	p0, c0, t0 := packets(), cpuTime(), time.Now()
	time.Sleep(time.Duration(*seconds) * time.Second)
	cpu, wall, got := cpuTime()-c0, time.Since(t0), packets()-p0
	if *profile != "" {
		pprof.StopCPUProfile()
	}
	if err := child.Wait(); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	for _, r := range rcvs {
		r.Close()
	}
	var st media.LegStats
	for _, r := range rcvs {
		st.Add(r.Leg().Stats())
	}
	share := cpu.Seconds() / wall.Seconds()
	// Legs actually streamed in the window: 50 packets a second each. The
	// sender can fall short of -legs on a small machine.
	streamed := float64(got) / 50 / wall.Seconds()
	mode := "one goroutine per leg"
	if poller != nil {
		mode = fmt.Sprintf("%d epoll workers", *workers)
	}
	fmt.Fprintf(w, "%s: legs %d, %.1f s measured, packets %d (lost %d, late %d, malformed %d)\n",
		mode, *legs, wall.Seconds(), st.Packets, st.Lost, st.Late, st.Malformed)
	fmt.Fprintf(w, "receive side CPU: %.1f%% of a core for %.0f legs streamed (of %d) = %.1f%% per 1,000 legs -> %.0f legs per core\n",
		100*share, streamed, *legs, 100*share*1000/streamed, streamed/share)
	return nil
}

// countSink takes a leg's audio as the recognizer's stream would, on the
// packet goroutine, and only counts it: the harness measures the packet
// path, not recognition.
type countSink struct{ samples atomic.Int64 }

func (c *countSink) WriteAudio(_ int64, x []float32) { c.samples.Add(int64(len(x))) }

func rtpSend(args []string, r io.Reader) error {
	fs := flag.NewFlagSet("rtp-send", flag.ContinueOnError)
	seconds := fs.Int("seconds", 10, "seconds to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var targets []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(sc.Text()))
		if err != nil {
			return err
		}
		if !ap.Addr().IsLoopback() {
			return fmt.Errorf("target %v is not a loopback address", ap)
		}
		targets = append(targets, ap)
	}
	raiseFileLimit(256)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetWriteBuffer(8 << 20)
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = g711.EncodeUlawFrame(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	pkts := make([][]byte, len(targets))
	for i := range targets {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: uint32(i + 1)}, Payload: payload}
		pkts[i], _ = p.Marshal()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(time.Duration(*seconds) * time.Second)
	for k := uint32(0); time.Now().Before(end); k++ {
		<-tick.C
		for i, b := range pkts {
			seq, ts := uint16(k), k*160
			b[2], b[3] = byte(seq>>8), byte(seq)
			b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
			conn.WriteToUDPAddrPort(b, targets[i])
		}
	}
	return nil
}

// latencies summarizes a non-empty set of latencies: median, p90, p95, max.
func latencies(lat []time.Duration) string {
	lat = slices.Sorted(slices.Values(lat))
	at := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	return fmt.Sprintf("median %v, p90 %v, p95 %v, max %v", at(0.5), at(0.9), at(0.95), lat[len(lat)-1].Round(time.Millisecond))
}
