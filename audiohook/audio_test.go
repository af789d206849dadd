package audiohook

import "testing"

// The timeline maps positions on both sides of a pause: the audio before
// it keeps its positions (a final that comes after the resume, for words
// said before the pause, is where they were said), the audio after it
// continues from the position where the pause began.
func TestTimelineAcrossAPause(t *testing.T) {
	const sec = 8000 // positions: 8 kHz; the timeline: 16 kHz
	var tl timeline
	// Paused at 6.1 s for 10 s, resumed with nothing discarded.
	tl.mark(61*sec/10, 2*(61*sec/10+10*sec))
	for _, tc := range []struct{ at, pos int64 }{
		{0, 0},
		{2 * 5 * sec, 5 * sec}, // before the pause
		{2 * (61*sec/10 + 10*sec), 61 * sec / 10}, // where it resumed
		{2 * (7*sec + 10*sec), 7 * sec},           // after it
	} {
		if got := tl.position(tc.at); got != tc.pos {
			t.Errorf("position(%d) = %d, want %d", tc.at, got, tc.pos)
		}
		if got := tl.at(tc.pos); got != tc.at {
			t.Errorf("at(%d) = %d, want %d", tc.pos, got, tc.at)
		}
	}
}

// With more jumps than it keeps, the timeline maps the times before its
// oldest mark by the last mark it dropped.
func TestTimelineDropsOldMarks(t *testing.T) {
	var tl timeline
	for i := int64(1); i <= maxMarks+1; i++ {
		tl.mark(100*i, 300*i) // each jump: 100 samples of the timeline unsent
	}
	if len(tl.marks) != maxMarks {
		t.Fatalf("%d marks kept, want %d", len(tl.marks), maxMarks)
	}
	if got := tl.position(350); got != 100+25 {
		t.Errorf("position(350) = %d, want 125 (by the dropped mark at 300)", got)
	}
	if got := tl.position(650); got != 200+25 {
		t.Errorf("position(650) = %d, want 225", got)
	}
}
