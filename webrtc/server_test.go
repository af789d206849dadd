package webrtc

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	pw "github.com/pion/webrtc/v4"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

// recorder is the Admitter of these tests.
type recorder = ingesttest.Admitter[*Session]

// ringOf is where a session's audio went.
func ringOf(s *Session) *media.Ring { return s.Leg.Sink().(*media.Ring) }

func newWHIP(t *testing.T, cfg Config) (*Server, *recorder, *httptest.Server) {
	t.Helper()
	return newWHIPMax(t, cfg, 0)
}

func newWHIPMax(t *testing.T, cfg Config, max int) (*Server, *recorder, *httptest.Server) {
	t.Helper()
	cfg.Loopback = true
	rec := ingesttest.New[*Session]()
	rec.SetMax(max)
	s, err := NewServer(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Lookup = s.session
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, rec, hs
}

func post(t *testing.T, url, token, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return buffered(res)
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return buffered(res)
}

// buffered reads a response's body and closes it, so that its connection
// goes back to the client; the body stays readable.
func buffered(res *http.Response) *http.Response {
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(b))
	return res
}

func TestWHIPSessionCarriesAudio(t *testing.T) {
	srv, rec, hs := newWHIP(t, Config{Token: "s3cret"})
	c := webrtctest.NewClient(t)
	offer := c.Offer(t)
	if res := post(t, hs.URL+"/whip", "", offer); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", res.StatusCode)
	}
	res := post(t, hs.URL+"/whip", "s3cret", offer)
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || res.Header.Get("Content-Type") != "application/sdp" || !strings.HasPrefix(res.Header.Get("Location"), "/whip/") {
		t.Fatalf("%d %v\n%s", res.StatusCode, res.Header, answer)
	}
	if err := c.PC.SetRemoteDescription(pw.SessionDescription{Type: pw.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
	tone := make([]byte, 8000) // 1 s of a 1 kHz tone
	for j := range tone {
		tone[j] = g711.EncodeUlawFrame(int16(8000 * math.Sin(2*math.Pi*1000*float64(j)/8000)))
	}
	go c.Speak(tone)
	var sess *Session
	select {
	case sess = <-rec.Started:
	case <-time.After(10 * time.Second):
		t.Fatal("no audio track arrived")
	}
	if sess.Codec != "PCMU" {
		t.Errorf("codec %s", sess.Codec)
	}
	for start := time.Now(); ringOf(sess).Len() < 8000 && time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
	}
	if ringOf(sess).Len() < 8000 {
		t.Fatalf("%d samples arrived", ringOf(sess).Len())
	}
	req, _ := http.NewRequest(http.MethodDelete, hs.URL+res.Header.Get("Location"), nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	if r := do(t, req); r.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %v", r)
	}
	<-sess.Done()
	if sess.Reason() != "bye" || srv.Active() != 0 {
		t.Errorf("reason %q, %d sessions", sess.Reason(), srv.Active())
	}
	if n := len(rec.EndedCalls()); n != 1 {
		t.Errorf("%d ended", n)
	}
}

func TestWHIPRejections(t *testing.T) {
	_, _, hs := newWHIPMax(t, Config{}, 1)
	noAudio := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{"not sdp at all", 400, "bad offer"},
		{noAudio, 400, "no audio"},
	} {
		res := post(t, hs.URL+"/whip", "", tc.body)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || !bytes.Contains(b, []byte(tc.want)) {
			t.Errorf("%q: %d %s", tc.body, res.StatusCode, b)
		}
	}
	offer := webrtctest.NewClient(t).Offer(t)
	if res := post(t, hs.URL+"/whip", "", offer); res.StatusCode != http.StatusCreated {
		t.Fatalf("first session: %d", res.StatusCode)
	}
	offer2 := webrtctest.NewClient(t).Offer(t)
	if res := post(t, hs.URL+"/whip", "", offer2); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("second session: %d", res.StatusCode)
	}
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		req, _ := http.NewRequest(m, hs.URL+"/whip", nil)
		if r := do(t, req); r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, r.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, hs.URL+"/whip/nope", nil)
	if r := do(t, req); r.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d", r.StatusCode)
	}
}

