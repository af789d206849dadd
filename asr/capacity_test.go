package asr

import (
	"testing"
	"time"
)

// busyEngine makes each encoder step take at least d of its thread's CPU.
type busyEngine struct {
	Engine
	d time.Duration
}

func (e busyEngine) Encode(b *Batch) error {
	if threadCPU() == 0 { // no thread clock: steps are timed by the wall
		time.Sleep(e.d)
		return e.Engine.Encode(b)
	}
	for t0 := threadCPU(); time.Duration(threadCPU()-t0) < e.d; {
	}
	return e.Engine.Encode(b)
}

// Capacity comes from measured steps: with every full batch of 4 taking at
// least 100 ms of CPU, a stream costs at least 25 ms a chunk and one engine
// serves at most 0.7 × 320 ms / 25 ms ≈ 9 streams; calibration measures it
// before any stream. Lag grows while audio comes faster than that.
func TestCapacityAndLagAreMeasured(t *testing.T) {
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{MaxBatch: 4, Workers: 1, Calibrate: true,
		NewEngine: func(i *ModelInfo, o EngineOptions) (Engine, error) {
			e, err := NewEngine(i, o)
			return busyEngine{e, 100 * time.Millisecond}, err
		}})
	if c, cost := b.Capacity(), b.StepCost(); c < 1 || c > 9 || cost < 25*time.Millisecond {
		t.Errorf("capacity %d streams, step %v per stream", c, cost)
	}
	if lag := b.Lag(); lag != 0 {
		t.Errorf("lag %v with no stream", lag)
	}
	var streams []*Stream
	for range 8 {
		s, err := b.NewStream("s", func(Result) {})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	second := make([]float32, 16000)
	for range 3 { // 3 s of audio each, at once: 24 chunks of work, ~1.2 s of steps per second of audio
		for _, s := range streams {
			s.Accept(second)
		}
	}
	if lag := b.Lag(); lag < 2*time.Second {
		t.Errorf("lag %v with 3 s of audio undecoded", lag)
	}
}

// Capacity follows the work: quiet streams skip their chunks and the
// estimate grows, up to TalkOverload times what the engines serve with
// everyone talking; streams that talk bring it down to about that (their
// chunks skip the VAD).
func TestCapacityFollowsTheMix(t *testing.T) {
	b := mixTestBatcher(t)
	talking := b.TalkingCapacity()
	if c := b.Capacity(); talking < 1 || c != talking {
		t.Fatalf("before any stream: capacity %d, %d with everyone talking", c, talking)
	}
	_, sigs := loadTestWavs(t)
	feed := func(x []float32) { feedStreams(t, b, 8, x) }
	feed(make([]float32, 8*16000))
	quiet, share := b.Capacity(), b.Talking()
	talking = b.TalkingCapacity() // at the step time measured since
	t.Logf("everyone talking %d streams; quiet streams: %.2f of chunks encoded, capacity %d; VAD %v a chunk, step %v",
		talking, share, quiet, b.VADCost(), b.StepCost())
	if share > 0.3 || float64(quiet) < 1.4*float64(talking) || quiet > int(1.6*float64(talking+1)) {
		t.Errorf("quiet streams: %.2f of chunks encoded, capacity %d (%d with everyone talking)", share, quiet, talking)
	}
	feed(sigs[1][:8*16000])
	loud, share := b.Capacity(), b.Talking()
	talking = b.TalkingCapacity()
	t.Logf("talking streams: %.2f of chunks encoded, capacity %d (%d with everyone talking); cost %v step %v vad %v", share, loud, talking, b.StreamCost(), b.StepCost(), b.VADCost())
	if share < 0.7 || float64(loud) > 1.25*float64(talking) {
		t.Errorf("talking streams: %.2f of chunks encoded, capacity %d (%d quiet)", share, loud, quiet)
	}
}

// A seeded mix is the estimate until the streams' own measure: quiet
// shares raise it (up to TalkOverload), and once the streams are measured
// a seed changes nothing.
func TestSeedMix(t *testing.T) {
	b := mixTestBatcher(t)
	talking := b.TalkingCapacity()
	if _, _, settled := b.Mix(); settled || b.Capacity() != talking {
		t.Fatalf("before any stream: settled %v, capacity %d, %d with everyone talking", settled, b.Capacity(), talking)
	}
	for _, bad := range [][2]float64{{0, 0}, {1.5, 0.1}, {0.5, -1}, {0.5, 2}} {
		b.SeedMix(bad[0], bad[1])
		if c := b.Capacity(); c != talking {
			t.Errorf("SeedMix(%v): capacity %d, want %d", bad, c, talking)
		}
	}
	b.SeedMix(0.3, 0.2)
	seeded := b.Capacity()
	if talk, heard, settled := b.Mix(); talk != 0.3 || heard != 0.2 || settled {
		t.Errorf("seeded: mix %v %v settled %v", talk, heard, settled)
	}
	if float64(seeded) < 1.4*float64(talking) || seeded > int(1.6*float64(talking+1)) {
		t.Errorf("seeded with 30%% talk: capacity %d, %d with everyone talking", seeded, talking)
	}
	// Streams that talk: measured, the seed gives way.
	_, sigs := loadTestWavs(t)
	feedStreams(t, b, 4, sigs[1][:4*16000])
	talk, _, settled := b.Mix()
	if !settled || talk < 0.6 {
		t.Errorf("after talking streams: talk %.2f, settled %v", talk, settled)
	}
	b.SeedMix(0.1, 0.1)
	if t2, _, _ := b.Mix(); t2 != talk {
		t.Errorf("a seed after the measure moved the mix from %.2f to %.2f", talk, t2)
	}
}

// feedStreams gives x to n new streams of b, 100 ms at a time a little
// faster than real time, and waits until they are done.
func feedStreams(t *testing.T, b *Batcher, n int, x []float32) {
	t.Helper()
	var streams []*Stream
	for i := range n {
		s, err := b.NewStreamWith(streamName(i), func(Result) {}, StreamOptions{MaxBacklogMs: -1})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	for off := 0; off < len(x); off += 1600 {
		for _, s := range streams {
			s.Accept(x[off:min(off+1600, len(x))])
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range streams {
		s.Finish()
		<-s.Done()
	}
}

// mixTestBatcher is a calibrated batcher of one engine skipping silence,
// TalkOverload 1.6, whose mix follows its streams within about 100 ms.
func mixTestBatcher(t *testing.T) *Batcher {
	t.Helper()
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{MaxBatch: 4, Workers: 1, Calibrate: true, SkipSilence: true,
		TalkOverload: 1.6})
	b.mix.mu.Lock()
	b.mix.every, b.mix.tau = 20*time.Millisecond, 100*time.Millisecond
	b.mix.mu.Unlock()
	return b
}
