package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// With redaction on, a DTMF event says when a key was pressed, not which;
// a call's own redaction list is checked (400 when it cannot be read).
func TestRedactionMasksDTMF(t *testing.T) {
	rd, pub, calls, _ := startGatewayWith(t, CallsOptions{Redact: redact.Policy{SSN: true}})
	if _, err := calls.Admit(ingest.Offer{ID: "bad", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"},
		Redact: "cards"}); ingest.AsRefusal(err).SIP != 400 {
		t.Fatalf("bad list: %v", err)
	}
	tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(map[string]string{})
	tk.DTMF(0, media.DTMF{Digit: '7', StartMs: 100, DurationMs: 80})
	tk.End("bye", nil)
	<-tk.Done()
	pub.Flush(context.Background())
	for _, evs := range transcripttest.CallStreams(t, rd.Addr) {
		for _, e := range evs {
			if e["type"] != "dtmf" {
				continue
			}
			if _, ok := e["digit"]; ok || e["redacted"] != "dtmf" {
				t.Errorf("dtmf event %v", e)
			}
			return
		}
	}
	t.Error("no dtmf event")
}

// While a call is paused nothing it says or keys is published: a digit
// keyed in the media (RFC 4733) or signalled (SIP INFO) is an event
// without the digit, and speech gives no words nor keyword events. Before
// the pause and after the resume, without redaction, digits and words are
// there; digits are on the call's clock.
func TestPauseHidesWhatIsSaidAndKeyed(t *testing.T) {
	rd, pub, calls, _ := startGatewayWith(t, CallsOptions{Keywords: []asr.Phrase{{Text: "seven"}, {Text: "thank you"}}})
	tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(map[string]string{})
	sink := tk.Sink(0)
	at := int64(0)
	say := func(x []float32) {
		for i := 0; i < len(x); i += 320 {
			sink.WriteAudio(at, x[i:min(i+320, len(x))])
			at += int64(min(320, len(x)-i))
			time.Sleep(2 * time.Millisecond)
		}
	}
	say(speech(t, "digits/1", time.Second))
	tk.DTMF(0, media.DTMF{Digit: '1', StartMs: 100, DurationMs: 80})
	tk.Pause(true, "http")
	tk.DTMF(0, media.DTMF{Digit: '2', StartMs: at / 16, DurationMs: 80})
	tk.DTMF(0, media.DTMF{Digit: '3', StartMs: 5000, DurationMs: 80, OnCall: true})
	say(speech(t, "digits/7", "digits/7", "auth-thankyou", 2*time.Second))
	tk.Pause(false, "http")
	tk.DTMF(0, media.DTMF{Digit: '4', StartMs: 200, DurationMs: 80, OnCall: true})
	say(speech(t, "auth-thankyou", 2*time.Second))
	tk.End("bye", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	var got []string
	before := 0
	for _, evs := range transcripttest.CallStreams(t, rd.Addr) {
		for _, e := range evs {
			switch e["type"] {
			case "dtmf":
				got = append(got, fmt.Sprintf("dtmf %v %v", e["digit"], e["redacted"]))
			case "final", "keyword":
				if e["text"] == "ONE" { // said before the pause, published when recognized
					before++
					continue
				}
				got = append(got, fmt.Sprintf("%s %v", e["type"], e["text"]))
			case "pause", "resume":
				got = append(got, e["type"].(string))
			}
		}
	}
	want := []string{"dtmf 1 <nil>", "pause", "dtmf <nil> dtmf", "dtmf <nil> dtmf", "resume", "dtmf 4 <nil>",
		"keyword THANK YOU", "final THANK YOU"}
	if strings.Join(got, "|") != strings.Join(want, "|") || before != 1 {
		t.Errorf("events\n got %q\nwant %q, and ONE before the pause (%d)", got, want, before)
	}
}
