package gateway

import (
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/word"
)

// What the second pass decides for one final, apart from when and where it
// runs: which audio it hears, how that is cut, whether its text is used,
// and the final made of it. A leg (leg_pass.go) and the stage
// (secondpass.go) decide so live; `callscribe transcribe -final-model`
// decides the same for the finals of a file, offline.

// passMargin is the audio taken before a final's first word for its second
// pass (not into the previous final's), and passTrail the most taken after
// its last, up to where its utterance ended: the streaming model emits a
// word's tokens after its sound begins, and may miss the last words.
const (
	passMargin = 500 * time.Millisecond
	passTrail  = time.Second
)

// PassSkipped reports whether a final has nothing to hear again (no words,
// or the VAD heard no speech in it): its second_pass is "skipped".
func PassSkipped(r asr.Result) bool { return len(r.Words) == 0 || r.NoSpeech }

// PassSpan is the audio a final's second pass hears, [lo, hi) in stream
// ms: from passMargin before its first word (start), not before from (where
// the previous final's span ended, 0 for a stream's first), to where its
// utterance ended (endpoint), at most passTrail after its last word (end).
// hi is the next final's from.
func PassSpan(start, end, endpoint, from int64) (lo, hi int64) {
	lo = max(start-passMargin.Milliseconds(), from)
	hi = min(max(endpoint, end), end+passTrail.Milliseconds())
	return lo, hi
}

// PassPieces cuts a final's audio (16 kHz) into the segments recognized:
// at its quietest moments, none longer than maxSegment.
func PassPieces(audio []float32, maxSegment time.Duration) [][]float32 {
	return moonshine.Split(audio, int(maxSegment.Seconds()*moonshine.SampleRate))
}

// PassWords is the guard: the words of a final's pieces, recognized, or why
// they are not used (FallbackGuard): a piece stopped other than at its end
// (it used its token budget or looped), or the text is empty or has more
// than twice the first pass's words (firstWords) plus six.
func PassWords(pieces []moonshine.Result, firstWords int) ([]moonshine.Word, string) {
	var words []moonshine.Word
	reason, said := "", 0
	for _, r := range pieces {
		if r.Stop != moonshine.StopEnd {
			reason = FallbackGuard
		}
		for _, w := range r.Words {
			if spoken(w.Text) != "" { // not punctuation alone
				said++
			}
		}
		words = append(words, r.Words...)
	}
	if said == 0 || said > 2*firstWords+6 {
		reason = FallbackGuard
	}
	if reason != "" {
		return nil, reason
	}
	return words, ""
}

// HeardAgain is final r with the words of its second pass (secondWords):
// its words, text and confidence theirs, on the times of r's words, and
// their display tokens. r stays as it is, with nil tokens, when they are
// all punctuation.
func HeardAgain(r asr.Result, second []moonshine.Word) (asr.Result, []word.Token) {
	words, display := secondWords(r.Words, second, r.StartMs, r.EndMs)
	if words != nil {
		r.Words, r.Text, r.Conf = words, word.Join(words), meanConf(words)
	}
	return r, display
}

func meanConf(words []word.Word) float32 {
	var c float32
	for _, w := range words {
		c += w.Conf
	}
	return c / float32(max(len(words), 1))
}
