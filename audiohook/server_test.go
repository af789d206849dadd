package audiohook_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/audiohook"
	"github.com/callscribe/callscribe/audiohook/audiohooktest"
	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/transcript"
)

const (
	apiKey = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
	secret = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
)

// feed is a fake of the gateway's event feed: the test publishes a call's
// events by hand.
type feed struct {
	mu sync.Mutex
	ch map[string]chan transcript.Event
}

func (f *feed) subscribe(id string) (<-chan transcript.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan transcript.Event, 16)
	f.ch[id] = c
	return c, func() {}
}

func (f *feed) publish(id string, e transcript.Event) {
	f.mu.Lock()
	c := f.ch[id]
	f.mu.Unlock()
	e.CallID = id
	c <- e
}

type door struct {
	url  string
	adm  *ingesttest.Admitter[string]
	feed *feed
	srv  *audiohook.Server
}

func start(t *testing.T, mod func(*audiohook.Config)) *door {
	t.Helper()
	cfg := audiohook.DefaultConfig()
	cfg.APIKey, cfg.ClientSecret = apiKey, secret
	cfg.ConnectRate = 0
	if mod != nil {
		mod(&cfg)
	}
	d := &door{adm: ingesttest.New[string](), feed: &feed{ch: map[string]chan transcript.Event{}}}
	d.adm.Lookup = func(id string) string { return id }
	srv, err := audiohook.NewServer(cfg, d.adm, d.feed.subscribe)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = srv
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	d.url = "ws" + strings.TrimPrefix(hs.URL, "http") + cfg.Path
	return d
}

func stereo() []audiohook.Media {
	return []audiohook.Media{{Type: "audio", Format: "PCMU", Channels: []string{"external", "internal"}, Rate: 8000},
		{Type: "audio", Format: "PCMU", Channels: []string{"external"}, Rate: 8000}}
}

func (d *door) dial(t *testing.T, o audiohooktest.Options) *audiohooktest.Client {
	t.Helper()
	o.URL = d.url
	if o.APIKey == "" {
		o.APIKey, o.Secret = apiKey, secret
	}
	if o.Media == nil {
		o.Media = stereo()
	}
	c, _, err := audiohooktest.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Hangup)
	return c
}

