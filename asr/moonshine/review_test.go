package moonshine

import "testing"

// A segment that one cut can bring within maxLen is cut once, in its
// pause: Split chooses the quietest 100 ms window among those ending in
// [len-maxLen, maxLen] but cuts in the window's middle, half a window
// before the range, so the right piece comes out maxLen+800 samples long
// and is cut again where there is no pause (here in the middle of the
// noise that stands for speech; with MaxSegment 15 s, a 15.1 s final gets
// a 50 ms sliver and a cut through a word).
func TestSplitOneCutWhenOneFits(t *testing.T) {
	const win = SampleRate / 10
	noise := func(n int) []float32 {
		x := make([]float32, n)
		var seed uint32 = 7
		for i := range x {
			seed = seed*1664525 + 1013904223
			x[i] = (float32(seed>>8)/float32(1<<24) - 0.5) * 0.5
		}
		return x
	}
	for _, c := range []struct {
		name   string
		x      []float32
		maxLen int
		pause  [2]int // where the cut belongs, [from, to)
	}{
		func() (c struct {
			name   string
			x      []float32
			maxLen int
			pause  [2]int
		}) {
			// 1 s of "speech", a 200 ms pause, 5 s of "speech": one cut in
			// the pause's second half leaves both pieces within maxLen.
			a, p := SampleRate, 2*win
			x := append(append(noise(a), make([]float32, p)...), noise(5*SampleRate)...)
			c.name, c.x, c.maxLen, c.pause = "pause near the left end of the range", x, len(x)-(a+win+win/4), [2]int{a, a + p}
			return c
		}(),
		{name: "silence just over maxLen", x: make([]float32, 4*SampleRate+win+1), maxLen: 4 * SampleRate, pause: [2]int{0, 4*SampleRate + win + 1}},
	} {
		pieces := Split(c.x, c.maxLen)
		var lens []int
		at := 0
		for _, p := range pieces {
			lens = append(lens, len(p))
			if len(p) > c.maxLen {
				t.Errorf("%s: a piece of %d samples, max %d", c.name, len(p), c.maxLen)
			}
		}
		if len(pieces) != 2 {
			t.Errorf("%s: %d pieces %v (max %d), want 2: one cut fits", c.name, len(pieces), lens, c.maxLen)
		}
		for _, p := range pieces[:len(pieces)-1] {
			at += len(p)
			if at < c.pause[0] || at > c.pause[1] {
				t.Errorf("%s: cut at %d, not in the pause %v", c.name, at, c.pause)
			}
		}
	}
}
