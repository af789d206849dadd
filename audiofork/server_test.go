package audiofork

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/media"
)

// admitter records, besides ingesttest's, each call's end reason, its
// offer and its audio's timeline; with admitAll, Full never refuses (so
// that Admit's refusal after the upgrade is seen).
type admitter struct {
	*ingesttest.Admitter[string]
	admitAll atomic.Bool

	mu      sync.Mutex
	offers  []ingest.Offer
	reasons map[string]string
	fields  map[string]map[string]string
	refused []string
	rings   map[string][]*media.Ring
}

func newAdmitter() *admitter {
	a := &admitter{Admitter: ingesttest.New[string](), reasons: map[string]string{}, rings: map[string][]*media.Ring{}, fields: map[string]map[string]string{}}
	return a
}

func (a *admitter) Full(source string) *ingest.Refusal {
	if a.admitAll.Load() {
		return nil
	}
	return a.Admitter.Full(source)
}

func (a *admitter) Refused(source string, r *ingest.Refusal) {
	a.mu.Lock()
	a.refused = append(a.refused, source+"/"+r.Reason)
	a.mu.Unlock()
}

func (a *admitter) Admit(o ingest.Offer) (ingest.Ticket, error) {
	t, err := a.Admitter.Admit(o)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.offers = append(a.offers, o)
	for i := range o.Legs {
		a.rings[o.ID] = append(a.rings[o.ID], t.Sink(i).(*media.Ring))
	}
	a.mu.Unlock()
	return &ticket{Ticket: t, a: a, id: o.ID}, nil
}

func (a *admitter) reason(id string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reasons[id]
}

// waitReason waits until call id has ended and returns why.
func (a *admitter) waitReason(t *testing.T, id string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r := a.reason(id); r != "" {
			return r
		}
	}
	t.Fatalf("call %s never ended", id)
	return ""
}

type ticket struct {
	ingest.Ticket
	a  *admitter
	id string
}

func (t *ticket) Start(fields map[string]string) {
	t.a.mu.Lock()
	t.a.fields[t.id] = fields
	t.a.mu.Unlock()
	t.Ticket.Start(fields)
}

func (t *ticket) End(reason string, stats []media.LegStats) {
	t.a.mu.Lock()
	if t.a.reasons[t.id] == "" {
		t.a.reasons[t.id] = reason
	}
	t.a.mu.Unlock()
	t.Ticket.End(reason, stats)
}

// serve runs a Server on 127.0.0.1 for one test.
func serve(t *testing.T, cfg Config, adm ingest.Admitter, tr Transcripts) (*Server, string) {
	t.Helper()
	s, err := NewServer(cfg, adm, tr)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return s, "ws://" + hs.Listener.Addr().String()
}

// dial connects as a platform would: subprotocol and headers.
func dial(t *testing.T, url string, subprotocol string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, res, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{Subprotocols: []string{subprotocol}, HTTPHeader: hdr})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (%d)", url, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialStatus is the HTTP status a connection that is refused gets.
func dialStatus(t *testing.T, url string, hdr http.Header) (int, string) {
	t.Helper()
	c, res, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil {
		c.CloseNow()
		return 101, ""
	}
	if res == nil {
		t.Fatalf("dial: %v", err)
	}
	return res.StatusCode, res.Header.Get("Retry-After")
}

// tone is n samples of a 440 Hz tone at rate, as L16 little-endian,
// channels interleaved: channel c carries the tone when on[c].
func tone(n, rate int, on ...bool) []byte {
	b := make([]byte, 0, n*2*len(on))
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		for _, o := range on {
			x := v
			if !o {
				x = 0
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(x))
		}
	}
	return b
}

func sendText(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// sendAudio sends b in 20 ms frames of rate and channels.
func sendAudio(t *testing.T, c *websocket.Conn, b []byte, rate, channels int) {
	t.Helper()
	frame := rate / 50 * 2 * channels
	for len(b) > 0 {
		n := min(frame, len(b))
		if err := c.Write(context.Background(), websocket.MessageBinary, b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
}

// closed waits for the server to close c and returns its close code and
// reason, and the text messages it sent before.
func closed(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string, []map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var msgs []map[string]any
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason, msgs
			}
			t.Fatalf("read: %v (no close frame)", err)
		}
		if typ == websocket.MessageText {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("server sent %q", b)
			}
			msgs = append(msgs, m)
		}
	}
}

// leg is call id's leg i's audio so far (16 kHz).
func (a *admitter) leg(id string, i int) []float32 {
	a.mu.Lock()
	r := a.rings[id][i]
	a.mu.Unlock()
	x := make([]float32, r.Len())
	n, _ := r.Read(x)
	return x[:n]
}

