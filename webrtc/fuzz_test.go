package webrtc

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pw "github.com/pion/webrtc/v4"

	"github.com/callscribe/callscribe/ingest/ingesttest"
)

// Any POST body gets an answer or a 4xx/503, never a panic or a 500; the
// sessions it makes end by the connect timeout.
func FuzzWHIPOffer(f *testing.F) {
	m := &pw.MediaEngine{}
	m.RegisterDefaultCodecs()
	pc, _ := pw.NewAPI(pw.WithMediaEngine(m)).NewPeerConnection(pw.Configuration{})
	pc.AddTransceiverFromKind(pw.RTPCodecTypeAudio)
	offer, _ := pc.CreateOffer(nil)
	pc.Close()
	f.Add(offer.SDP)
	f.Add(strings.Replace(offer.SDP, "m=audio 9", "m=audio 0", 1))
	f.Add(strings.Replace(offer.SDP, "a=fingerprint", "a=x-fingerprint", 1))
	f.Add(strings.Replace(offer.SDP, "opus/48000/2", "nope/1", 1))
	f.Add("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
	f.Add("")
	rec := ingesttest.New[*Session]()
	rec.SetMax(8)
	s, err := NewServer(Config{ConnectTimeout: 200 * time.Millisecond, Loopback: true}, rec)
	if err != nil {
		f.Fatal(err)
	}
	rec.Lookup = s.session
	defer s.Close()
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/whip", strings.NewReader(body)))
		switch w.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusServiceUnavailable:
		default:
			t.Fatalf("%d %s for %q", w.Code, w.Body.String(), body)
		}
	})
}
