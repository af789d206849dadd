package audiosocket

import (
	"math"
	"testing"
	"time"

	"github.com/callscribe/callscribe/audiosocket/audiosockettest"
)

// blocks records what a leg writes, and fails the test if a block starts
// before the previous one ended (the media.Sink contract).
type blocks struct {
	t     testing.TB
	at    []int64
	n     []int
	total int
	end   int64
	x     []float32
}

func (b *blocks) WriteAudio(at int64, x []float32) {
	if at < b.end {
		b.t.Fatalf("block at %d before the previous end %d", at, b.end)
	}
	b.at, b.n = append(b.at, at), append(b.n, len(x))
	b.total += len(x)
	b.end = at + int64(len(x))
	b.x = append(b.x, x...)
}

func testFormats(t testing.TB, c Config) map[Kind]format {
	t.Helper()
	c.defaults()
	f, err := formats(&c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tone(hz float64, rate, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/float64(rate)))
	}
	return x
}

// crossings counts the upward zero crossings: a tone's frequency × seconds.
func crossings(x []float32) int {
	n := 0
	for i := 1; i < len(x); i++ {
		if x[i-1] < 0 && x[i] >= 0 {
			n++
		}
	}
	return n
}

// feed sends pcm as 20 ms frames of kind, the i-th arriving at
// t0 + arrive(i).
func feed(t *testing.T, l *leg, k Kind, pcm []byte, frame int, t0 time.Time, arrive func(i int) time.Duration) {
	t.Helper()
	for i := 0; len(pcm) > 0; i++ {
		n := min(frame, len(pcm))
		if err := l.audio(k, pcm[:n], t0.Add(arrive(i)).UnixNano()); err != nil {
			t.Fatal(err)
		}
		pcm = pcm[n:]
	}
}

func every(d time.Duration) func(int) time.Duration {
	return func(i int) time.Duration { return time.Duration(i+1) * d }
}

// Audio that comes at its pace, or in bursts (a TCP stall delivering its
// queue), is one contiguous run of the right length and pitch; the kind
// decides the rate.
func TestLegTimelineContiguous(t *testing.T) {
	t0 := time.Now()
	for _, c := range []struct {
		name   string
		kind   Kind
		cfg    Config
		rate   int
		arrive func(int) time.Duration
	}{
		{"slin paced", KindSlin, Config{}, 8000, every(20 * time.Millisecond)},
		{"slin in bursts", KindSlin, Config{}, 8000, func(i int) time.Duration { return time.Duration(i/20) * 400 * time.Millisecond }},
		{"slin all at once", KindSlin, Config{}, 8000, func(int) time.Duration { return 0 }},
		{"0x11 as slin12", KindSlin12, Config{}, 12000, every(20 * time.Millisecond)},
		{"0x11 as slin16", KindSlin12, Config{Kind11: "slin16"}, 16000, every(20 * time.Millisecond)},
		{"slin16", KindSlin16, Config{}, 16000, every(20 * time.Millisecond)},
		{"slin44", KindSlin44, Config{}, 44100, every(20 * time.Millisecond)},
		{"slin48", KindSlin48, Config{}, 48000, every(20 * time.Millisecond)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &blocks{t: t}
			l := newLeg(b, testFormats(t, c.cfg))
			feed(t, l, c.kind, audiosockettest.PCM(tone(1000, c.rate, 2*c.rate)), c.rate/50*2, t0, c.arrive)
			l.flush()
			if b.total != 32000 || b.at[0] != 0 || b.end != 32000 || l.stats.Discontinuities != 0 {
				t.Errorf("%d samples in %d blocks ending at %d, %d discontinuities; want 2 s (32000)", b.total, len(b.n), b.end, l.stats.Discontinuities)
			}
			if n := crossings(b.x); n < 1990 || n > 2010 {
				t.Errorf("%d crossings in 2 s of 1 kHz", n)
			}
		})
	}
}

// A sender that stops for 3 s and goes on: the audio after the pause is
// placed where its arrival puts it (nothing written for the gap), and
// counted; a pause under a second is not told from jitter.
func TestLegTimelineFollowsAPause(t *testing.T) {
	b := &blocks{t: t}
	l := newLeg(b, testFormats(t, Config{}))
	t0 := time.Now()
	pcm := audiosockettest.PCM(tone(440, 8000, 8000))
	feed(t, l, KindSlin, pcm, 320, t0, every(20*time.Millisecond))
	before := b.end
	feed(t, l, KindSlin, pcm, 320, t0.Add(4*time.Second), every(20*time.Millisecond))
	l.flush()
	if l.stats.Discontinuities != 1 {
		t.Fatalf("%d discontinuities", l.stats.Discontinuities)
	}
	var jumpAt int64 = -1
	for i := 1; i < len(b.at); i++ {
		if b.at[i] > b.at[i-1]+int64(b.n[i-1]) {
			jumpAt = b.at[i]
		}
	}
	// The second second of audio began 4 s after the first.
	if jumpAt < 4*16000-100 || jumpAt > 4*16000+100 || before > 16000+100 {
		t.Errorf("audio after the pause at %d (want %d), before it ended at %d", jumpAt, 4*16000, before)
	}
	if b.total != 32000 {
		t.Errorf("%d samples, want 32000", b.total)
	}

	short := &blocks{t: t}
	l = newLeg(short, testFormats(t, Config{}))
	feed(t, l, KindSlin, pcm, 320, t0, every(20*time.Millisecond))
	feed(t, l, KindSlin, pcm, 320, t0.Add(1700*time.Millisecond), every(20*time.Millisecond))
	l.flush()
	if l.stats.Discontinuities != 0 || short.end != 32000 {
		t.Errorf("a 700 ms pause: %d discontinuities, audio ends at %d", l.stats.Discontinuities, short.end)
	}
}

// The format may change within a call: the runs follow each other, each
// at its rate.
func TestLegFormatChange(t *testing.T) {
	b := &blocks{t: t}
	l := newLeg(b, testFormats(t, Config{}))
	t0 := time.Now()
	feed(t, l, KindSlin, audiosockettest.PCM(tone(1000, 8000, 8000)), 320, t0, every(20*time.Millisecond))
	feed(t, l, KindSlin16, audiosockettest.PCM(tone(1000, 16000, 16000)), 640, t0.Add(time.Second), every(20*time.Millisecond))
	l.flush()
	if b.end != 32000 || b.total != 32000 || l.stats.Discontinuities != 1 || l.cur.name != "slin16" {
		t.Errorf("ends at %d with %d samples, %d discontinuities, format %s", b.end, b.total, l.stats.Discontinuities, l.cur.name)
	}
	if n := crossings(b.x); n < 1990 || n > 2010 {
		t.Errorf("%d crossings in 2 s of 1 kHz", n)
	}
}

// G.711 under kind 0x10 when the channel was dialed with a G.711 codec.
func TestLegG711(t *testing.T) {
	b := &blocks{t: t}
	l := newLeg(b, testFormats(t, Config{Kind10: "ulaw"}))
	ulaw := make([]byte, 8000)
	for i := range ulaw {
		ulaw[i] = 0xFF // μ-law silence
	}
	feed(t, l, KindSlin, ulaw, 160, time.Now(), every(20*time.Millisecond))
	l.flush()
	if b.total != 16000 || l.cur.name != "ulaw" {
		t.Errorf("%d samples as %s", b.total, l.cur.name)
	}
	for _, x := range b.x {
		if math.Abs(float64(x)) > 0.001 {
			t.Fatalf("μ-law silence decoded as %v", x)
		}
	}
}
