package asr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
)

// The tokenizer spells the words the model writes as the model does: the
// words of the finals of the test WAVs and the parity corpus, encoded from
// their text, give the token ids the model emitted for them (at least 97%).
func TestTokenizerMatchesModel(t *testing.T) {
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{Workers: 1})
	tok := NewTokenizer(b.info)
	paths, _ := filepath.Glob("testdata/parity/*.wav")
	for _, n := range []string{"0.wav", "1.wav", "8k.wav"} {
		paths = append(paths, filepath.Join(asrtest.ModelDir(t), "test_wavs", n))
	}
	var mu sync.Mutex
	words := map[string][]int{} // word → the ids the model emitted
	for _, p := range paths {
		a, err := media.ReadWAVFile(p)
		if err != nil {
			t.Fatal(err)
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			x, _ = media.ResampleFilter(x, a.SampleRate, 16000, media.FilterKaldi)
		}
		var s *Stream
		s, err = b.NewStream(p, func(r Result) {
			if r.Kind != Final {
				return
			}
			// On the worker, before the utterance is reset: its tokens.
			var cur []int
			flush := func() {
				if len(cur) > 0 {
					var sb strings.Builder
					for _, id := range cur {
						sb.WriteString(b.info.Tokens[id])
					}
					mu.Lock()
					words[strings.TrimPrefix(sb.String(), "\u2581")] = cur
					mu.Unlock()
				}
			}
			for _, id := range s.tokens[b.info.ContextSize:] {
				if strings.HasPrefix(b.info.Tokens[id], "\u2581") {
					flush()
					cur = nil
				}
				cur = append(cur, int(id))
			}
			flush()
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Accept(x)
		s.Finish()
		<-s.Done()
	}
	if f := os.Getenv("TOKENIZER_DUMP"); f != "" {
		var sb strings.Builder
		for w, ids := range words {
			fmt.Fprintf(&sb, "%s\t%v\n", w, ids)
		}
		os.WriteFile(f, []byte(sb.String()), 0o644)
	}
	same := 0
	for w, want := range words {
		got, err := tok.Encode(w)
		if err != nil || !equalInts(got, want) {
			t.Logf("%s: encoded %v (%v), the model wrote %v", w, got, err, want)
			continue
		}
		same++
	}
	t.Logf("%d of %d words spelled as the model spells them", same, len(words))
	// The piece probabilities are estimated: a few spellings may differ
	// (180 of 183 when this was written: LINE, PARENT and a non-word).
	if len(words) < 100 || same < len(words)*97/100 {
		t.Errorf("%d of %d words spelled as the model spells them", same, len(words))
	}
	if _, err := tok.Encode("hello WORLD"); err != nil {
		t.Error(err)
	}
	if _, err := tok.Encode("naïve 日本"); err == nil {
		t.Error("letters outside the vocabulary encoded")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
