package asr

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
)

// The context graph scores as sherpa-onnx's: each token extending a match
// earns its score, a failed partial match gives it back, a completed phrase
// keeps it and starts over; of two phrases sharing a prefix the longer one
// continues.
func TestContextGraphScores(t *testing.T) {
	initRuntime(t)
	info, err := LoadModelInfo(ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	tok := NewTokenizer(info)
	g, err := NewContextGraph(tok, []Phrase{{Text: "credit card"}, {Text: "credit", Score: 3}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(s string) []int {
		x, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	walk := func(tokens []int) (float32, *ctxNode) {
		var total float32
		st := g.root
		for _, id := range tokens {
			var s float32
			s, st = g.forward(st, id)
			total += s
		}
		return total, st
	}
	credit, card := ids("credit"), ids("card")
	// "credit" completes the phrase of score 3: 3 per token, kept, back at the start.
	if got, st := walk(credit); got != 3*float32(len(credit)) || st != g.root {
		t.Errorf("credit: %v, state %p", got, st)
	}
	// Half a phrase, then something else: the bonus is given back.
	if got, _ := walk(append(credit[:1:1], ids("zebra")...)); got != 0 {
		t.Errorf("a failed match keeps %v", got)
	}
	// Nothing of a phrase: nothing.
	if got, _ := walk(ids("hello there")); got != 0 {
		t.Errorf("no phrase: %v", got)
	}
	// The whole longer phrase after its prefix phrase was completed: "credit"
	// ended a phrase (back at the start), so "card" alone earns nothing.
	if got, _ := walk(append(append([]int{}, credit...), card...)); got != 3*float32(len(credit)) {
		t.Errorf("credit card: %v", got)
	}
}

func TestParsePhrases(t *testing.T) {
	got, err := ParsePhrases(" Acme Cloud:2.5, cancel my account ,, speak-to a manager")
	if err != nil || len(got) != 3 || got[0] != (Phrase{"Acme Cloud", 2.5}) || got[2].Text != "speak to a manager" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"x:0", "x:abc", "x:99", strings.Repeat("a", 101), "drop; table", strings.Repeat("a,", MaxPhrases+1)} {
		if _, err := ParsePhrases(bad); !errors.Is(err, ErrPhrases) {
			t.Errorf("%.40q: %v", bad, err)
		}
	}
}

// Hotwords change what beam search writes: phrases the model gets wrong
// alone come out right; a greedy batcher refuses them.
func TestHotwordsBias(t *testing.T) {
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{Decoding: ModifiedBeamSearch})
	phrases, _ := ParsePhrases("credit card, inconvenience, patience")
	g, err := NewContextGraph(NewTokenizer(b.info), phrases, DefaultHotwordsScore)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ wav, want string }{
		{"u13-8k.wav", "CREDIT CARD"}, {"u20-16k.wav", "INCONVENIENCE"}, {"u19-8k.wav", "PATIENCE"},
	} {
		a, err := media.ReadWAVFile(filepath.Join("testdata", "parity", tc.wav))
		if err != nil {
			t.Fatal(err)
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			x, _ = media.ResampleFilter(x, a.SampleRate, 16000, media.FilterKaldi)
		}
		plain, _ := DecodeAll(b, [][]float32{x}, 100)
		biased, _ := DecodeAllWith(b, [][]float32{x}, 100, StreamOptions{Hotwords: g})
		p, h := FinalText(plain[0]), FinalText(biased[0])
		if strings.Contains(p, tc.want) || !strings.Contains(h, tc.want) {
			t.Errorf("%s: without hotwords %q, with %q (want %q only with)", tc.wav, p, h, tc.want)
		}
	}
	greedy := newTestBatcher(t, ModelFiles{}, BatcherOptions{})
	if _, err := greedy.NewStreamWith("x", func(Result) {}, StreamOptions{Hotwords: g}); !errors.Is(err, ErrHotwordsNeedBeam) {
		t.Errorf("greedy with hotwords: %v", err)
	}
}
