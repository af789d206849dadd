package asr

import (
	"testing"
	"time"
)

// delayEngine makes each encoder step take a known time.
type delayEngine struct {
	Engine
	d time.Duration
}

func (e delayEngine) Encode(b *Batch) error {
	time.Sleep(e.d)
	return e.Engine.Encode(b)
}

// Capacity comes from measured steps: with every full batch of 4 taking at
// least 200 ms, a stream costs at least 50 ms a chunk and one engine serves
// at most 0.65 × 320 ms / 50 ms ≈ 4.2 streams; calibration measures it
// before any stream. Lag grows while audio comes faster than that.
func TestCapacityAndLagAreMeasured(t *testing.T) {
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{MaxBatch: 4, Workers: 1, Calibrate: true,
		NewEngine: func(i *ModelInfo, o EngineOptions) (Engine, error) {
			e, err := NewEngine(i, o)
			return delayEngine{e, 200 * time.Millisecond}, err
		}})
	if c, cost := b.Capacity(), b.StepCost(); c < 1 || c > 4 || cost < 50*time.Millisecond {
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
