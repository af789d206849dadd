package gateway

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/word"
)

// A second pass writes what was said as people read it ("Dial 2 now.") and
// has no times of its own. secondWords makes a final of it: words in the
// streaming model's spoken form (upper case, the punctuation around each
// word dropped: "DIAL 2 NOW"), and the second pass's own words as the
// display tokens, one for one. Times come from the first pass: the two
// word lists are aligned (edit distance, a word matching its equal or a
// numeral its number word), a word aligned with a first-pass word takes
// its times (and those of the first-pass words left unaligned after it),
// and words with no counterpart share the time between their neighbours.

// secondWords returns a second pass's words and display tokens on the
// times of first, the first pass's words of the same utterance (on the same
// clock), within [startMs, endMs].
func secondWords(first []word.Word, second []moonshine.Word, startMs, endMs int64) ([]word.Word, []word.Token) {
	var words []word.Word
	var display []word.Token
	for _, w := range second {
		up := spoken(w.Text)
		if up == "" {
			continue // punctuation alone
		}
		words = append(words, word.Word{Text: up, Conf: w.Conf})
		display = append(display, word.Token{Text: w.Text, From: len(words) - 1, To: len(words)})
	}
	if len(words) == 0 {
		return nil, nil
	}
	at, exact := align(first, words)
	// Aligned words take their first-pass word's times.
	aligned := make([]bool, len(words))
	for j, i := range at {
		if i >= 0 {
			aligned[i] = true
			words[i].StartMs, words[i].EndMs = first[j].StartMs, first[j].EndMs
		}
	}
	// A run of first-pass words aligned with none was said as a word
	// written otherwise beside it ("TWO HUNDRED FIFTY" as "250"): the
	// substituted neighbour after it takes their time, else the one before.
	for j := 0; j < len(at); {
		if at[j] >= 0 {
			j++
			continue
		}
		k := j
		for k < len(at) && at[k] < 0 {
			k++
		}
		switch {
		case k < len(at) && !exact[k]:
			words[at[k]].StartMs = first[j].StartMs
		case j > 0 && !exact[j-1]:
			words[at[j-1]].EndMs = first[k-1].EndMs
		}
		j = k
	}
	// The rest share the time between their neighbours.
	for i := 0; i < len(words); {
		if aligned[i] {
			i++
			continue
		}
		k := i
		for k < len(words) && !aligned[k] {
			k++
		}
		from, to := startMs, endMs
		if i > 0 {
			from = words[i-1].EndMs
		}
		if k < len(words) {
			to = words[k].StartMs
		}
		// No time between the neighbours (words the second pass heard at
		// the utterance's edge, where the first pass's first word begins:
		// a syllable cut by a pause or a gap): the run shares the time of
		// the word after it, or at the end the word before it, so that
		// each word has a time of its own and none starts with another.
		lo, hi := i, k
		if to <= from {
			switch {
			case k < len(words):
				to, hi = max(words[k].EndMs, from), k+1
			case i > 0:
				from, lo = words[i-1].StartMs, i-1
			}
		}
		to = max(to, from)
		n := int64(hi - lo)
		for x := lo; x < hi; x++ {
			words[x].StartMs = from + (to-from)*int64(x-lo)/n
			words[x].EndMs = from + (to-from)*int64(x-lo+1)/n
		}
		i = k
	}
	for x := range display {
		display[x].StartMs, display[x].EndMs = words[x].StartMs, words[x].EndMs
	}
	return words, display
}

// spoken is a word as the first pass writes it: upper case, without the
// punctuation around it ("now." → "NOW", "$250" stays, "don't" → "DON'T").
func spoken(w string) string {
	return strings.ToUpper(strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) && r != '%' }))
}

// align pairs the first-pass words with second's by least edit distance:
// for each first word, the index of the second word it is aligned with
// (equal, or substituted), or -1 (deleted), and whether they are equal.
func align(first, second []word.Word) (at []int, exact []bool) {
	n, m := len(first), len(second)
	a := make([]string, n)
	for j, w := range first {
		a[j] = key(w.Text)
	}
	b := make([]string, m)
	for i, w := range second {
		b[i] = key(w.Text)
	}
	same := func(j, i int) bool {
		if a[j] == b[i] {
			return true
		}
		v, err := strconv.ParseInt(b[i], 10, 64)
		if err != nil {
			return false
		}
		if d, ok := word.Digit(first[j].Text); ok && v == int64(d) && len(b[i]) == 1 {
			return true
		}
		c, ok := word.Cardinal(strings.ToUpper(first[j].Text))
		return ok && c == v
	}
	// cost[j][i]: edit distance of first[:j] and second[:i].
	cost := make([][]int, n+1)
	for j := range cost {
		cost[j] = make([]int, m+1)
		cost[j][0] = j
	}
	for i := range m + 1 {
		cost[0][i] = i
	}
	for j := 1; j <= n; j++ {
		for i := 1; i <= m; i++ {
			sub := cost[j-1][i-1]
			if !same(j-1, i-1) {
				sub++
			}
			cost[j][i] = min(sub, cost[j-1][i]+1, cost[j][i-1]+1)
		}
	}
	at, exact = make([]int, n), make([]bool, n)
	for j, i := n, m; j > 0; {
		switch {
		case i > 0 && cost[j][i] == cost[j-1][i-1]+boolInt(!same(j-1, i-1)):
			at[j-1], exact[j-1] = i-1, same(j-1, i-1)
			j, i = j-1, i-1
		case cost[j][i] == cost[j-1][i]+1:
			at[j-1] = -1
			j--
		default:
			i--
		}
	}
	return at, exact
}

// key is a word compared for alignment: lower case letters and digits.
func key(w string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, w)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
