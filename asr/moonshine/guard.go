package moonshine

// Split cuts a segment longer than maxLen samples into pieces of at most
// maxLen, each cut at the quietest moment it can be: the 100 ms window of
// least energy where both sides fit (recursively). The model makes text up
// on long segments; a cut in a pause costs no word. A segment that fits
// is returned as it is.
func Split(x []float32, maxLen int) [][]float32 {
	const win = SampleRate / 10
	if maxLen < 2*win || len(x) <= maxLen {
		return [][]float32{x}
	}
	// The cut lies where neither side is longer than maxLen, in
	// [len-maxLen, maxLen], when the whole needs one cut; otherwise the left
	// piece takes maxLen at most and the right is split again. It is the
	// middle of the quietest window.
	h := win / 2
	lo := max(len(x)-maxLen, h)
	hi := min(maxLen, len(x)-h)
	if lo > hi { // more than two pieces: the left one as full as the quiet allows
		lo, hi = maxLen/2, maxLen
	}
	var e float32 // energy of x[c-h : c+h]
	for _, v := range x[lo-h : lo+h] {
		e += v * v
	}
	cut, least := lo, e
	for c := lo + 1; c <= hi; c++ {
		e += x[c+h-1]*x[c+h-1] - x[c-h-1]*x[c-h-1]
		if e < least {
			cut, least = c, e
		}
	}
	return append([][]float32{x[:cut]}, Split(x[cut:], maxLen)...)
}