func (a *admitter) refusals() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.refused...)
}

func rms(x []float32) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(len(x), 1)))
}

// The fork of a mono call from jambonz listen: the metadata names the
// call, its rate and mix; 1 s of 8 kHz audio becomes 1 s on the leg's
// 16 kHz timeline; a DTMF digit, a pause and a resume reach the call; the
// fork's close ends it (bye).
func TestForkMonoJambonzListen(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{}, adm, nil)
	c := dial(t, url+"/stream", "audio.jambonz.org", nil)
	if c.Subprotocol() != "audio.jambonz.org" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	sendText(t, c, map[string]any{"callSid": "jz-1", "from": "+15551230000", "to": "+15559870000", "direction": "inbound",
		"sampleRate": 8000, "mixType": "mono"})
	sendAudio(t, c, tone(4000, 8000, true), 8000, 1)
	sendText(t, c, map[string]any{"event": "dtmf", "dtmf": "5", "duration": "250"})
	sendText(t, c, map[string]any{"type": "pause"})
	sendText(t, c, map[string]any{"type": "resume"})
	sendAudio(t, c, tone(4000, 8000, true), 8000, 1)
	time.Sleep(100 * time.Millisecond)
	c.Close(websocket.StatusNormalClosure, "")
	if r := adm.waitReason(t, "jz-1"); r != "bye" {
		t.Errorf("reason %q", r)
	}
	adm.mu.Lock()
	o, fields := adm.offers[0], adm.fields["jz-1"]
	adm.mu.Unlock()
	if o.Source != "stream" || len(o.Legs) != 1 || o.Legs[0] != "caller" || !o.Peer.IsLoopback() {
		t.Errorf("offer %+v", o)
	}
	if fields["codec"] != "L16/8000" || fields["mix"] != "mono" || fields["from"] != "+15551230000" || fields["subprotocol"] != "audio.jambonz.org" {
		t.Errorf("call.start fields %v", fields)
	}
	// 8000 samples at 8 kHz: 16000 at 16 kHz, less the resampler's lag.
	if x := adm.leg("jz-1", 0); len(x) < 15900 || len(x) > 16000 || rms(x) < 0.1 {
		t.Errorf("leg: %d samples, rms %.3f", len(x), rms(x))
	}
	if d := adm.Digits(); d != "5" {
		t.Errorf("digits %q", d)
	}
	if p := adm.Pauses(); len(p) != 2 || !p[0] || p[1] {
		t.Errorf("pauses %v", p)
	}
}

// A stereo fork from mod_audio_fork at 16 kHz, named legs: the caller's
// channel carries a tone, the callee's silence; each lands on its own leg,
// whole. The fork's stop message ends the call and the server closes
// (1000).
func TestForkStereoAudioFork(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{}, adm, nil)
	c := dial(t, url+"/stream", "audio.drachtio.org", nil)
	sendText(t, c, map[string]any{"uuid": "fs-2", "sampleRate": "16k", "mixType": "stereo", "legs": "customer,agent"})
	sendAudio(t, c, tone(16000, 16000, true, false), 16000, 2)
	sendText(t, c, map[string]any{"type": "stop"})
	if code, _, _ := closed(t, c); code != websocket.StatusNormalClosure {
		t.Errorf("close %d", code)
	}
	if r := adm.waitReason(t, "fs-2"); r != "bye" {
		t.Errorf("reason %q", r)
	}
	adm.mu.Lock()
	o := adm.offers[0]
	adm.mu.Unlock()
	if len(o.Legs) != 2 || o.Legs[0] != "customer" || o.Legs[1] != "agent" {
		t.Errorf("legs %v", o.Legs)
	}
	customer, agent := adm.leg("fs-2", 0), adm.leg("fs-2", 1)
	if len(customer) != 16000 || len(agent) != 16000 || rms(customer) < 0.1 || rms(agent) != 0 {
		t.Errorf("legs: %d and %d samples, rms %.3f and %.3f", len(customer), len(agent), rms(customer), rms(agent))
	}
}

