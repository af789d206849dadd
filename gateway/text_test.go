package gateway

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript"
)

// The text stage's events are the wire format to the byte: a final's
// "words" carry conf (0 for a redaction marker, which takes the span's
// times), its "display_words" the formatted tokens without conf.
func TestTextStageFinalFields(t *testing.T) {
	var evs []transcript.Event
	now := time.Unix(1000, 0)
	s := newTextStage("c", "caller", redact.Policy{PCI: true}, nil, func(e transcript.Event) { evs = append(evs, e) },
		func() time.Time { return now }, nil)
	said := strings.Fields("I OWE TWO HUNDRED DOLLARS ON CARD FOUR ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE")
	r := asr.Result{Stream: "caller", Kind: asr.Final, Utt: 3, Text: strings.Join(said, " "), StartMs: 1000,
		EndMs: 1000 + 100*int64(len(said)), Conf: 0.5}
	for i, w := range said {
		r.Words = append(r.Words, asr.Word{Text: w, StartMs: 1000 + 100*int64(i), EndMs: 1080 + 100*int64(i), Conf: 0.5})
	}
	r.Words[0].Conf = 0.25
	p := r
	p.Kind, p.Words = asr.Partial, r.Words[:10]
	p.Text, p.EndMs = strings.Join(said[:10], " "), 2000
	s.partial(p, p.EndMs)
	s.final(r, nil, r.EndMs)
	want := []map[string]string{
		{"leg": "caller", "utt": "3", "text": "I OWE TWO HUNDRED DOLLARS ON CARD [CARD]", "start_ms": "1000", "end_ms": "2000",
			"redacted": "pci"},
		{"leg": "caller", "utt": "3", "text": "I OWE TWO HUNDRED DOLLARS ON CARD [CARD]", "start_ms": "1000", "end_ms": "3300",
			"redacted": "pci", "conf": "0.500",
			"words": `[{"word":"I","start_ms":1000,"end_ms":1080,"conf":0.25},{"word":"OWE","start_ms":1100,"end_ms":1180,"conf":0.5},` +
				`{"word":"TWO","start_ms":1200,"end_ms":1280,"conf":0.5},{"word":"HUNDRED","start_ms":1300,"end_ms":1380,"conf":0.5},` +
				`{"word":"DOLLARS","start_ms":1400,"end_ms":1480,"conf":0.5},{"word":"ON","start_ms":1500,"end_ms":1580,"conf":0.5},` +
				`{"word":"CARD","start_ms":1600,"end_ms":1680,"conf":0.5},{"word":"[CARD]","start_ms":1700,"end_ms":3280,"conf":0}]`,
			"display": "I owe $200 on card [CARD]",
			"display_words": `[{"word":"I","start_ms":1000,"end_ms":1080},{"word":"owe","start_ms":1100,"end_ms":1180},` +
				`{"word":"$200","start_ms":1200,"end_ms":1480},{"word":"on","start_ms":1500,"end_ms":1580},` +
				`{"word":"card","start_ms":1600,"end_ms":1680},{"word":"[CARD]","start_ms":1700,"end_ms":3280}]`},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events: %v", len(evs), evs)
	}
	for i, e := range evs {
		if e.CallID != "c" || !maps.Equal(e.Fields, want[i]) {
			t.Errorf("%s:\n got %q\nwant %q", e.Type, e.Fields, want[i])
		}
	}
	if evs[0].Type != transcript.Partial || evs[1].Type != transcript.Final {
		t.Errorf("types %s, %s", evs[0].Type, evs[1].Type)
	}
}
