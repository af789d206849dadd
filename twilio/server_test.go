package twilio

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/twilio/twiliotest"
)

// recorder is the Admitter of these tests.
type recorder = ingesttest.Admitter[*Stream]

func newDoor(t *testing.T, cfg Config, max int) (*Server, *recorder, string) {
	t.Helper()
	rec := ingesttest.New[*Stream]()
	rec.SetMax(max)
	s, err := NewServer(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Lookup = s.Lookup
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, rec, "ws" + strings.TrimPrefix(hs.URL, "http") + DefaultPath
}

// tone is ms of a sine at hz, 8 kHz.
func tone(hz float64, ms int) []float32 {
	x := make([]float32, ms*8)
	for i := range x {
		x[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/8000))
	}
	return x
}

// heard is the audio a leg's ring holds and its RMS.
func heard(sink media.Sink) (int, float64) {
	r := sink.(*media.Ring)
	x := make([]float32, r.Len())
	n, _ := r.Read(x)
	var e float64
	for _, v := range x[:n] {
		e += float64(v) * float64(v)
	}
	return n, math.Sqrt(e / float64(max(n, 1)))
}

func dial(t *testing.T, c twiliotest.Call) *twiliotest.Stream {
	t.Helper()
	st, err := twiliotest.Dial(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Vanish)
	return st
}

func wait(t *testing.T, st *twiliotest.Stream) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := st.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// A call of one track and of both: each track is a leg that hears its own
// audio (16 kHz, its length), digits and marks pass, stop ends it (bye)
// with a normal close.
func TestMonoAndStereo(t *testing.T) {
	for _, tracks := range [][]string{{"inbound"}, {"inbound", "outbound"}} {
		t.Run(strings.Join(tracks, "+"), func(t *testing.T) {
			_, rec, url := newDoor(t, Config{}, 0)
			st := dial(t, twiliotest.Call{URL: url, StreamSid: "MZ" + strings.Join(tracks, ""), CallSid: "CA1", Tracks: tracks,
				Params: map[string]string{"agent": "7"}})
			audio := map[string][]float32{}
			for i, name := range tracks {
				audio[name] = tone(300+float64(i)*400, 1000)
			}
			if err := st.Play(context.Background(), 0, audio, map[string]time.Duration{"outbound": 60 * time.Millisecond}, false); err != nil {
				t.Fatal(err)
			}
			st.DTMF("inbound", '5')
			st.Mark("greeting")
			st.DTMF("inbound", '#')
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if code, err := st.Stop(ctx); err != nil || code != websocket.StatusNormalClosure {
				t.Fatalf("stop: %v %v", code, err)
			}
			calls := rec.WaitEnded(t, 1)
			call := calls[0]
			if call.Reason() != "bye" || call.CallSid != "CA1" || call.Params["agent"] != "7" || len(call.Legs) != len(tracks) {
				t.Fatalf("%+v", call)
			}
			for i := range tracks {
				n, rms := heard(call.Legs[i].Sink().(*offsetSink).Sink)
				if n < 15680 || n > 16000 || rms < 0.15 {
					t.Errorf("leg %d: %d samples, rms %.3f", i, n, rms)
				}
				if s := call.Legs[i].Stats(); s.Packets != 50 || s.Lost != 0 {
					t.Errorf("leg %d: %+v", i, s)
				}
			}
			if d := rec.Digits(); d != "5#" {
				t.Errorf("digits %q", d)
			}
		})
	}
}

// A peer that vanishes mid-call: its connection dropped ends the call
// (error); one silent past idle_timeout ends it too (timeout).
func TestPeerVanishes(t *testing.T) {
	_, rec, url := newDoor(t, Config{ConnLimits: ingest.ConnLimits{IdleTimeout: 300 * time.Millisecond}}, 0)
	st := dial(t, twiliotest.Call{URL: url, StreamSid: "MZgone"})
	st.Play(context.Background(), 0, map[string][]float32{"inbound": tone(440, 200)}, nil, false)
	st.Vanish()
	if c := rec.WaitEnded(t, 1)[0]; c.Reason() != "error" {
		t.Fatalf("dropped: %q", c.Reason())
	}
	st = dial(t, twiliotest.Call{URL: url, StreamSid: "MZsilent"})
	st.Play(context.Background(), 0, map[string][]float32{"inbound": tone(440, 200)}, nil, false)
	t0 := time.Now()
	if code := wait(t, st); code != -1 {
		t.Fatalf("silent peer closed with %v", code)
	}
	if c := rec.WaitEnded(t, 2)[1]; c.Reason() != "timeout" || time.Since(t0) > 3*time.Second {
		t.Fatalf("silent: %q after %v", c.Reason(), time.Since(t0))
	}
}

