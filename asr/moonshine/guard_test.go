package moonshine

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLoopLen(t *testing.T) {
	seq := func(s string) []int64 {
		var out []int64
		for _, f := range strings.Fields(s) {
			out = append(out, int64(f[0]))
		}
		return out
	}
	for _, tc := range []struct {
		toks string
		want int
	}{
		{"", 0},
		{"a b c", 0},
		{strings.Repeat("_ 1 1 1 1 ", 4), 0},                 // a card of ones: 20 tokens
		{strings.Repeat("y e s , ", 5), 0},                   // yes, yes, ... 20
		{strings.Repeat("1 ", 23), 0},                        // one token, 23 times
		{strings.Repeat("1 ", 24), 23},                       // 24 times
		{"x y " + strings.Repeat("a b c d e f g h ", 3), 16}, // 8 tokens thrice after others
		{strings.Repeat("a b c d e f g h ", 2), 0},           // twice is not a loop
	} {
		if got := loopLen(seq(tc.toks)); got != tc.want {
			t.Errorf("loopLen(%q) = %d, want %d", tc.toks, got, tc.want)
		}
	}
}

// repeated is x said n times, 200 ms apart.
func repeated(x []float32, n int) []float32 {
	var out []float32
	gap := make([]float32, SampleRate/5)
	for range n {
		out = append(append(out, x...), gap...)
	}
	return out
}

// The same request said three times in one 12 s segment makes the tiny
// model loop on it: the repetition stop ends the text with the loop once,
// and says so.
func TestRepetitionStop(t *testing.T) {
	x := readWAV(t, "../testdata/parity/u01-8k.wav")
	r := testModel(t, "tiny", Options{})
	res, err := r.Recognize([][]float32{x, repeated(x, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Stop != StopEnd || !strings.Contains(res[0].Text, "status of my order") {
		t.Fatalf("once: %q (%v)", res[0].Text, res[0].Stop)
	}
	if res[1].Stop != StopRepeat || strings.Count(res[1].Text, "status") != 1 {
		t.Errorf("three times: %q (%v), want the loop once, stopped as a repeat", res[1].Text, res[1].Stop)
	}
}

// The token budget stops a text that goes on past what the audio can
// hold.
func TestTokenBudgetStop(t *testing.T) {
	x := readWAV(t, "../testdata/parity/u01-8k.wav")
	r := testModel(t, "tiny", Options{TokensPerSecond: 2})
	res, err := r.Recognize([][]float32{x})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Stop != StopBudget || len(strings.Fields(res[0].Text)) >= 10 {
		t.Errorf("%q (%v), want a text cut by the budget", res[0].Text, res[0].Stop)
	}
}

// Silence and noise become no text.
func TestNoTextFromSilenceOrNoise(t *testing.T) {
	noise := make([]float32, 5*SampleRate)
	var seed uint32 = 1
	for i := range noise {
		seed = seed*1664525 + 1013904223
		noise[i] = (float32(seed>>8)/float32(1<<24) - 0.5) * 0.05
	}
	r := testModel(t, "tiny", Options{})
	res, err := r.Recognize([][]float32{noise, make([]float32, 5*SampleRate)})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if x.Text != "" {
			t.Errorf("segment %d: %q", i, x.Text)
		}
	}
}

// Split cuts a long segment in its pauses, every piece within the bound.
func TestSplitAtTheQuietest(t *testing.T) {
	x := readWAV(t, "../testdata/parity/u01-8k.wav")
	long := repeated(x, 5) // 20.6 s: speech, 200 ms of silence, speech...
	maxLen := 8 * SampleRate
	pieces := Split(long, maxLen)
	if len(pieces) < 3 {
		t.Fatalf("%d pieces", len(pieces))
	}
	rms := func(x []float32) float64 {
		var e float64
		for _, v := range x {
			e += float64(v) * float64(v)
		}
		return math.Sqrt(e / float64(len(x)))
	}
	all, at := rms(long), 0
	for i, p := range pieces {
		if len(p) > maxLen {
			t.Errorf("piece %d: %d samples", i, len(p))
		}
		at += len(p)
		if i < len(pieces)-1 {
			if r := rms(long[at-SampleRate/20 : at+SampleRate/20]); r > all/10 {
				t.Errorf("cut %d at %.2f s is not in a pause: rms %.4f of %.4f", i, float64(at)/SampleRate, r, all)
			}
		}
	}
	if at != len(long) {
		t.Errorf("pieces hold %d samples of %d", at, len(long))
	}
	if p := Split(x, maxLen); len(p) != 1 || len(p[0]) != len(x) {
		t.Error("a short segment was cut")
	}
}

// A result's words are its text's, each with a confidence.
func TestResultWords(t *testing.T) {
	r := testModel(t, "tiny", Options{})
	var segs [][]float32
	for _, f := range []string{"u01-8k.wav", "u03-8k.wav", "u05-8k.wav"} {
		segs = append(segs, readWAV(t, "../testdata/parity/"+f))
	}
	res, err := r.Recognize(segs)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res {
		var texts []string
		for _, w := range x.Words {
			texts = append(texts, w.Text)
			if w.Conf <= 0 || w.Conf > 1 {
				t.Errorf("%q: confidence %v", w.Text, w.Conf)
			}
		}
		if strings.Join(texts, " ") != x.Text || x.Text == "" {
			t.Errorf("words %q, text %q", texts, x.Text)
		}
		t.Logf("%+v", x.Words)
	}
}

// Cost decodes the tokens asked for: more tokens take longer.
func TestCost(t *testing.T) {
	r := testModel(t, "tiny", Options{})
	few, err := r.Cost(4, 4*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	many, err := r.Cost(4, 4*time.Second, 24)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4 × 4 s: %v with 2 tokens, %v with 24", few, many)
	if many <= few {
		t.Errorf("24 tokens took %v, 2 took %v", many, few)
	}
	x := readWAV(t, "../testdata/parity/u03-8k.wav")
	if res, err := r.Recognize([][]float32{x}); err != nil || res[0].Text != "Can you hear me clearly now?" {
		t.Errorf("after Cost: %+v, %v", res, err)
	}
}
