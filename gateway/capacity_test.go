package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

// rawResponse sends an INVITE (or, with method OPTIONS, a probe) and
// returns the first final response as text.
func rawRequest(t *testing.T, to, method, callID string) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if method == "INVITE" {
		rawInvite(t, conn, to, callID, "cap1")
	} else {
		local := conn.LocalAddr().String()
		msg := "OPTIONS sip:" + to + " SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKopt" + callID +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:" + to + ">\r\nCall-ID: " + callID +
			"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		addr, _ := net.ResolveUDPAddr("udp", to)
		conn.WriteToUDP([]byte(msg), addr)
	}
	buf := make([]byte, 65535)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%s: no final answer: %v", method, err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, "SIP/2.0 ") && msg[8] != '1' {
			return msg
		}
	}
}

// More calls than a small asr.max_streams: the ones beyond it are refused
// with 503 and Retry-After (SIP and WHIP), counted by reason, and every
// accepted call gets its finals and call.end.
func TestCapacityRefusesBeyondMaxStreams(t *testing.T) {
	rd, pub, calls, srv := startGatewayWith(t, CallsOptions{MaxStreams: 2})
	_, whipURL := startWHIP(t, calls)
	a := asrtest.WAV(t, "8k.wav")
	speech := siptest.PCMU(a.Samples)
	placed := siptest.PlaceCalls(4, srv.Addrs()[0].String(), speech, 0)
	// While two calls hold both streams: a WHIP offer, an INVITE and OPTIONS
	// hear that the recognizer is full.
	for start := time.Now(); calls.Streams() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the calls did not start")
		}
	}
	res, err := http.Post(whipURL+"/whip", "application/sdp", strings.NewReader(webrtctest.NewClient(t).Offer(t)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Errorf("WHIP offer at capacity: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	to := srv.Addrs()[0].String()
	if msg := rawRequest(t, to, "INVITE", "over-capacity@test"); !strings.HasPrefix(msg, "SIP/2.0 503") || !strings.Contains(msg, "Retry-After:") {
		t.Errorf("INVITE at capacity:\n%s", msg)
	}
	if msg := rawRequest(t, to, "OPTIONS", "probe-full"); !strings.HasPrefix(msg, "SIP/2.0 503") {
		t.Errorf("OPTIONS at capacity:\n%s", msg)
	}
	if !calls.Saturated() {
		t.Error("not saturated with every stream taken")
	}
	codes, err := placed.Wait()
	if err != nil {
		t.Error(err)
	}
	answered := 0
	for _, c := range codes {
		if c == 200 {
			answered++
		} else if c != 503 {
			t.Errorf("answers %v", codes)
		}
	}
	if answered != 2 {
		t.Fatalf("answers %v, want two 200 and two 503", codes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	st := calls.Stats()
	if st.Rejected["sip/capacity"] != 3 || st.Rejected["webrtc/capacity"] != 1 {
		t.Errorf("rejected %v", st.Rejected)
	}
	want := asr.FinalText(reference(t, newBatcher(t), "PCMU", speech))
	for k, evs := range transcripttest.CallStreams(t, rd.Addr) {
		var finals []string
		for _, e := range evs {
			if e["type"] == transcript.Final {
				finals = append(finals, e["text"].(string))
			}
		}
		if evs[len(evs)-1]["type"] != transcript.CallEnd || strings.Join(finals, " ") != want {
			t.Errorf("%s: finals %q, want %q; last %v", k, finals, want, evs[len(evs)-1])
		}
	}
	if calls.Saturated() || calls.Streams() != 0 {
		t.Errorf("after the calls: saturated %v, %d streams", calls.Saturated(), calls.Streams())
	}
}

// The recognizer slows down mid-run (a neighbour takes the CPU): its lag
// rises, new calls are refused and OPTIONS says 503, the calls in progress
// still get every final (the same as without the slowdown), and once it is
// over the gateway takes calls again.
func TestSlowRecognizerRefusesThenRecovers(t *testing.T) {
	var delay atomic.Int64
	b := delayedBatcher(t, asr.BatcherOptions{Endpoint: asr.DefaultEndpointConfig()}, &delay)
	rd, pub, calls, srv := testGateway(t, b, CallsOptions{MaxStreams: 10, MaxLag: 300 * time.Millisecond},
		sip.Config{UDP: "127.0.0.1:0", RTPPorts: media.PortRange{Lo: 37000, Hi: 37999}})
	to := srv.Addrs()[0].String()
	a := asrtest.WAV(t, "8k.wav")
	speech := siptest.PCMU(append(append([]float32{}, a.Samples...), a.Samples...)) // about 12 s
	before := siptest.PlaceCalls(2, to, speech, 0)
	for start := time.Now(); calls.Streams() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the calls did not start")
		}
	}
	time.Sleep(time.Second)
	delay.Store(int64(time.Second)) // every step now takes a second: 3× slower than real time
	for start := time.Now(); !calls.Saturated(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("lag %v and not saturated", b.Lag())
		}
	}
	if msg := rawRequest(t, to, "INVITE", "while-slow@test"); !strings.HasPrefix(msg, "SIP/2.0 503") {
		t.Errorf("INVITE while the recognizer lags %v:\n%s", b.Lag(), msg)
	}
	if msg := rawRequest(t, to, "OPTIONS", "probe-slow"); !strings.HasPrefix(msg, "SIP/2.0 503") {
		t.Errorf("OPTIONS while the recognizer lags:\n%s", msg)
	}
	if r := calls.Full("sip"); r == nil || r.Reason != ingest.ErrCapacity.Reason {
		t.Errorf("full: %v", r)
	}
	delay.Store(0)
	for start := time.Now(); calls.Saturated(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("still saturated after the slowdown: lag %v", b.Lag())
		}
	}
	if msg := rawRequest(t, to, "OPTIONS", "probe-after"); !strings.HasPrefix(msg, "SIP/2.0 200") {
		t.Errorf("OPTIONS after the slowdown:\n%s", msg)
	}
	if codes, err := before.Wait(); err != nil || codes[0] != 200 || codes[1] != 200 {
		t.Errorf("the calls before the slowdown: %v %v", codes, err)
	}
	ph := siptest.NewPhone(t)
	if talked, err := ph.Call(to, siptest.PCMU(a.Samples)); err != nil || talked.Code != 200 {
		t.Errorf("a call after the slowdown: %d %v", talked.Code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	rb := newBatcher(t)
	want := asr.FinalText(reference(t, rb, "PCMU", speech))
	wantAfter := asr.FinalText(reference(t, rb, "PCMU", siptest.PCMU(a.Samples)))
	matched := map[string]int{}
	for k, evs := range transcripttest.CallStreams(t, rd.Addr) {
		var finals []string
		for _, e := range evs {
			if e["type"] == transcript.Final {
				finals = append(finals, e["text"].(string))
			}
		}
		switch got := strings.Join(finals, " "); got {
		case want:
			matched["through"]++
		case wantAfter:
			matched["after"]++
		default:
			t.Errorf("%s: finals %q; without a slowdown %q", k, got, want)
		}
	}
	if matched["through"] != 2 || matched["after"] != 1 {
		t.Errorf("calls matching what transcribe gives: %v", matched)
	}
	if st := calls.Stats(); st.Rejected["sip/capacity"] < 1 || st.DroppedMs != 0 || st.Abandoned != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A burst of WHIP offers against webrtc.max_sessions: the slot is reserved
// before ICE gathering, so no more sessions than the limit are created.
func TestWHIPBurstHoldsTheLimit(t *testing.T) {
	_, _, calls, _ := startGatewayWith(t, CallsOptions{MaxCalls: map[string]int{"webrtc": 10}})
	whip, whipURL := startWHIP(t, calls)
	offers := make([]string, 40)
	for i := range offers {
		offers[i] = webrtctest.NewClient(t).Offer(t)
	}
	var created, refused atomic.Int32
	var wg sync.WaitGroup
	for _, o := range offers {
		wg.Go(func() {
			res, err := http.Post(whipURL+"/whip", "application/sdp", strings.NewReader(o))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusServiceUnavailable:
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 10 || refused.Load() != 30 || whip.Active() > 10 {
		t.Errorf("40 offers at once, limit 10: %d created, %d refused, %d sessions", created.Load(), refused.Load(), whip.Active())
	}
}