// mod_audio_fork started without metadata sends audio first: the query
// says the rate and mix. Vonage's first message is its connected event
// with the content type, and its DTMF its own event.
func TestForkWithoutMetadataAndVonage(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{}, adm, nil)
	c := dial(t, url+"/stream?call_id=q-3&rate=16000&mix=stereo", "audio.drachtio.org", nil)
	sendAudio(t, c, tone(3200, 16000, false, true), 16000, 2)
	c.Close(websocket.StatusNormalClosure, "")
	adm.waitReason(t, "q-3")
	if a, b := adm.leg("q-3", 0), adm.leg("q-3", 1); len(a) != 3200 || rms(a) != 0 || rms(b) < 0.1 {
		t.Errorf("legs: %d samples, rms %.3f and %.3f", len(a), rms(a), rms(b))
	}

	v := dial(t, url+"/stream", "", nil)
	sendText(t, v, map[string]any{"event": "websocket:connected", "content-type": "audio/l16;rate=16000", "call_id": "vonage-4"})
	sendAudio(t, v, tone(640, 16000, true), 16000, 1)
	sendText(t, v, map[string]any{"event": "websocket:dtmf", "digit": "#", "duration": 260})
	v.Close(websocket.StatusNormalClosure, "")
	adm.waitReason(t, "vonage-4")
	if x := adm.leg("vonage-4", 0); len(x) != 640 {
		t.Errorf("vonage leg: %d samples", len(x))
	}
	if d := adm.Digits(); d != "#" {
		t.Errorf("digits %q", d)
	}
}

// Every malformed message gets its answer: a first frame that is not a
// JSON object, a rate or a mix no fork sends, legs that do not fit are
// refused (1007, counted bad_request) before admission; after it, a
// control frame that cannot be read is answered with an error message and
// the call goes on, a binary frame of half a sample ends the call (1007,
// reason error), a frame over max_message_bytes too (1009).
func TestForkMalformed(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{MessageLimit: ingest.MessageLimit{MaxMessageBytes: 4096}}, adm, nil)
	for _, first := range []string{`not json`, `[1,2]`, `{"sampleRate":11025}`, `{"mixType":"quad"}`,
		`{"mixType":"stereo","legs":["a"]}`, `{"callSid":"has space"}`, `{"sampleRate":{"x":1}}`} {
		c := dial(t, url+"/stream", "audio.drachtio.org", nil)
		c.Write(context.Background(), websocket.MessageText, []byte(first))
		code, reason, msgs := closed(t, c)
		if code != websocket.StatusInvalidFramePayloadData || reason == "" || len(msgs) != 1 || msgs[0]["type"] != "error" {
			t.Errorf("first frame %s: close %d %q, messages %v", first, code, reason, msgs)
		}
	}
	if n := len(adm.refusals()); n != 7 {
		t.Errorf("%d refusals counted: %v", n, adm.refusals())
	}

	c := dial(t, url+"/stream", "audio.drachtio.org", nil)
	sendText(t, c, map[string]any{"callSid": "m-1"})
	c.Write(context.Background(), websocket.MessageText, []byte(`{"event":"dtmf","dtmf":"55"}`))
	c.Write(context.Background(), websocket.MessageText, []byte(`garbage`))
	sendAudio(t, c, tone(160, 8000, true), 8000, 1)
	c.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
	code, _, msgs := closed(t, c)
	if code != websocket.StatusInvalidFramePayloadData || len(msgs) != 2 {
		t.Errorf("close %d, messages %v", code, msgs)
	}
	if r := adm.waitReason(t, "m-1"); r != "error" {
		t.Errorf("reason %q", r)
	}

	c = dial(t, url+"/stream", "audio.drachtio.org", nil)
	sendText(t, c, map[string]any{"callSid": "m-2"})
	c.Write(context.Background(), websocket.MessageBinary, make([]byte, 8192))
	if code, _, _ := closed(t, c); code != websocket.StatusMessageTooBig {
		t.Errorf("close %d for a frame over max_message_bytes", code)
	}
	if r := adm.waitReason(t, "m-2"); r != "error" {
		t.Errorf("reason %q", r)
	}
}

