package asr

import (
	"fmt"
	"slices"
	"time"
)

// How much the recognizer can take, measured rather than guessed: every
// step of a full batch (at least half of MaxBatch) updates the per-stream
// step time; each stream needs one step per chunk of audio (the chunk
// period), and each engine has one core. Lag says how far behind real
// time decoding is now.

// observe feeds a successful step into the per-stream cost.
func (b *Batcher) observe(n int, d time.Duration) {
	if n < max(1, b.opts.MaxBatch/2) {
		return // small batches cost more per stream: not what load runs
	}
	sample := int64(d) / int64(n)
	if b.calibrating.Load() {
		b.calMu.Lock()
		b.calSamples = append(b.calSamples, sample)
		b.calMu.Unlock()
		return
	}
	for {
		old := b.cost.Load()
		next := sample
		if old > 0 {
			next = old + (sample-old)/5 // EWMA, alpha 0.2
		}
		if b.cost.CompareAndSwap(old, next) {
			return
		}
	}
}

// Workers is the number of engines.
func (b *Batcher) Workers() int { return b.opts.Workers }

// ChunkPeriod is the audio one chunk step consumes.
func (b *Batcher) ChunkPeriod() time.Duration {
	return time.Duration(b.info.ChunkShift) * 10 * time.Millisecond
}

// StepCost is the measured time of one stream's chunk at full batches; 0
// before any full batch ran.
func (b *Batcher) StepCost() time.Duration { return time.Duration(b.cost.Load()) }

// Capacity estimates how many streams the engines serve in real time:
// Workers × Headroom × ChunkPeriod / StepCost. Before any measure it is 0,
// meaning unknown (see Calibrate).
func (b *Batcher) Capacity() int {
	c := b.cost.Load()
	if c <= 0 {
		return 0
	}
	return int(float64(b.opts.Workers) * b.opts.Headroom * float64(b.ChunkPeriod()) / float64(c))
}

// Lag is how far behind real time decoding is: the most undecoded audio
// any live stream holds beyond the chunk being gathered. Near zero while
// the recognizer keeps up; it grows by a second a second when it does not.
func (b *Batcher) Lag() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var worst int64
	for s := range b.streams {
		s.mu.Lock()
		if !s.finishing && !s.closed {
			worst = max(worst, s.framesEnd()-s.processed-int64(b.info.ChunkFrames))
		}
		s.mu.Unlock()
	}
	return time.Duration(worst) * 10 * time.Millisecond
}

// calibrate runs full batches of silence on every engine so that Capacity
// is known before the first call.
func (b *Batcher) calibrate() error {
	n := b.opts.MaxBatch * b.opts.Workers
	frames := 8 * b.info.ChunkShift
	silence := make([]float32, frames*160)
	var streams []*Stream
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	for i := range n {
		s, err := b.NewStreamWith(fmt.Sprint("calibration-", i), func(Result) {}, StreamOptions{MaxBacklogMs: -1})
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	// A first chunk each warms the engines up (tensors allocated, kernels
	// chosen); the cost is measured on the chunks after it.
	run := func(samples []float32, chunks int) error {
		want := b.Stats().Chunks + int64(n*chunks)
		for _, s := range streams {
			s.Accept(samples)
		}
		deadline := time.Now().Add(30 * time.Second)
		for b.Stats().Chunks < want {
			if time.Now().After(deadline) {
				return fmt.Errorf("asr: calibration: chunks not decoded in 30 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	if err := run(make([]float32, (b.info.ChunkFrames+2)*160), 1); err != nil {
		return err
	}
	b.calibrating.Store(true)
	defer b.calibrating.Store(false)
	if err := run(silence, 8); err != nil {
		return err
	}
	b.calMu.Lock()
	defer b.calMu.Unlock()
	if len(b.calSamples) > 0 { // the median step: one slow step does not decide
		slices.Sort(b.calSamples)
		b.cost.Store(b.calSamples[len(b.calSamples)/2])
	}
	return nil
}