// A peer that never connects is dropped after the connect timeout.
func TestWHIPConnectTimeout(t *testing.T) {
	srv, _, hs := newWHIP(t, Config{ConnectTimeout: 500 * time.Millisecond})
	offer := webrtctest.NewClient(t).Offer(t) // the answer is never applied: no ICE
	if res := post(t, hs.URL+"/whip", "", offer); res.StatusCode != http.StatusCreated {
		t.Fatalf("%d", res.StatusCode)
	}
	for start := time.Now(); srv.Active() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("session not dropped")
		}
	}
}

// The browser codec: an Opus track arrives decoded on the leg.
func TestWHIPOpusTrack(t *testing.T) {
	_, rec, hs := newWHIP(t, Config{})
	b, err := os.ReadFile("../media/testdata/speech.opus.ogg")
	if err != nil {
		t.Fatal(err)
	}
	frames, err := media.OggPackets(b)
	if err != nil {
		t.Fatal(err)
	}
	frames = frames[2:] // OpusHead, OpusTags
	c := webrtctest.NewOpusClient(t)
	c.Publish(t, hs.URL+"/whip")
	go c.SpeakPackets(frames)
	var sess *Session
	select {
	case sess = <-rec.Started:
	case <-time.After(10 * time.Second):
		t.Fatal("no audio track arrived")
	}
	if sess.Codec != "opus" {
		t.Fatalf("codec %s", sess.Codec)
	}
	want := 16000 * len(frames) / 50 * 9 / 10
	for start := time.Now(); ringOf(sess).Len() < want && time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
	}
	if n := ringOf(sess).Len(); n < want {
		t.Fatalf("%d samples arrived, want %d", n, want)
	}
	c.Hangup(t, hs.URL)
	<-sess.Done()
	if st := sess.Leg.Stats(); st.Malformed != 0 {
		t.Errorf("%+v", st)
	}
}

// NAT 1:1: the answer's host candidates carry the configured public address.
func TestWHIPPublicIPs(t *testing.T) {
	_, _, hs := newWHIP(t, Config{PublicIPs: []string{"127.0.0.1"}})
	res := post(t, hs.URL+"/whip", "", webrtctest.NewClient(t).Offer(t))
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || !bytes.Contains(answer, []byte(" 127.0.0.1 ")) {
		t.Fatalf("%d\n%s", res.StatusCode, answer)
	}
	if _, err := NewServer(Config{PublicIPs: []string{"not-an-ip"}}, nil); err == nil {
		t.Error("bad public IP accepted")
	}
}

// A peer with two audio tracks: the first is the call's leg, the second is
// left unread; the process and the session survive RTP on both.
func TestWHIPTwoAudioTracks(t *testing.T) {
	srv, rec, hs := newWHIP(t, Config{})
	c := webrtctest.NewClient(t)
	if err := c.AddTrack(); err != nil {
		t.Fatal(err)
	}
	c.Publish(t, hs.URL+"/whip")
	tone := make([]byte, 8000)
	for j := range tone {
		tone[j] = g711.EncodeUlawFrame(int16(8000 * math.Sin(2*math.Pi*1000*float64(j)/8000)))
	}
	spoke := make(chan struct{})
	go func() {
		defer close(spoke)
		c.Speak(tone)
	}()
	var sess *Session
	select {
	case sess = <-rec.Started:
	case <-time.After(10 * time.Second):
		t.Fatal("no audio track arrived")
	}
	for start := time.Now(); ringOf(sess).Len() < 8000 && time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
	}
	select {
	case s2 := <-rec.Started:
		t.Fatalf("a second start for the second track: %v", s2)
	default:
	}
	if n := ringOf(sess).Len(); n < 8000 || srv.Active() != 1 {
		t.Fatalf("%d samples, %d sessions", n, srv.Active())
	}
	<-spoke
	c.Hangup(t, hs.URL)
	<-sess.Done()
	if sess.Reason() != "bye" {
		t.Errorf("reason %q", sess.Reason())
	}
}
