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
	// The cut lies where the left piece is at least a window and neither
	// side is longer than maxLen: [len-maxLen, maxLen] when the whole
	// needs one cut; otherwise the left piece takes maxLen at most and the
	// right is split again.
	lo := max(len(x)-maxLen, win)
	hi := min(maxLen, len(x)-win)
	if lo > hi { // more than two pieces: the left one as full as the quiet allows
		lo, hi = maxLen/2, maxLen
	}
	best, bestE := hi, float32(-1)
	var e float32
	for i := lo - win; i < lo; i++ {
		e += x[i] * x[i]
	}
	for c := lo; c <= hi; c++ { // e: energy of x[c-win:c]
		if bestE < 0 || e < bestE {
			best, bestE = c, e
		}
		if c < len(x) {
			e += x[c]*x[c] - x[c-win]*x[c-win]
		}
	}
	cut := best - win/2 // the middle of the quiet window
	return append([][]float32{x[:cut]}, Split(x[cut:], maxLen)...)
}
