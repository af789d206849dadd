package asr

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenizer encodes text into the model's BPE pieces from its symbol table
// alone (tokens.txt: there is no bpe.model beside the model): a word
// becomes "▁" + its letters, segmented as sentencepiece's unigram model
// would with probabilities estimated from the piece ranks
// (TestTokenizerMatchesModel: the model's own spelling of the words it
// writes, 180 of 183 on the test corpus).
type Tokenizer struct {
	ids    map[string]int
	maxLen int // longest piece, in bytes
	upper  bool
}

// NewTokenizer reads the pieces of the model's symbol table.
func NewTokenizer(info *ModelInfo) *Tokenizer {
	t := &Tokenizer{ids: map[string]int{}}
	lower := 0
	for id, sym := range info.Tokens {
		if id == info.BlankID || id == info.UnkID || sym == "" || strings.HasPrefix(sym, "<") {
			continue
		}
		t.ids[sym] = id
		t.maxLen = max(t.maxLen, len(sym))
		for _, r := range sym {
			if unicode.IsLower(r) {
				lower++
			}
		}
	}
	t.upper = lower == 0 // an upper-case vocabulary (the English zipformers)
	return t
}

// Encode splits text into words and each into pieces. A word the table
// cannot spell is an error naming it.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	if t.upper {
		text = strings.ToUpper(text)
	}
	var out []int
	for _, w := range strings.Fields(text) {
		ids, ok := t.word("\u2581" + w)
		if !ok {
			return nil, fmt.Errorf("asr: %q cannot be spelled with the model's tokens", w)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// PieceScore is the log probability the tokenizer gives the piece of id
// (-log(id+10): Zipf over the rank).
func PieceScore(id int) float64 { return -math.Log(float64(id + 10)) }

// word spells one word (with its leading "▁") as a sentencepiece unigram
// model does: the segmentation of highest total log probability (Viterbi).
// The table has no probabilities, but sentencepiece numbers pieces in
// decreasing probability, so a piece of id i is scored -log(i+10) (Zipf
// over the rank; the offset fitted on the model's own spellings).
func (t *Tokenizer) word(w string) ([]int, bool) {
	n := len(w)
	score := make([]float64, n+1) // best log probability of w[:j]
	from := make([]int, n+1)      // where its last piece starts; -1: unreachable
	for j := 1; j <= n; j++ {
		from[j] = -1
		if j < n && !utf8.RuneStart(w[j]) {
			continue
		}
		for i := max(0, j-t.maxLen); i < j; i++ {
			if (i > 0 && from[i] < 0) || !utf8.RuneStart(w[i]) {
				continue
			}
			id, ok := t.ids[w[i:j]]
			if !ok {
				continue
			}
			if s := score[i] + PieceScore(id); from[j] < 0 || s > score[j] {
				score[j], from[j] = s, i
			}
		}
	}
	if from[n] < 0 {
		return nil, false
	}
	var ids []int
	for j := n; j > 0; j = from[j] {
		ids = append(ids, t.ids[w[from[j]:j]])
	}
	slices.Reverse(ids)
	return ids, true
}