// Refusals in the protocol's words: no token 401, over the address's
// connection rate 429, a gateway that is full 503 with Retry-After before
// the upgrade; a call admission refuses after its metadata is closed 1013
// (try again later).
func TestForkRefusals(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{Token: "s3cret", ConnLimits: ingest.ConnLimits{ConnectRate: 0.001, ConnectBurst: 2}}, adm, nil)
	if st, _ := dialStatus(t, url+"/stream", nil); st != http.StatusUnauthorized {
		t.Errorf("no token: %d", st)
	}
	basic := http.Header{"Authorization": {"Basic " + "dXNlcjpzM2NyZXQ="}} // user:s3cret, jambonz's wsAuth
	bearer := http.Header{"Authorization": {"Bearer s3cret"}}
	adm.SetMax(1)
	adm.admitAll.Store(true)
	c := dial(t, url+"/stream", "", basic)
	sendText(t, c, map[string]any{"callSid": "r-1"})
	<-adm.Started
	c2 := dial(t, url+"/stream", "", bearer)
	sendText(t, c2, map[string]any{"callSid": "r-2"})
	if code, _, _ := closed(t, c2); code != websocket.StatusTryAgainLater {
		t.Errorf("over the limit after the upgrade: close %d", code)
	}
	adm.admitAll.Store(false)
	if st, _ := dialStatus(t, url+"/stream?token=s3cret", nil); st != http.StatusTooManyRequests {
		t.Errorf("over the connection rate: %d", st)
	}
	_, url2 := serve(t, Config{Token: "s3cret"}, adm, nil)
	if st, retry := dialStatus(t, url2+"/stream", bearer); st != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("full: %d, Retry-After %q", st, retry)
	}
	c.Close(websocket.StatusNormalClosure, "")
	adm.waitReason(t, "r-1")
	want := []string{"stream/unauthorized", "stream/rate", "stream/limit"}
	if got := adm.refusals(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("refusals counted %v, want %v", got, want)
	}
}

