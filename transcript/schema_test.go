package transcript

import (
	"maps"
	"testing"

	"github.com/callscribe/callscribe/word"
)

// A final's fields are the wire format (docs/wire-format.md) to the byte:
// "words" carry conf (0 for a marker), "display_words" do not, nor the
// tokens' word indexes.
func TestFinalFields(t *testing.T) {
	cases := []struct {
		name string
		u    Utterance
		want map[string]string
	}{{
		name: "redacted and formatted",
		u: Utterance{Leg: "caller", Utt: 2, Text: "MY CARD [CARD]", StartMs: 100, EndMs: 2000, Conf: 0.45, Redacted: "pci",
			Words: []word.Word{{Text: "MY", StartMs: 100, EndMs: 300, Conf: 0.9}, {Text: "CARD", StartMs: 300, EndMs: 400, Conf: 0.5},
				{Text: "[CARD]", StartMs: 400, EndMs: 2000}},
			Display: "My card [CARD]",
			DisplayWords: []word.Token{{Text: "My", StartMs: 100, EndMs: 300, From: 0, To: 1},
				{Text: "card", StartMs: 300, EndMs: 400, From: 1, To: 2}, {Text: "[CARD]", StartMs: 400, EndMs: 2000, From: 2, To: 3}}},
		want: map[string]string{"leg": "caller", "utt": "2", "text": "MY CARD [CARD]", "start_ms": "100", "end_ms": "2000",
			"redacted": "pci", "conf": "0.450",
			"words": `[{"word":"MY","start_ms":100,"end_ms":300,"conf":0.9},{"word":"CARD","start_ms":300,"end_ms":400,"conf":0.5},` +
				`{"word":"[CARD]","start_ms":400,"end_ms":2000,"conf":0}]`,
			"display": "My card [CARD]",
			"display_words": `[{"word":"My","start_ms":100,"end_ms":300},{"word":"card","start_ms":300,"end_ms":400},` +
				`{"word":"[CARD]","start_ms":400,"end_ms":2000}]`},
	}, {
		name: "no words, formatted",
		u:    Utterance{Leg: "agent", GapMs: 640, DisplayWords: []word.Token{}},
		want: map[string]string{"leg": "agent", "utt": "0", "text": "", "start_ms": "0", "end_ms": "0", "conf": "0.000",
			"words": "[]", "display": "", "display_words": "[]", "gap_ms": "640"},
	}, {
		name: "not formatted",
		u:    Utterance{Leg: "caller", Text: "HI", Words: []word.Word{{Text: "HI", StartMs: 10, EndMs: 20, Conf: 1}}, Conf: 1},
		want: map[string]string{"leg": "caller", "utt": "0", "text": "HI", "start_ms": "0", "end_ms": "0", "conf": "1.000",
			"words": `[{"word":"HI","start_ms":10,"end_ms":20,"conf":1}]`},
	}}
	for _, c := range cases {
		e := NewFinal("c", c.u)
		if e.Type != Final || !maps.Equal(e.Fields, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, e.Fields, c.want)
		}
	}
}
