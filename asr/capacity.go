package asr

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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

// mix is what streams cost beside their encoder steps, measured: the share
// of their chunks the encoder runs (the rest are skipped silence) and the
// VAD's time per chunk.
type mix struct {
	mu       sync.Mutex
	enc, all int64        // chunks since the last update: encoded, all
	ran      int64        // and heard by the VAD
	at       time.Time    // the last update
	talk     float64      // EWMA (time constant mixTau) of the share encoded; 1 until measured or seeded
	heard    float64      // the same of the share the VAD heard; 1 until measured or seeded
	prior    float64      // the weight left in talk and heard of what they started at (1, or a seed); under 1 once measured
	vad      atomic.Int64 // the VAD's time per chunk heard, ns (EWMA)
	every    time.Duration
	tau      time.Duration
}

// How fast the measured shares follow the streams: updated at most every
// mixEvery, an EWMA of time constant mixTau (tests shorten both).
const (
	mixEvery = time.Second
	mixTau   = 10 * time.Second
)

// observeVAD feeds a job's VAD time and windows (the model's) and how many
// of its chunks the encoder runs into the mix.
func (b *Batcher) observeVAD(job, enc []*Stream, heard int, windows int64, d time.Duration) {
	if len(job) == 0 || b.workers[0].vad == nil {
		return
	}
	b.mu.Lock()
	b.stats.VADTime += d
	b.stats.VADWindows += windows
	b.mu.Unlock()
	if heard >= max(1, b.opts.MaxBatch/2) {
		sample := int64(d) / int64(heard)
		for {
			old := b.mix.vad.Load()
			next := sample
			if old > 0 {
				next = old + (sample-old)/5
			}
			if b.mix.vad.CompareAndSwap(old, next) {
				break
			}
		}
	}
	if !b.opts.SkipSilence || b.calibrating.Load() {
		return
	}
	m := &b.mix
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range job {
		if !s.noSkip {
			m.all++
		}
	}
	m.ran += int64(heard)
	for _, s := range enc {
		if !s.noSkip {
			m.enc++
		}
	}
	now := time.Now()
	if m.at.IsZero() {
		m.at, m.talk, m.heard, m.prior = now, 1, 1, 1
	}
	if dt := now.Sub(m.at); dt >= m.every && m.all > 0 {
		// The shares follow the streams' time, not the clock's: after
		// an idle spell the first second of new calls moves them by a
		// second's weight, not all the way.
		dt = min(dt, 2*m.every)
		a := 1 - math.Exp(-float64(dt)/float64(m.tau))
		m.talk += (float64(m.enc)/float64(m.all) - m.talk) * a
		m.heard += (float64(m.ran)/float64(m.all) - m.heard) * a
		m.prior *= 1 - a
		m.enc, m.all, m.ran, m.at = 0, 0, 0, now
	}
}

// Mix is the shares of the streams' chunks lately encoded (talk) and heard
// by the VAD (heard), and whether they are mostly this batcher's own
// measure (settled: what they started at, 1 or a seed, weighs under half,
// after about 7 s of streams): what a gateway shares with its fleet.
func (b *Batcher) Mix() (talk, heard float64, settled bool) {
	b.mix.mu.Lock()
	defer b.mix.mu.Unlock()
	if b.mix.at.IsZero() {
		return 1, 1, false
	}
	return b.mix.talk, b.mix.heard, b.mix.prior < 0.5
}

// SeedMix starts the shares at talk and heard (each in (0, 1]) before this
// batcher has measured any: the mix of the calls a gateway's fleet served
// lately, so that a gateway that starts into a burst of quiet calls need
// not count them as talkers. The streams' own measure then takes over at
// the mix's usual pace (about 10 s). No effect once measured or without
// skipping.
func (b *Batcher) SeedMix(talk, heard float64) {
	if !b.opts.SkipSilence || !(talk > 0 && talk <= 1) || !(heard >= 0 && heard <= 1) {
		return
	}
	b.mix.mu.Lock()
	defer b.mix.mu.Unlock()
	if b.mix.at.IsZero() || b.mix.prior == 1 { // nothing measured yet
		b.mix.at, b.mix.talk, b.mix.heard, b.mix.prior = time.Now(), talk, heard, 1
	}
}

