package gateway

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	pw "github.com/pion/webrtc/v4"
	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/webrtc"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

func newBatcher(t testing.TB) *asr.Batcher { return batcherWith(t, asr.EndpointRules) }

// startGateway wires a real redis-server, a publisher, the model's batcher
// and a SIP server on loopback, all stopped when the test ends.
func startGateway(t *testing.T) (*transcripttest.Redis, *transcript.Publisher, *Calls, *sip.Server) {
	t.Helper()
	return startGatewayWith(t, CallsOptions{})
}

// startGatewayWith does the same with calls configured by o. Unless o says
// otherwise, admission does not look at the recognizer's capacity or lag:
// tests share a loaded machine.
func startGatewayWith(t *testing.T, o CallsOptions) (*transcripttest.Redis, *transcript.Publisher, *Calls, *sip.Server) {
	t.Helper()
	if o.MaxStreams == 0 {
		o.MaxStreams = -1
	}
	if o.MaxLag == 0 {
		o.MaxLag = -1
	}
	return testGateway(t, nil, o, sip.Config{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", RTPPorts: media.PortRange{Lo: 33000, Hi: 33999},
		AgentAORs: []string{"*@agents.example.com"}})
}

// startWHIP serves WHIP for calls on a loopback HTTP server; it returns
// the server and its URL, both closed when the test ends.
func startWHIP(t *testing.T, calls *Calls) (*webrtc.Server, string) {
	t.Helper()
	whip, err := webrtc.NewServer(webrtc.Config{Loopback: true}, calls)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(whip)
	t.Cleanup(hs.Close)
	t.Cleanup(func() { whip.Close() })
	return whip, hs.URL
}

// testGateway wires a real redis-server, a publisher, calls on b (the
// model's batcher when nil) configured by o, and a SIP server with cfg,
// all stopped when the test ends.
func testGateway(t testing.TB, b *asr.Batcher, o CallsOptions, cfg sip.Config) (*transcripttest.Redis, *transcript.Publisher, *Calls, *sip.Server) {
	t.Helper()
	rd := transcripttest.Start(t)
	pub, err := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	if b == nil {
		b = newBatcher(t)
	}
	calls := NewCalls(b, pub, o)
	srv, err := sip.NewServer(cfg, calls)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return rd, pub, calls, srv
}

// delayEngine makes every encoder step take at least its delay, which a
// test may change while it runs.
type delayEngine struct {
	asr.Engine
	delay *atomic.Int64
}

func (e delayEngine) Encode(b *asr.Batch) error {
	time.Sleep(time.Duration(e.delay.Load()))
	return e.Engine.Encode(b)
}

