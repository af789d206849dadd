package audiohook

import (
	"log/slog"
	"testing"
	"time"

	"github.com/callscribe/callscribe/media"
)

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

// A time inside a pause, where the timeline jumped and no audio was (a
// word the recognizer placed in the silence after the last syllable
// before the pause), is at the position where the pause began, not past
// it.
func TestTimelineInsideAPause(t *testing.T) {
	const sec = 8000
	var tl timeline
	tl.mark(8*sec, 2*(8*sec+10*sec)) // paused at 8 s for 10 s
	for _, at := range []int64{2 * 8 * sec, 2 * 9 * sec, 2*(8*sec+10*sec) - 1} {
		if got := tl.position(at); got != 8*sec {
			t.Errorf("position(%d) = %d, want %d", at, got, 8*sec)
		}
	}
}

// skipSink records what a channel gives its leg.
type skipSink struct {
	written int64 // samples
	next    int64 // the timeline index after the last write
	skipped []int64
}

func (s *skipSink) WriteAudio(at int64, x []float32) {
	s.written += int64(len(x))
	s.next = at + int64(len(x))
}
func (s *skipSink) SkipAudio(at int64) { s.skipped = append(s.skipped, at) }

// Audio the client discarded is skipped, not heard: the leg is told where
// its timeline goes on and given no silence for the span; the positions
// after it are past it on the timeline.
func TestDiscardSkips(t *testing.T) {
	sink := &skipSink{}
	a, err := newAudio(Media{Format: "L16", Channels: []string{"external"}, Rate: 8000}, []media.Sink{sink})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	frame := make([]byte, 2*1600) // 200 ms
	for range 5 {
		if err := a.frame(frame, start, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	before := sink.written
	a.skip(4000, start, time.Now()) // 500 ms
	if sink.written-before > 200 {  // the resampler's tail, a few ms
		t.Fatalf("%d samples written for the skip", sink.written-before)
	}
	if len(sink.skipped) != 1 || sink.skipped[0] != 2*(8000+4000) {
		t.Fatalf("skipped to %v, want [%d]", sink.skipped, 2*(8000+4000))
	}
	if err := a.frame(frame, start, time.Now()); err != nil {
		t.Fatal(err)
	}
	if a.pos != 8000+4000+1600 {
		t.Fatalf("position %d", a.pos)
	}
	if got := a.timeline.position(2 * (8000 + 4000 + 800)); got != 8000+4000+800 {
		t.Errorf("100 ms after the skip: position %d, want %d", got, 8000+4000+800)
	}
	if got := a.timeline.position(2 * 4000); got != 4000 {
		t.Errorf("before the skip: position %d, want 4000", got)
	}
}

// Where a discarded or resumed message says the stream goes on: at its
// position, which a client gives after the span it reports; when the two
// disagree the position is taken, the span's end only when there is no
// position; never back over audio received.
func TestAdvance(t *testing.T) {
	sec := func(s float64) Duration { return Duration(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		name                       string
		received                   float64
		position, start, discarded Duration
		want                       int64 // 8 kHz samples
	}{
		{"consistent", 8, sec(8.5), sec(8), sec(0.5), 4000},
		{"the span past the position", 8, sec(8), sec(8), sec(0.5), 0},
		{"the span before the position", 8, sec(9), sec(8), sec(0.5), 8000},
		{"no position", 8, 0, sec(8), sec(0.5), 4000},
		{"behind the audio received", 8, sec(7), sec(6.5), sec(0.5), 0},
	} {
		s := &session{log: slog.New(slog.DiscardHandler), audio: &audio{pos: int64(tc.received * 8000)}}
		m := &ClientMessage{Type: TypeDiscarded, Position: tc.position, Start: tc.start, Discarded: tc.discarded}
		if got := s.advance(m); got != tc.want {
			t.Errorf("%s: advance %d, want %d", tc.name, got, tc.want)
		}
	}
}