func params(t *testing.T, m audiohooktest.Message) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(m.Parameters, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// tone is n samples of a 440 Hz tone at 8 kHz.
func tone(n int) []int16 {
	x := make([]int16, n)
	for i := range x {
		x[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	return x
}

// A stereo session from open to closed: the media chosen, the audio of
// each channel in its leg, ping, update, pause and resume, a discarded
// gap, a client error, a final sent back, closed after it; every message
// numbered as the protocol says.
func TestStereoSession(t *testing.T) {
	d := start(t, nil)
	c := d.dial(t, audiohooktest.Options{AskLanguages: true, CustomConfig: map[string]any{"keywords": "refund"}})
	opened, err := c.Open()
	if err != nil || opened.Type != "opened" {
		t.Fatalf("open: %v %+v", err, opened)
	}
	p := params(t, opened)
	media := p["media"].([]any)
	if len(media) != 1 || media[0].(map[string]any)["channels"].([]any)[1] != "internal" {
		t.Fatalf("media chosen: %v", p["media"])
	}
	if langs := p["supportedLanguages"].([]any); len(langs) != 1 || langs[0] != "en-US" {
		t.Fatalf("supportedLanguages: %v", p["supportedLanguages"])
	}
	if opened.Seq != 1 || opened.ClientSeq != 1 {
		t.Fatalf("opened seq %d clientseq %d", opened.Seq, opened.ClientSeq)
	}
	frames := audiohooktest.Frames("PCMU", [][]int16{tone(8000), make([]int16, 8000)}, 100)
	for _, f := range frames {
		if err := c.Audio(f, len(f)/2); err != nil {
			t.Fatal(err)
		}
	}
	c.Send("ping", map[string]any{})
	pong, err := c.Wait("pong", 0, 5*time.Second)
	if err != nil || pong.ClientSeq != 2 || pong.Seq != 2 {
		t.Fatalf("pong: %v %+v", err, pong)
	}
	c.Send("update", map[string]any{"language": "en-GB"})
	c.Send("paused", map[string]any{})
	c.Send("resumed", map[string]any{"start": c.Position(), "discarded": "PT0S"})
	c.Discard(500 * time.Millisecond)
	c.Send("error", map[string]any{"code": 500, "message": "a client's trouble"})
	c.Send("dtmf", map[string]any{"digit": "7"})
	id := c.SessionID()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if len(d.adm.Pauses()) == 2 && d.adm.Digits() == "7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pauses %v digits %q", d.adm.Pauses(), d.adm.Digits())
		}
	}
	// The agent said two words at call-clock 300-900 ms.
	words := `[{"word":"HELLO","start_ms":300,"end_ms":500,"conf":0.9},{"word":"THERE","start_ms":600,"end_ms":900,"conf":0.7}]`
	d.feed.publish(id, transcript.Event{Type: transcript.Final, Fields: map[string]string{"leg": "agent", "utt": "0",
		"text": "HELLO THERE", "words": words, "conf": "0.8", "display": "Hello there.",
		"display_words": `[{"word":"Hello","start_ms":300,"end_ms":500},{"word":"there.","start_ms":600,"end_ms":900}]`}})
	ev, err := c.Wait("event", 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ts := c.Transcripts()
	if len(ts) != 1 || ts[0].ChannelID != 1 || !ts[0].IsFinal || ts[0].Alternatives[0].Interpretations[0].Transcript != "Hello there." ||
		len(ts[0].Alternatives[0].Interpretations[0].Tokens) != 2 || ts[0].Alternatives[0].Languages[0] != "en-GB" {
		t.Fatalf("transcript: %s", ev.Parameters)
	}
	if tok := ts[0].Alternatives[0].Interpretations[0].Tokens[1]; tok.Confidence != 0.7 || time.Duration(tok.Duration) < 250*time.Millisecond {
		t.Fatalf("token: %+v", tok)
	}
	d.feed.publish(id, transcript.Event{Type: transcript.CallEnd})
	closed, err := c.Close(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if closed.ClientSeq != 9 {
		t.Fatalf("closed clientseq %d, want 9", closed.ClientSeq)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if ended := d.adm.WaitEnded(t, 1); ended[0] != id {
		t.Fatalf("ended %v", ended)
	}
}

// Both formats are taken, stereo frames of 200 ms, and the session closes
// cleanly (the audio's way into the legs is the gateway test's).
func TestFormats(t *testing.T) {
	for _, format := range []string{"PCMU", "L16"} {
		t.Run(format, func(t *testing.T) {
			d := start(t, nil)
			c := d.dial(t, audiohooktest.Options{Media: []audiohook.Media{{Type: "audio", Format: format, Channels: []string{"external", "internal"}, Rate: 8000}}})
			if m, err := c.Open(); err != nil || m.Type != "opened" {
				t.Fatal(err, m)
			}
			for _, f := range audiohooktest.Frames(format, [][]int16{tone(8000), make([]int16, 8000)}, 200) {
				n := len(f) / 2
				if format == "L16" {
					n = len(f) / 4
				}
				c.Audio(f, n)
			}
			c.Send("ping", map[string]any{})
			if _, err := c.Wait("pong", 0, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Close(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
			d.adm.WaitEnded(t, 1)
		})
	}
}

// Audio after paused, with no resumed before it (the connection keeps
// the client's order, so it was sent after the pause): the client streams
// again, and the session takes it as resumed: the call's transcription
// resumes, the session goes on and closes cleanly.
func TestAudioWhilePaused(t *testing.T) {
	d := start(t, nil)
	c := d.dial(t, audiohooktest.Options{})
	if m, err := c.Open(); err != nil || m.Type != "opened" {
		t.Fatal(err, m)
	}
	frames := audiohooktest.Frames("PCMU", [][]int16{tone(3200), tone(3200)}, 200)
	c.Audio(frames[0], 1600)
	c.Send("paused", map[string]any{})
	c.Audio(frames[1], 1600)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p := d.adm.Pauses(); len(p) == 2 && p[0] && !p[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pauses %v, want [true false]", d.adm.Pauses())
		}
	}
	c.Send("ping", map[string]any{})
	if _, err := c.Wait("pong", 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Messages() {
		if m.Type == "disconnect" {
			t.Fatalf("disconnect: %s", m.Parameters)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// A connection probe (a null conversation id) is opened and closed, and
// no call is made.
func TestProbe(t *testing.T) {
	d := start(t, nil)
	c := d.dial(t, audiohooktest.Options{ConversationID: audiohook.NullUUID})
	if m, err := c.Open(); err != nil || m.Type != "opened" {
		t.Fatalf("probe: %v %+v", err, m)
	}
	if _, err := c.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(d.adm.StartedCalls()); n != 0 {
		t.Fatalf("a probe made %d calls", n)
	}
}

// A connection that is not authenticated gets disconnect (unauthorized)
// and no call: a wrong key, a wrong secret, an old signature, a nonce
// replayed, a signature missing.
func TestUnauthorized(t *testing.T) {
	d := start(t, nil)
	old := time.Now().Add(-time.Minute)
	cases := map[string]audiohooktest.Options{
		"key":     {APIKey: "b3RoZXI=", Secret: secret},
		"secret":  {APIKey: apiKey, Secret: "b3RoZXIgc2VjcmV0"},
		"old":     {APIKey: apiKey, Secret: secret, Created: old},
		"missing": {APIKey: apiKey},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			c := d.dial(t, o)
			m, err := c.Open()
			if err != nil || m.Type != "disconnect" || params(t, m)["reason"] != "unauthorized" {
				t.Fatalf("%v %+v", err, m)
			}
			if _, err := c.Close(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("replay", func(t *testing.T) {
		o := audiohooktest.Options{Nonce: "bm9uY2Utb2YtYXQtbGVhc3QtMjItY2hhcnM="}
		c := d.dial(t, o)
		if m, err := c.Open(); err != nil || m.Type != "opened" {
			t.Fatalf("first: %v %+v", err, m)
		}
		c2 := d.dial(t, o)
		if m, err := c2.Open(); err != nil || m.Type != "disconnect" {
			t.Fatalf("replayed: %v %+v", err, m)
		}
	})
	if n := len(d.adm.StartedCalls()); n != 1 {
		t.Fatalf("%d calls started, want the one authenticated", n)
	}
}

// Every malformed message gets disconnect (error) and the call, if any,
// ends; nothing panics and no goroutine is left (TestMain).
func TestMalformed(t *testing.T) {
	d := start(t, func(c *audiohook.Config) { c.MaxFrameBytes = 1600 })
	envelope := func(typ string, seq int, params string) string {
		return `{"version":"2","id":"%ID%","type":"` + typ + `","seq":` + string(rune('0'+seq)) + `,"serverseq":1,"position":"PT0S","parameters":` + params + `}`
	}
	cases := []struct {
		name   string
		binary bool
		msg    string
	}{
		{"not json", false, `{"version":`},
		{"version", false, strings.Replace(envelope("ping", 2, `{}`), `"2"`, `"1"`, 1)},
		{"id", false, strings.Replace(envelope("ping", 2, `{}`), `%ID%`, audiohooktest.NewUUID(), 1)},
		{"seq", false, envelope("ping", 5, `{}`)},
		{"serverseq", false, strings.Replace(envelope("ping", 2, `{}`), `"serverseq":1`, `"serverseq":9`, 1)},
		{"position", false, strings.Replace(envelope("ping", 2, `{}`), `PT0S`, `1.5`, 1)},
		{"type", false, envelope("dance", 2, `{}`)},
		{"parameters", false, envelope("close", 2, `{"reason":"bored"}`)},
		{"update", false, envelope("update", 2, `{}`)},
		{"discarded", false, envelope("discarded", 2, `{"start":"PT1S"}`)},
		{"too big", false, envelope("ping", 2, `{"x":"`+strings.Repeat("x", 70000)+`"}`)},
		{"odd frame", true, "\x01\x02\x03"},
		{"big frame", true, strings.Repeat("\xff", 2000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := d.dial(t, audiohooktest.Options{})
			if m, err := c.Open(); err != nil || m.Type != "opened" {
				t.Fatal(err, m)
			}
			typ, msg := websocket.MessageText, strings.ReplaceAll(tc.msg, "%ID%", c.SessionID())
			if tc.binary {
				typ = websocket.MessageBinary
			}
			c.SendRaw(typ, []byte(msg))
			m, err := c.Wait("disconnect", 0, 5*time.Second)
			if err != nil {
				select {
				case <-c.Done(): // a message past the read limit closes the connection itself
					if tc.name == "too big" {
						return
					}
				default:
				}
				t.Fatal(err)
			}
			if params(t, m)["reason"] != "error" {
				t.Fatalf("%+v", m)
			}
		})
	}
	if got := len(d.adm.EndedCalls()); got < len(cases)-1 {
		t.Fatalf("%d calls ended of %d", got, len(cases))
	}
}

// A peer that vanishes mid-call ends its call; a session over the limit is
// refused with disconnect; a connection that never opens is closed.
func TestVanishLimitsTimeouts(t *testing.T) {
	d := start(t, func(c *audiohook.Config) {
		c.StartTimeout = 300 * time.Millisecond
		c.IdleTimeout = 500 * time.Millisecond
	})
	d.adm.SetMax(1)
	c := d.dial(t, audiohooktest.Options{})
	if m, err := c.Open(); err != nil || m.Type != "opened" {
		t.Fatal(err, m)
	}
	c2 := d.dial(t, audiohooktest.Options{})
	if m, err := c2.Open(); err != nil || m.Type != "disconnect" || !strings.Contains(string(m.Parameters), "limit") {
		t.Fatalf("over the limit: %v %+v", err, m)
	}
	c.Hangup()
	d.adm.WaitEnded(t, 1)

	idle := d.dial(t, audiohooktest.Options{})
	if m, err := idle.Open(); err != nil || m.Type != "opened" {
		t.Fatal(err, m)
	}
	if m, err := idle.Wait("disconnect", 0, 5*time.Second); err != nil || !strings.Contains(string(m.Parameters), "idle") {
		t.Fatalf("idle: %v %+v", err, m)
	}
	silent := d.dial(t, audiohooktest.Options{})
	select {
	case <-silent.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a connection without open stays")
	}
}

// Requests that are not AudioHook connections are refused before the
// upgrade: no session id, a plain GET.
func TestBeforeUpgrade(t *testing.T) {
	d := start(t, nil)
	resp, err := http.Get(strings.Replace(d.url, "ws", "http", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no session id: %d", resp.StatusCode)
	}
}

// The connections of one address are bounded before the upgrade (503 with
// Retry-After) and a place comes back when a session ends; past the
// address's rate a connection gets 429.
func TestPerAddressLimits(t *testing.T) {
	refusal := func(d *door) (int, string) {
		t.Helper()
		c, resp, err := audiohooktest.Dial(context.Background(),
			audiohooktest.Options{URL: d.url, APIKey: apiKey, Secret: secret, Media: stereo()})
		if err == nil {
			c.Hangup()
			t.Fatal("taken over the limit")
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	d := start(t, func(c *audiohook.Config) { c.MaxConnectionsPerAddress = 2 })
	first := d.dial(t, audiohooktest.Options{})
	d.dial(t, audiohooktest.Options{})
	if code, retry := refusal(d); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("over max_connections_per_address: %d, Retry-After %q", code, retry)
	}
	first.Hangup()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, _, err := audiohooktest.Dial(context.Background(),
			audiohooktest.Options{URL: d.url, APIKey: apiKey, Secret: secret, Media: stereo()})
		if err == nil {
			c.Hangup()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place of a session hung up is not given back: %v", err)
		}
	}

	r := start(t, func(c *audiohook.Config) { c.ConnectRate, c.ConnectBurst = 0.01, 1 })
	r.dial(t, audiohooktest.Options{})
	if code, retry := refusal(r); code != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("over connect_rate: %d, Retry-After %q", code, retry)
	}
}