// delayedBatcher is the model's batcher with o, on engines slowed by delay.
func delayedBatcher(t *testing.T, o asr.BatcherOptions, delay *atomic.Int64) *asr.Batcher {
	t.Helper()
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	o.NewEngine = func(i *asr.ModelInfo, eo asr.EngineOptions) (asr.Engine, error) {
		e, err := asr.NewEngine(i, eo)
		return delayEngine{e, delay}, err
	}
	b, err := asr.NewBatcher(info, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// settle waits until every call has ended and its events are on Redis.
func settle(t *testing.T, ctx context.Context, calls *Calls, pub *transcript.Publisher) {
	t.Helper()
	if err := calls.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	calls.Wait()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// reference is what transcribe gives for G.711 bytes at 8 kHz: decoded,
// upsampled as the legs do, recognized as one stream.
func reference(t *testing.T, b *asr.Batcher, codec string, payload []byte) []asr.Result {
	t.Helper()
	c, err := media.LookupCodec(codec)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := c.NewDecoder()
	pcm, _ := d.Decode(nil, payload)
	x, _ := media.ResampleFilter(pcm, 8000, 16000, media.FilterKaldi)
	res, err := asr.DecodeAll(b, [][]float32{x}, 100)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// callEntries reads the one per-call stream on Redis.
func callEntries(t *testing.T, ctx context.Context, addr string) []redis.XMessage {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	keys, _ := rc.Keys(ctx, "stt:call:*").Result()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	msgs, err := rc.XRange(ctx, keys[0], "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestCallToTranscriptOnRedis(t *testing.T) {
	var latMu sync.Mutex
	latencies := map[asr.ResultKind][]time.Duration{}
	rd, pub, calls, srv := startGatewayWith(t, CallsOptions{OnLatency: func(k asr.ResultKind, d time.Duration) {
		latMu.Lock()
		latencies[k] = append(latencies[k], d)
		latMu.Unlock()
	}})

	a := asrtest.WAV(t, "8k.wav")
	speech := siptest.PCMU(a.Samples)
	var wg sync.WaitGroup
	for i := range 3 { // concurrent calls, PCMU and PCMA
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph := siptest.NewPhone(t)
			payload := speech
			if i == 2 {
				ph.PT = 8
				payload = siptest.PCMA(a.Samples)
			}
			ph.Talk(t, srv.Addrs()[0].String(), payload, sipmsg.NewHeader("X-Agent-Id", strconv.Itoa(i)))
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	latMu.Lock()
	for _, kind := range []asr.ResultKind{asr.Partial, asr.Final} {
		ds := latencies[kind]
		if len(ds) == 0 {
			t.Errorf("no %s latency observed", kind)
			continue
		}
		for _, d := range ds {
			if d <= 0 || d > 5*time.Second {
				t.Errorf("%s latency %v", kind, d)
			}
		}
		sorted := append([]time.Duration(nil), ds...)
		slices.Sort(sorted)
		t.Logf("%s latency: %d observations, median %v, max %v", kind, len(ds), sorted[len(sorted)/2], sorted[len(sorted)-1])
	}
	latMu.Unlock()

	// What transcribe gives for the same 8 kHz audio (after G.711).
	want := map[string]string{}
	rb := newBatcher(t)
	for codec, payload := range map[string][]byte{"PCMU": speech, "PCMA": siptest.PCMA(a.Samples)} {
		want[codec] = asr.FinalText(reference(t, rb, codec, payload))
		if want[codec] == "" {
			t.Fatalf("%s: reference transcript is empty", codec)
		}
		t.Logf("transcribe of the %s audio: %q", codec, want[codec])
	}

	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	keys, _ := rc.Keys(ctx, "stt:call:*").Result()
	if len(keys) != 3 {
		t.Fatalf("%d call streams: %v", len(keys), keys)
	}
	for _, k := range keys {
		msgs, _ := rc.XRange(ctx, k, "-", "+").Result()
		var types, finals []string
		last := 0
		for _, m := range msgs {
			seq, _ := strconv.Atoi(m.Values["seq"].(string))
			if seq <= last {
				t.Errorf("%s: seq %d after %d", k, seq, last)
			}
			last = seq
			types = append(types, m.Values["type"].(string))
			if m.Values["type"] == "final" {
				finals = append(finals, m.Values["text"].(string))
			}
		}
		if types[0] != "call.start" || types[len(types)-1] != "call.end" || !contains(types, "partial") {
			t.Errorf("%s: types %v", k, types)
		}
		if msgs[0].Values["hdr:X-Agent-Id"] == nil || msgs[len(msgs)-1].Values["reason"] != "bye" {
			t.Errorf("%s: start %v end %v", k, msgs[0].Values, msgs[len(msgs)-1].Values)
		}
		codec, _ := msgs[0].Values["codec"].(string)
		if got := strings.Join(finals, " "); got != want[codec] {
			t.Errorf("%s (%s): finals %q, transcribe gives %q", k, codec, got, want[codec])
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Redis goes down mid-call for a few seconds and comes back: the call goes
// on, every final arrives in order with call.end, and the spool counters moved.
func TestRedisOutageMidCall(t *testing.T) {
	rd, pub, calls, srv := startGateway(t)
	a := asrtest.WAV(t, "8k.wav")
	gap := make([]float32, 8000*3) // 3 s of silence between the sentences: an endpoint
	x := append(append(append([]float32{}, a.Samples...), gap...), a.Samples...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		siptest.NewPhone(t).Talk(t, srv.Addrs()[0].String(), siptest.PCMU(x))
	}()
	time.Sleep(3 * time.Second)
	rd.Stop()
	time.Sleep(4 * time.Second)
	during := pub.Stats()
	rd.Restart()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	if during.Errors == 0 || during.Connected {
		t.Errorf("spool counters did not move: %+v", during)
	}
	msgs := callEntries(t, ctx, rd.Addr)
	var finals []string
	last := 0
	for _, m := range msgs {
		seq, _ := strconv.Atoi(m.Values["seq"].(string))
		if seq <= last {
			t.Fatalf("seq %d after %d", seq, last)
		}
		last = seq
		if m.Values["type"] == "final" {
			finals = append(finals, m.Values["text"].(string))
		}
	}
	if msgs[0].Values["type"] != "call.start" || msgs[len(msgs)-1].Values["type"] != "call.end" || len(finals) != 2 {
		var types []any
		for _, m := range msgs {
			types = append(types, m.Values["type"])
		}
		t.Fatalf("%d entries %v, finals %q", len(msgs), types, finals)
	}
	// The same finals as the audio decoded without any outage.
	var want []string
	for _, r := range reference(t, newBatcher(t), "PCMU", siptest.PCMU(x)) {
		if r.Kind == asr.Final {
			want = append(want, r.Text)
		}
	}
	if strings.Join(finals, "|") != strings.Join(want, "|") {
		t.Errorf("finals %q, without the outage %q", finals, want)
	}
}

// A browser call lands in the same recognizer and Redis streams as a phone
// call: source webrtc, leg browser, finals equal transcribe's.
func TestBrowserCallToTranscript(t *testing.T) {
	rd, pub, calls, _ := startGateway(t)
	_, whipURL := startWHIP(t, calls)
	a := asrtest.WAV(t, "8k.wav")
	speech := siptest.PCMU(a.Samples)
	c := webrtctest.NewClient(t)
	c.Publish(t, whipURL+"/whip")
	for start := time.Now(); c.PC.ConnectionState() != pw.PeerConnectionStateConnected; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("not connected")
		}
	}
	c.Speak(speech)
	c.Hangup(t, whipURL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	ref := reference(t, newBatcher(t), "PCMU", speech)
	msgs := callEntries(t, ctx, rd.Addr)
	var finals []string
	for _, m := range msgs {
		if m.Values["type"] == "final" {
			finals = append(finals, m.Values["text"].(string))
			if m.Values["leg"] != "browser" {
				t.Errorf("leg %v", m.Values["leg"])
			}
		}
	}
	if msgs[0].Values["source"] != "webrtc" || msgs[len(msgs)-1].Values["type"] != "call.end" || msgs[len(msgs)-1].Values["reason"] != "bye" {
		t.Errorf("start %v end %v", msgs[0].Values, msgs[len(msgs)-1].Values)
	}
	if got, want := strings.Join(finals, " "), asr.FinalText(ref); got != want {
		t.Errorf("finals %q, transcribe %q", got, want)
	}
}

// A SIPREC recording session with a different speaker on each stream: one
// call on Redis, its legs named customer and agent from the metadata, and
// each leg's finals what transcribe gives for that speaker's audio alone.
func TestRecordingSessionTranscribesEachParty(t *testing.T) {
	rd, pub, calls, srv := startGateway(t)
	customer, agent := asrtest.WAV(t, "8k.wav"), asrtest.WAV(t, "0.wav")
	agent8k, _ := media.Resample(agent.Samples, agent.SampleRate, 8000)
	payloads := map[string][]byte{"customer": siptest.PCMU(customer.Samples), "agent": siptest.PCMU(agent8k)}
	var tcp string
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			tcp = a.String()
		}
	}
	meta := siptest.RecordingMetadata("sip:+15551234@trunk.example.com", "sip:agent7@agents.example.com")
	talked, err := siptest.NewPhone(t).Record(tcp, meta, payloads["customer"], payloads["agent"])
	if err != nil || talked.Code != 200 {
		t.Fatalf("recording session: %d %v", talked.Code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	msgs := callEntries(t, ctx, rd.Addr)
	start, end := msgs[0].Values, msgs[len(msgs)-1].Values
	if start["type"] != "call.start" || start["legs"] != "customer,agent" || start["recording"] != "siprec" ||
		!strings.Contains(fmt.Sprint(start["participants"]), `"agent":{"aor":"sip:agent7@agents.example.com","name":"Party 2"}`) {
		t.Errorf("call.start %v", start)
	}
	if end["type"] != "call.end" || !strings.Contains(fmt.Sprint(end["stats"]), `"agent":{`) || !strings.Contains(fmt.Sprint(end["stats"]), `"customer":{`) {
		t.Errorf("call.end %v", end)
	}
	finals := map[string][]string{}
	for _, m := range msgs {
		if m.Values["type"] == "final" && m.Values["text"] != "" {
			finals[m.Values["leg"].(string)] = append(finals[m.Values["leg"].(string)], m.Values["text"].(string))
		}
	}
	rb := newBatcher(t)
	for leg, payload := range payloads {
		want := asr.FinalText(reference(t, rb, "PCMU", payload))
		if got := strings.Join(finals[leg], " "); got != want || want == "" {
			t.Errorf("%s: finals %q, transcribe of that audio %q", leg, got, want)
		}
	}
}
