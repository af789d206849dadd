package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const offerPCMU = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"

func TestParseAndNegotiate(t *testing.T) {
	o, err := ParseOffer([]byte(offerPCMU))
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != netip.MustParseAddrPort("127.0.0.1:40000") || o.Hold || len(o.Codecs) != 3 {
		t.Fatalf("%+v", o)
	}
	for _, tc := range []struct {
		prefs []string
		want  string
		pt    uint8
	}{
		{[]string{"PCMU", "PCMA"}, "PCMU", 0},
		{[]string{"G722", "PCMA"}, "PCMA", 8},
	} {
		ch, err := Negotiate(o, tc.prefs)
		if err != nil || ch.Name != tc.want || ch.PT != tc.pt || ch.DTMFPT != 101 {
			t.Errorf("%v: %+v %v", tc.prefs, ch, err)
		}
	}
	if _, err := Negotiate(o, []string{"opus"}); !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("opus: %v", err)
	}
	ans := string(Answer(netip.MustParseAddrPort("127.0.0.1:30000"), Choice{PT: 0, Name: "PCMU", Clock: 8000, DTMFPT: 101}, o.Direction, 7, 1))
	for _, want := range []string{"m=audio 30000 RTP/AVP 0 101\r\n", "c=IN IP4 127.0.0.1\r\n", "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:101 telephone-event/8000\r\n", "a=recvonly\r\n"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	if _, err := ParseOffer([]byte(ans)); err != nil {
		t.Errorf("own answer does not parse: %v", err)
	}
}

func TestHoldOffers(t *testing.T) {
	for _, tc := range []struct{ sdp string }{
		{strings.Replace(offerPCMU, "a=sendrecv", "a=sendonly", 1)},
		{strings.Replace(offerPCMU, "a=sendrecv", "a=inactive", 1)},
		{strings.Replace(offerPCMU, "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0", 1)},
	} {
		o, err := ParseOffer([]byte(tc.sdp))
		if err != nil || !o.Hold {
			t.Errorf("%v %+v", err, o)
		}
	}
}

func TestBadOffers(t *testing.T) {
	for _, s := range []string{
		"",
		"garbage",
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n",         // no audio
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",          // no c=
		"v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4 nope\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", // bad address
	} {
		if _, err := ParseOffer([]byte(s)); !errors.Is(err, ErrBadSDP) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(offerPCMU))
	f.Add([]byte(strings.Replace(offerPCMU, "a=sendrecv", "a=inactive", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOffer(b)
		if err != nil {
			return
		}
		if ch, err := Negotiate(o, []string{"PCMU", "PCMA", "G722", "opus"}); err == nil {
			Answer(netip.MustParseAddrPort("127.0.0.1:30000"), ch, o.Direction, 1, 1)
		}
	})
}

// Opus with telephone-event at 8 kHz (baresip, many SBCs): DTMF is kept, at
// its own clock, and the answer says so.
func TestOpusKeepsTelephoneEventAt8k(t *testing.T) {
	o, err := ParseOffer([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := Negotiate(o, []string{"opus"})
	if err != nil || ch.DTMFPT != 101 || ch.DTMFClock != 8000 || ch.Clock != 48000 {
		t.Fatalf("%+v %v", ch, err)
	}
	ans := string(Answer(netip.MustParseAddrPort("127.0.0.1:30000"), ch, o.Direction, 1, 1))
	for _, want := range []string{"m=audio 30000 RTP/AVP 96 101\r\n", "a=rtpmap:96 opus/48000/2\r\n", "a=rtpmap:101 telephone-event/8000\r\n", "a=recvonly\r\n"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
}

// By default a caller offering G.722 or Opus beside G.711 is heard wideband.
func TestDefaultPrefersWideband(t *testing.T) {
	for offer, want := range map[string]string{
		"m=audio 40000 RTP/AVP 0 8 9 101\r\na=rtpmap:101 telephone-event/8000\r\n":                              "G722",
		"m=audio 40000 RTP/AVP 0 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n": "opus",
		"m=audio 40000 RTP/AVP 8 0\r\n": "PCMU",
	} {
		o, err := ParseOffer([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + offer))
		if err != nil {
			t.Fatal(err)
		}
		if ch, err := Negotiate(o, DefaultCodecs()); err != nil || ch.Name != want {
			t.Errorf("%q: %+v %v, want %s", offer, ch, err, want)
		}
	}
}
