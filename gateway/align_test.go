package gateway

import (
	"strings"
	"testing"

	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/word"
)

// firstPass is words 500 ms apart, each 400 ms long, from 1000 ms.
func firstPass(s string) []word.Word {
	var out []word.Word
	for i, f := range strings.Fields(s) {
		at := 1000 + int64(i)*500
		out = append(out, word.Word{Text: f, StartMs: at, EndMs: at + 400, Conf: 0.5})
	}
	return out
}

func mwords(s string) []moonshine.Word {
	var out []moonshine.Word
	for _, f := range strings.Fields(s) {
		out = append(out, moonshine.Word{Text: f, Conf: 0.9})
	}
	return out
}

func TestSecondWordsOnFirstPassTimes(t *testing.T) {
	for _, tc := range []struct {
		first, second string
		words         string  // spoken form
		times         []int64 // start, end of each word
	}{
		{"CAN YOU HEAR ME CLEARLY NOW", "Can you hear me clearly now?", "CAN YOU HEAR ME CLEARLY NOW",
			[]int64{1000, 1400, 1500, 1900, 2000, 2400, 2500, 2900, 3000, 3400, 3500, 3900}},
		// A substitution keeps its place; a numeral matches its words.
		{"DIAL TWO KNOW", "Dial 2 now.", "DIAL 2 NOW", []int64{1000, 1400, 1500, 1900, 2000, 2400}},
		// One numeral for three words takes all their time.
		{"I OWE TWO HUNDRED FIFTY", "I owe 250.", "I OWE 250", []int64{1000, 1400, 1500, 1900, 2000, 3400}},
		// A word the first pass missed shares the time between its
		// neighbours.
		{"HELLO THERE", "Hello, out there.", "HELLO OUT THERE", []int64{1000, 1400, 1400, 1500, 1500, 1900}},
		// No word matches: substitutions take the times in order.
		{"AH", "Yes.", "YES", []int64{1000, 1400}},
	} {
		words, display := secondWords(firstPass(tc.first), mwords(tc.second), 900, 4000)
		if word.Join(words) != tc.words {
			t.Errorf("%q: words %q, want %q", tc.second, word.Join(words), tc.words)
			continue
		}
		for i, w := range words {
			if w.StartMs != tc.times[2*i] || w.EndMs != tc.times[2*i+1] || w.Conf != 0.9 {
				t.Errorf("%q: word %q at %d-%d (%v), want %d-%d", tc.second, w.Text, w.StartMs, w.EndMs, w.Conf, tc.times[2*i], tc.times[2*i+1])
			}
			d := display[i]
			if d.From != i || d.To != i+1 || d.StartMs != w.StartMs || d.EndMs != w.EndMs {
				t.Errorf("%q: display token %+v for word %d", tc.second, d, i)
			}
		}
		var disp []string
		for _, d := range display {
			disp = append(disp, d.Text)
		}
		if strings.Join(disp, " ") != tc.second {
			t.Errorf("display %q, want %q", disp, tc.second)
		}
	}
	if w, d := secondWords(firstPass("UH"), mwords("..."), 0, 100); w != nil || d != nil {
		t.Errorf("punctuation alone made %v %v", w, d)
	}
}

// A word the first pass missed at an edge of the utterance, where the
// utterance begins with the first word (or ends with the last), has no
// time between its neighbours (a syllable cut by a pause, heard as a word
// of its own): it shares the time of the word beside it, so that no two
// words start together and none is empty.
func TestSecondWordsAtTheEdges(t *testing.T) {
	for _, tc := range []struct {
		first, second string
		start, end    int64   // the utterance's
		times         []int64 // start, end of each word
	}{
		{"REGARDING MY ORDER", "To regarding my order.", 1000, 2400, []int64{1000, 1200, 1200, 1400, 1500, 1900, 2000, 2400}},
		{"HELLO THERE", "Hello there, too.", 1000, 1900, []int64{1000, 1400, 1500, 1700, 1700, 1900}},
	} {
		words, _ := secondWords(firstPass(tc.first), mwords(tc.second), tc.start, tc.end)
		if len(words) != len(tc.times)/2 {
			t.Fatalf("%q: words %q", tc.second, word.Join(words))
		}
		for i, w := range words {
			if w.StartMs != tc.times[2*i] || w.EndMs != tc.times[2*i+1] {
				t.Errorf("%q: word %q at %d-%d, want %d-%d", tc.second, w.Text, w.StartMs, w.EndMs, tc.times[2*i], tc.times[2*i+1])
			}
		}
	}
}
