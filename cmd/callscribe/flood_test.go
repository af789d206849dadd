package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// rssMB is a process's resident memory.
func rssMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// The gateway process under floods while a call is in progress: 20,000
// INVITEs from a stranger in 10 s and 2,000 HTTP connections that never
// finish their request. Its memory growth and goroutines stay bounded
// (logged), the call's transcript arrives, and a new call is answered at
// once after.
func TestServeUnderFloods(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "sip:\n  invite_rate: 50\n  invite_burst: 50\n  max_unacked_per_source: 10\n  ack_timeout: 2s\n"+
		"http:\n  read_timeout: 2s\n  max_connections: 500\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	pid := g.cmd.Process.Pid
	base := rssMB(pid)
	a := testWAV(t, "8k.wav")
	talked := callAsync(t, g.sip, append(append([]float32{}, a.Samples...), make([]float32, 8000*6)...))

	evil, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	to, _ := net.ResolveUDPAddr("udp", g.sip)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	peakRSS, peakG := base, 0
	sample := func() {
		peakRSS = max(peakRSS, rssMB(pid))
		v := strings.Fields(metric(metricsText(t, g.http), "go_goroutines"))
		if n, err := strconv.Atoi(v[len(v)-1]); err == nil {
			peakG = max(peakG, n)
		}
	}
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
	start := time.Now()
	for i := range 20000 {
		id := fmt.Sprint("flood-", i)
		msg := "INVITE sip:svc@" + g.sip + " SIP/2.0\r\nVia: SIP/2.0/UDP " + evil.LocalAddr().String() + ";branch=z9hG4bK" + id +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.2>;tag=" + id + "\r\nTo: <sip:svc@" + g.sip + ">\r\nCall-ID: " + id +
			"\r\nCSeq: 1 INVITE\r\nContact: <sip:x@" + evil.LocalAddr().String() + ">\r\nContent-Type: application/sdp\r\n" +
			"Content-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
		evil.WriteToUDP([]byte(msg), to)
		if i%10 == 0 && len(held) < 2000 { // a connection that sends half a request and waits
			if c, err := net.Dial("tcp", g.http); err == nil {
				fmt.Fprint(c, "POST /whip HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nv=0")
				held = append(held, c)
			}
		}
		if i%1000 == 0 {
			sample()
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 10 * time.Second / 20000)))
	}
	sample()
	t.Logf("floods: RSS %.0f MB before, %.0f MB at most; goroutines at most %d", base, peakRSS, peakG)
	// Unbounded would be state kept per INVITE or per connection (20,000
	// and 2,000 of them). A loaded machine keeps more in flight: under the
	// race detector about 270 MB more alone, and once a peak of 1,091 MB
	// (from about 420) with 3,464 goroutines beside a large download.
	if peakRSS-base > 768 || peakG > 20000 {
		t.Errorf("unbounded: RSS %.0f MB, %d goroutines", peakRSS, peakG)
	}
	// A caller is answered at once after the floods.
	next, err := siptest.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	t0 := time.Now()
	if res, err := next.Call(g.sip, siptest.PCMU(make([]float32, 1600))); err != nil || res.Code != 200 || time.Since(t0) > 3*time.Second {
		t.Errorf("a call after the floods: %d %v in %v", res.Code, err, time.Since(t0))
	}
	answeredAndHeard(t, rd.Addr, talked, "8k.wav", "the call during the floods")
}