// A peer that vanishes mid-call (its TCP connection reset, no close
// frame) ends the call at once (reason error); one that goes silent ends
// at the idle timeout (timeout, 1008); one that never says what it is at
// the start timeout, admitted never; the server's Close ends a call
// (shutdown, 1001).
func TestForkPeerGoneIdleAndShutdown(t *testing.T) {
	adm := newAdmitter()
	s, url := serve(t, Config{ConnLimits: ingest.ConnLimits{IdleTimeout: 300 * time.Millisecond, StartTimeout: 300 * time.Millisecond}}, adm, nil)
	var raw net.Conn
	c, _, err := websocket.Dial(context.Background(), url+"/stream", &websocket.DialOptions{HTTPClient: &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, n, a)
			raw = conn
			return conn, err
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	sendText(t, c, map[string]any{"callSid": "gone-1"})
	sendAudio(t, c, tone(800, 8000, true), 8000, 1)
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close()
	if r := adm.waitReason(t, "gone-1"); r != "error" {
		t.Errorf("vanished peer: reason %q", r)
	}

	idle := dial(t, url+"/stream", "", nil)
	sendText(t, idle, map[string]any{"callSid": "idle-2"})
	if code, _, _ := closed(t, idle); code != websocket.StatusPolicyViolation {
		t.Errorf("idle: close %d", code)
	}
	if r := adm.waitReason(t, "idle-2"); r != "timeout" {
		t.Errorf("idle: reason %q", r)
	}

	mute := dial(t, url+"/stream", "", nil)
	if code, _, _ := closed(t, mute); code != websocket.StatusPolicyViolation {
		t.Errorf("no metadata: close %d", code)
	}

	live := dial(t, url+"/stream", "", nil)
	sendText(t, live, map[string]any{"callSid": "live-3"})
	for range 20 { // until the call is admitted
		if len(adm.StartedCalls()) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	if code, _, _ := closed(t, live); code != websocket.StatusGoingAway {
		t.Errorf("shutdown: close %d", code)
	}
	<-done
	if r := adm.waitReason(t, "live-3"); r != "shutdown" {
		t.Errorf("shutdown: reason %q", r)
	}
	if s.Active() != 0 {
		t.Errorf("%d connections left", s.Active())
	}
}

// jambonz's speech-to-text API, from its documentation: start (LINEAR16,
// raw, 8 kHz, interimResults), binary audio, stop; the server sends each
// result as a transcription message (a partial only because interim
// results were asked for), then closes the socket itself (1000) once the
// call's results have ended.
func TestJambonzSTT(t *testing.T) {
	adm := newAdmitter()
	results := make(chan Result, 8)
	var stopped sync.Once
	tr := func(id string) (<-chan Result, func()) {
		return results, func() { stopped.Do(func() {}) }
	}
	_, url := serve(t, Config{}, adm, tr)
	c := dial(t, url+"/jambonz", "", nil)
	sendText(t, c, map[string]any{"type": "start", "language": "en-US", "format": "raw", "encoding": "LINEAR16",
		"interimResults": true, "sampleRateHz": 8000, "options": map[string]any{}})
	sendAudio(t, c, tone(8000, 8000, true), 8000, 1)
	sendText(t, c, map[string]any{"type": "stop"})
	<-adm.Started
	adm.mu.Lock()
	id := adm.offers[0].ID
	adm.mu.Unlock()
	if r := adm.waitReason(t, id); r != "bye" {
		t.Errorf("reason %q", r)
	}
	results <- Result{Leg: "caller", Text: "HELLO"}
	results <- Result{Leg: "caller", Final: true, Text: "Hello there.", Confidence: 0.875}
	close(results)
	code, _, msgs := closed(t, c)
	if code != websocket.StatusNormalClosure || len(msgs) != 2 {
		t.Fatalf("close %d, messages %v", code, msgs)
	}
	final := msgs[1]
	alt := final["alternatives"].([]any)[0].(map[string]any)
	if final["type"] != "transcription" || final["is_final"] != true || alt["transcript"] != "Hello there." ||
		alt["confidence"] != 0.875 || final["channel"] != 1.0 || final["language"] != "en-US" || msgs[0]["is_final"] != false {
		t.Errorf("messages %v", msgs)
	}
	if x := adm.leg(id, 0); len(x) < 15900 {
		t.Errorf("leg: %d samples", len(x))
	}
}

// jambonz's malformed first messages get an error message and 1007:
// audio before start, another type, another encoding, a rate it never
// sends.
func TestJambonzMalformed(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{}, adm, nil)
	for _, first := range []any{[]byte{0, 0}, `{"type":"stop"}`, `{"type":"start","encoding":"MULAW"}`,
		`{"type":"start","sampleRateHz":12345}`, `{"type":"start","interimResults":"yes"}`} {
		c := dial(t, url+"/jambonz", "", nil)
		if b, ok := first.([]byte); ok {
			c.Write(context.Background(), websocket.MessageBinary, b)
		} else {
			c.Write(context.Background(), websocket.MessageText, []byte(first.(string)))
		}
		code, _, msgs := closed(t, c)
		if code != websocket.StatusInvalidFramePayloadData || len(msgs) != 1 || msgs[0]["type"] != "error" || msgs[0]["error"] == "" {
			t.Errorf("first message %v: close %d, messages %v", first, code, msgs)
		}
	}
	if got := adm.refusals(); len(got) != 5 || got[0] != "jambonz/bad_request" {
		t.Errorf("refusals %v", got)
	}
}

// A burst of forks over the limit: admission takes exactly the limit, the
// rest are closed 1013 after their metadata, none is left open.
func TestForkBurstOverLimit(t *testing.T) {
	adm := newAdmitter()
	adm.SetMax(4)
	adm.admitAll.Store(true)
	s, url := serve(t, Config{ConnLimits: ingest.ConnLimits{ConnectRate: 5, ConnectBurst: 50}}, adm, nil)
	const n = 16
	var conns []*websocket.Conn
	for i := range n {
		c := dial(t, url+"/stream", "", nil)
		conns = append(conns, c)
		go func() {
			b, _ := json.Marshal(map[string]any{"callSid": "burst-" + strconv.Itoa(i)})
			c.Write(context.Background(), websocket.MessageText, b)
		}()
	}
	var refused atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { // an error message, then the close; an admitted call says nothing
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			for {
				_, _, err := c.Read(ctx)
				if err == nil {
					continue
				}
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					if ce.Code != websocket.StatusTryAgainLater {
						t.Errorf("close %d", ce.Code)
					}
					refused.Add(1)
				}
				return
			}
		}()
	}
	wg.Wait()
	if got := len(adm.StartedCalls()); got != 4 || refused.Load() != n-4 {
		t.Errorf("%d calls admitted, %d refused; want 4 and %d", got, refused.Load(), n-4)
	}
	s.Close()
	if s.Active() != 0 {
		t.Errorf("%d connections left", s.Active())
	}
}

// The connections of one address are bounded before the upgrade, on both
// endpoints together (503 with Retry-After), and a place comes back when a
// connection closes.
func TestForkConnectionsPerAddress(t *testing.T) {
	adm := newAdmitter()
	_, url := serve(t, Config{ConnLimits: ingest.ConnLimits{MaxConnectionsPerAddress: 2}}, adm, nil)
	first := dial(t, url+"/stream", "", nil)
	dial(t, url+"/jambonz", "", nil)
	for _, path := range []string{"/stream", "/jambonz"} {
		if st, retry := dialStatus(t, url+path, nil); st != http.StatusServiceUnavailable || retry == "" {
			t.Fatalf("%s over max_connections_per_address: %d, Retry-After %q", path, st, retry)
		}
	}
	first.Close(websocket.StatusNormalClosure, "")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, _ := dialStatus(t, url+"/stream", nil)
		if st == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place of a closed connection is not given back: %d", st)
		}
	}
}