// Talking is the share of the streams' chunks the encoder has run lately
// (EWMA over about 10 s): 1 without skipping or before any measure.
func (b *Batcher) Talking() float64 {
	talk, _, _ := b.Mix()
	return talk
}

// VADCost is the VAD's measured time per stream chunk; 0 without VAD or
// before a measure.
func (b *Batcher) VADCost() time.Duration { return time.Duration(b.mix.vad.Load()) }

// prerollFrames is what a stream skipping silence decodes again before a
// chunk that hears speech: SkipPrerollMs in whole encoder frames; 0 when
// not skipping.
func (b *Batcher) prerollFrames() int64 {
	if !b.opts.SkipSilence {
		return 0
	}
	sub := b.info.ChunkShift / b.info.OutFrames
	f := (b.opts.SkipPrerollMs/10 + sub - 1) / sub * sub
	return int64(f)
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

// Capacity estimates how many streams the engines serve in real time from
// the work they measure: at the shares of chunks lately encoded (Talking)
// and heard by the VAD, a chunk costs a step (StepCost) and the VAD's time
// (VADCost), so Capacity = Workers × Headroom × ChunkPeriod / (heard ×
// VADCost + Talking × StepCost).
// When skipping silence it is bounded by TalkOverload times what the
// engines serve with every stream talking (TalkingCapacity). Before any
// measure it is 0, meaning unknown (see Calibrate).
func (b *Batcher) Capacity() int {
	c := float64(b.cost.Load())
	if c <= 0 {
		return 0
	}
	budget := b.cores() * b.opts.Headroom * float64(b.ChunkPeriod())
	n := budget / float64(b.StreamCost())
	if b.opts.SkipSilence {
		n = min(n, b.opts.TalkOverload*budget/c)
	}
	return int(n)
}

// cores is what the engines have to run on: a core each, but on CPU no
// more than the process may use (GOMAXPROCS, which follows a container's
// CPU quota): steps are timed in their thread's CPU, which does not see
// engines queueing for fewer cores.
func (b *Batcher) cores() float64 {
	if b.opts.Engine.Provider != "cpu" {
		return float64(b.opts.Workers)
	}
	return float64(min(b.opts.Workers, runtime.GOMAXPROCS(0)))
}

// StreamCost is what a stream's chunk costs the engines at the current
// mix: Talking × StepCost + the share the VAD hears × VADCost; 0 before
// any measure.
func (b *Batcher) StreamCost() time.Duration {
	talk, heard, _ := b.Mix()
	return time.Duration(talk*float64(b.cost.Load()) + heard*float64(b.mix.vad.Load()))
}

// TalkingCapacity is Capacity with every stream talking: what the engines
// serve in real time if every chunk is encoded (a talking stream's VAD
// does not run).
func (b *Batcher) TalkingCapacity() int {
	c := float64(b.cost.Load())
	if c <= 0 {
		return 0
	}
	return int(b.cores() * b.opts.Headroom * float64(b.ChunkPeriod()) / c)
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

// calibrationChunks is how many chunks each calibration stream decodes:
// enough full batches that the median step is the engines' settled speed
// (the first few after a start run slower).
const calibrationChunks = 24

// calibrate runs full batches of silence on every engine so that Capacity
// is known before the first call.
func (b *Batcher) calibrate() error {
	n := b.opts.MaxBatch * b.opts.Workers
	frames := calibrationChunks * b.info.ChunkShift
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
		s.noSkip = true // silence, and the encoder's cost is what is measured
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
	if err := run(silence, calibrationChunks); err != nil {
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