// Every kind of malformed message gets its close code; after start the
// call ends (error), before it nothing is admitted.
func TestMalformedMessages(t *testing.T) {
	_, rec, url := newDoor(t, Config{MessageLimit: ingest.MessageLimit{MaxMessageBytes: 4096}}, 0)
	started := 0
	for i, c := range []struct {
		name       string
		afterStart bool
		send       func(*twiliotest.Stream) error
		code       websocket.StatusCode
	}{
		{"not json", true, func(s *twiliotest.Stream) error { return s.Raw([]byte(`{"event":`)) }, websocket.StatusInvalidFramePayloadData},
		{"binary", true, func(s *twiliotest.Stream) error { return s.Binary([]byte{1, 2, 3}) }, websocket.StatusUnsupportedData},
		{"no event", true, func(s *twiliotest.Stream) error { return s.Raw([]byte(`{"media":{}}`)) }, websocket.StatusInvalidFramePayloadData},
		{"bad payload", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"media","media":{"track":"inbound","payload":"%%%"}}`))
		}, websocket.StatusInvalidFramePayloadData},
		{"bad track", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"media","media":{"track":"left","payload":"AAAA"}}`))
		}, websocket.StatusInvalidFramePayloadData},
		{"bad timestamp", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"media","media":{"track":"inbound","timestamp":"x","payload":"AAAA"}}`))
		}, websocket.StatusInvalidFramePayloadData},
		{"bad digit", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"x"}}`))
		}, websocket.StatusInvalidFramePayloadData},
		{"second start", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"start","start":{"streamSid":"MZother"}}`))
		}, websocket.StatusPolicyViolation},
		{"too big", true, func(s *twiliotest.Stream) error {
			return s.Raw([]byte(`{"event":"mark","mark":{"name":"` + strings.Repeat("x", 5000) + `"}}`))
		}, websocket.StatusMessageTooBig},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := dial(t, twiliotest.Call{URL: url, StreamSid: fmt.Sprintf("MZbad%d", i)})
			started++
			if err := st.Play(context.Background(), 0, map[string][]float32{"inbound": tone(440, 100)}, nil, false); err != nil {
				t.Fatal(err)
			}
			c.send(st)
			if code := wait(t, st); code != c.code {
				t.Fatalf("closed %v (%s), want %v", code, st.CloseReason(), c.code)
			}
			if call := rec.WaitEnded(t, started)[started-1]; call.Reason() != "error" {
				t.Fatalf("reason %q", call.Reason())
			}
		})
	}
	// Before start: nothing is admitted.
	for _, c := range []struct {
		name, msg string
		code      websocket.StatusCode
	}{
		{"media first", `{"event":"media","media":{"track":"inbound","payload":"AAAA"}}`, websocket.StatusPolicyViolation},
		{"codec", `{"event":"start","start":{"streamSid":"MZl16","mediaFormat":{"encoding":"audio/x-l16","sampleRate":16000}}}`, websocket.StatusUnsupportedData},
		{"bad sid", `{"event":"start","start":{"streamSid":"MZ {x}"}}`, websocket.StatusInvalidFramePayloadData},
		{"not json", `]`, websocket.StatusInvalidFramePayloadData},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, _, err := websocket.Dial(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			ws.Write(context.Background(), websocket.MessageText, []byte(`{"event":"connected","protocol":"Call","version":"1.0.0"}`))
			ws.Write(context.Background(), websocket.MessageText, []byte(c.msg))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err = ws.Read(ctx)
			if code := websocket.CloseStatus(err); code != c.code {
				t.Fatalf("closed %v, want %v", err, c.code)
			}
		})
	}
	if n := len(rec.StartedCalls()); n != started {
		t.Fatalf("%d calls started, want %d", n, started)
	}
}

// Before the upgrade: a request that is no upgrade, a POST, a missing or
// wrong signature or bearer token get their HTTP answers; the right ones
// are taken.
func TestRefusedBeforeUpgrade(t *testing.T) {
	_, rec, url := newDoor(t, Config{AuthToken: "secret", BearerToken: "bt"}, 0)
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	for _, c := range []struct {
		name   string
		do     func() int
		status int
	}{
		{"plain GET", func() int { return get(t, http.MethodGet, httpURL) }, http.StatusUnauthorized},
		{"POST", func() int { return get(t, http.MethodPost, httpURL) }, http.StatusMethodNotAllowed},
		{"no bearer", func() int { return refusal(twiliotest.Call{URL: url, StreamSid: "MZ1", AuthToken: "secret"}) }, http.StatusUnauthorized},
		{"no signature", func() int { return refusal(twiliotest.Call{URL: url, StreamSid: "MZ1", Header: bearer("bt")}) }, http.StatusForbidden},
		{"wrong token", func() int {
			return refusal(twiliotest.Call{URL: url, StreamSid: "MZ1", Header: bearer("bt"), AuthToken: "guess"})
		}, http.StatusForbidden},
		{"another URL's", func() int {
			return refusal(twiliotest.Call{URL: url, StreamSid: "MZ1", Header: bearer("bt"), Signature: Signature("secret", url+"x", nil)})
		}, http.StatusForbidden},
	} {
		if got := c.do(); got != c.status {
			t.Errorf("%s: %d, want %d", c.name, got, c.status)
		}
	}
	st := dial(t, twiliotest.Call{URL: url, StreamSid: "MZok", Header: bearer("bt"), AuthToken: "secret"})
	st.Stop(context.Background())
	if c := rec.WaitEnded(t, 1)[0]; c.ID != "MZok" {
		t.Fatal(c.ID)
	}
}

// public_url is the URL signed when a proxy stands between.
func TestPublicURLSigned(t *testing.T) {
	const public = "wss://callscribe.example.com/calls/twilio"
	_, rec, url := newDoor(t, Config{AuthToken: "secret", PublicURL: public}, 0)
	if got := refusal(twiliotest.Call{URL: url, StreamSid: "MZ1", AuthToken: "secret"}); got != http.StatusForbidden {
		t.Fatalf("the local URL's signature: %d", got)
	}
	st := dial(t, twiliotest.Call{URL: url, StreamSid: "MZ2", Signature: Signature("secret", public, nil)})
	st.Stop(context.Background())
	rec.WaitEnded(t, 1)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func get(t *testing.T, method, url string) int {
	req, _ := http.NewRequest(method, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// refusal is the HTTP status a stream is refused with (0: taken).
func refusal(c twiliotest.Call) int {
	st, err := twiliotest.Dial(context.Background(), c)
	if err == nil {
		st.Vanish()
	}
	return twiliotest.StatusOf(err)
}

// Limits hold under a burst: the streams of one address, the calls the
// admitter takes, the rate of one address.
func TestLimitsUnderBurst(t *testing.T) {
	burst := func(url string, n int) (taken []*twiliotest.Stream, statuses map[int]int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		statuses = map[int]int{}
		for i := range n {
			wg.Go(func() {
				st, err := twiliotest.Dial(context.Background(), twiliotest.Call{URL: url, StreamSid: fmt.Sprintf("MZburst%d", i)})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					statuses[twiliotest.StatusOf(err)]++
					return
				}
				taken = append(taken, st)
			})
		}
		wg.Wait()
		return taken, statuses
	}
	hangUp := func(taken []*twiliotest.Stream) (codes map[websocket.StatusCode]int) {
		codes = map[websocket.StatusCode]int{}
		for _, st := range taken {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			code, err := st.Stop(ctx)
			if err != nil { // already closed: refused at start
				code, _ = st.Wait(ctx)
			}
			cancel()
			codes[code]++
		}
		return codes
	}
	t.Run("per address", func(t *testing.T) {
		_, _, url := newDoor(t, Config{ConnLimits: ingest.ConnLimits{MaxConnectionsPerAddress: 3}}, 0)
		taken, statuses := burst(url, 12)
		if len(taken) != 3 || statuses[http.StatusServiceUnavailable] != 9 {
			t.Fatalf("%d taken, refused %v", len(taken), statuses)
		}
		hangUp(taken)
	})
	t.Run("admission", func(t *testing.T) {
		_, rec, url := newDoor(t, Config{}, 2)
		taken, statuses := burst(url, 12)
		// Refused before the upgrade (503) or at start (1013).
		codes := hangUp(taken)
		if len(rec.StartedCalls()) != 2 || codes[websocket.StatusNormalClosure] != 2 ||
			statuses[http.StatusServiceUnavailable]+codes[websocket.StatusTryAgainLater] != 10 {
			t.Fatalf("%d started, refused %v, closed %v", len(rec.StartedCalls()), statuses, codes)
		}
	})
	t.Run("rate", func(t *testing.T) {
		_, _, url := newDoor(t, Config{ConnLimits: ingest.ConnLimits{ConnectRate: 0.01, ConnectBurst: 4}}, 0)
		taken, statuses := burst(url, 10)
		if len(taken) != 4 || statuses[http.StatusTooManyRequests] != 6 {
			t.Fatalf("%d taken, refused %v", len(taken), statuses)
		}
		hangUp(taken)
	})
}

// A connection that never says start is closed after start_timeout.
func TestStartTimeout(t *testing.T) {
	s, _, url := newDoor(t, Config{ConnLimits: ingest.ConnLimits{StartTimeout: 300 * time.Millisecond}}, 0)
	ws, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(context.Background(), websocket.MessageText, []byte(`{"event":"connected","protocol":"Call","version":"1.0.0"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := ws.Read(ctx); ctx.Err() != nil || err == nil {
		t.Fatalf("still open: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); s.Active() > 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if s.Active() != 0 {
		t.Fatal("connection kept")
	}
}

// Close ends every stream (shutdown, 1001 going away) and takes no more.
func TestCloseEndsStreams(t *testing.T) {
	s, rec, url := newDoor(t, Config{}, 0)
	a := dial(t, twiliotest.Call{URL: url, StreamSid: "MZa"})
	b := dial(t, twiliotest.Call{URL: url, StreamSid: "MZb", Tracks: []string{"inbound", "outbound"}})
	for range 2 {
		<-rec.Started
	}
	s.Close()
	for _, st := range []*twiliotest.Stream{a, b} {
		if code := wait(t, st); code != websocket.StatusGoingAway {
			t.Fatalf("closed %v", code)
		}
	}
	for _, c := range rec.WaitEnded(t, 2) {
		if c.Reason() != "shutdown" {
			t.Fatalf("reason %q", c.Reason())
		}
	}
	if got := refusal(twiliotest.Call{URL: url, StreamSid: "MZc"}); got != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %d", got)
	}
}
