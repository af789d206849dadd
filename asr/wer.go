package asr

import "strings"

// WordErrors scores a transcript against a reference: the word-level edit
// distance (substitutions, insertions, deletions; case ignored) and the
// number of reference words. The word error rate is errors/words.
func WordErrors(ref, hyp string) (errors, words int) {
	r, h := strings.Fields(strings.ToUpper(ref)), strings.Fields(strings.ToUpper(hyp))
	prev, cur := make([]int, len(h)+1), make([]int, len(h)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(r); i++ {
		cur[0] = i
		for j := 1; j <= len(h); j++ {
			sub := prev[j-1]
			if r[i-1] != h[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(h)], len(r)
}
