package asr

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned when the batcher is closed.
var ErrClosed = errors.New("asr: batcher closed")

// Defaults of the batcher's options, the one place they are written
// (the gateway's configuration and the commands' flags use these).
const (
	DefaultMaxBatch   = 16
	DefaultMaxWait    = 10 * time.Millisecond
	DefaultRunTimeout = 5 * time.Second
	DefaultHeadroom   = 0.7
	// DefaultTalkOverload is BatcherOptions.TalkOverload's default.
	DefaultTalkOverload = 1.6
	// On CUDA a step costs about the same for one stream as for hundreds:
	// batches are large, waited for a little longer, and each device runs
	// two engines so that one's host-side work (features in, search out)
	// overlaps the other's step on the device.
	DefaultCUDAMaxBatch         = 256
	DefaultCUDAMaxWait          = 20 * time.Millisecond
	DefaultCUDAEnginesPerDevice = 2
	DefaultGPURetry             = time.Minute
)

// BatcherOptions configure the shared inference stage. In the gateway's
// configuration they are keys of the asr section: DefaultBatcherOptions
// holds the file's defaults; a zero field takes the default its comment
// names.
type BatcherOptions struct {
	// MaxBatch is the most streams in one encoder call; 0 (the default):
	// 16 on CPU
	// (on the shared model, 12-16 decode fastest per stream: larger batches
	// spill the stacked states out of cache), 256 on CUDA. A model with a
	// fixed batch axis caps it.
	MaxBatch int `yaml:"max_batch"`
	// MaxWait bounds how long a ready chunk waits for others to fill its
	// batch; 0 (the default): 10ms on CPU, 20ms on CUDA.
	MaxWait time.Duration `yaml:"max_wait"`
	// Workers is the number of engines run in parallel; 0 (the default):
	// one per CPU the process may use (GOMAXPROCS: a container's CPU
	// limit, rounded up), each running one intra-op thread by default; on
	// CUDA two per device.
	Workers int `yaml:"workers"`
	// Engine chooses the execution provider and threads.
	Engine EngineOptions `yaml:",inline"`
	// DeviceIDs are the CUDA devices the engines are spread over (engine i
	// on device_ids[i mod n]); empty: device 0.
	DeviceIDs []int `yaml:"device_ids"`
	// GPURetry is how often an engine that moved to the CPU provider tries
	// its device again (between steps); default 1m.
	GPURetry time.Duration `yaml:"gpu_retry"`
	// RunTimeout is the deadline of one batch step; a step that passes it
	// is abandoned and retried on a fresh engine. Default 5s.
	RunTimeout time.Duration `yaml:"run_timeout"`
	// FallbackAfter is the number of consecutive failed steps after which
	// a GPU engine is replaced by a CPU one; default 3.
	FallbackAfter int `yaml:"-"`
	// Decoding is the decoding method: greedy (the default), or
	// modified_beam_search (sherpa-onnx's, with num_active_paths
	// hypotheses per stream; every hypothesis of every stream in one
	// joiner call per frame).
	Decoding string `yaml:"decoding"`
	// ActivePaths is the beam of modified beam search: the hypotheses kept
	// per stream, 1 to 64; default 4.
	ActivePaths int `yaml:"num_active_paths"`
	// Endpoint decides when an utterance ends (sherpa-onnx's rules, or
	// VAD). In mode vad every stream also runs Silero VAD (speech start
	// and end results).
	Endpoint EndpointConfig `yaml:"endpoint"`
	// VADModel is the Silero VAD model; empty: the one scripts/setup
	// fetches (.cache/silero-vad/).
	VADModel string `yaml:"vad_model"`
	// TailPaddingMs of silence is added when a stream finishes, so the
	// model's right context covers the last word; default 660.
	TailPaddingMs int `yaml:"-"`
	// MaxBacklogMs is the most undecoded audio a stream keeps before the
	// oldest is dropped; default 10000.
	MaxBacklogMs int `yaml:"-"`
	// Headroom is the share of each engine's core that recognition may
	// take in the capacity estimate (workers × headroom × chunk period /
	// the measured cost of a stream's chunk, see Batcher.Capacity); the
	// rest of each core is left to the packet path, features and Redis.
	// Default 0.7: on a 2-core VM a fresh gateway then admitted 55 of a
	// burst of calls that talk all the time, where 60-65 held (0.8
	// admitted 69-71, past what held; one calibration's estimate varies
	// by about a tenth).
	Headroom float64 `yaml:"headroom"`
	// SkipSilence: no inference on silence. A stream whose decoder has
	// heard SkipHangoverMs of blanks runs Silero VAD (batched, on the
	// worker) ahead of the encoder; a chunk with no voiced window in it or
	// within SkipHangoverMs before it is not encoded (the stream's state
	// stays as it was, its frames count as blanks for endpointing), and at
	// speech the stream resumes SkipPrerollMs before the chunk that heard
	// it. Windows near digital silence skip the VAD too. On in
	// DefaultBatcherOptions; the zero value is off.
	SkipSilence bool `yaml:"skip_silence"`
	// SkipHangoverMs of silence after voice are still encoded (the model
	// emits a word a few hundred ms after its audio); default 600.
	SkipHangoverMs int `yaml:"-"`
	// SkipPrerollMs of the audio before a chunk that hears speech again
	// are encoded first; default 320.
	SkipPrerollMs int `yaml:"-"`
	// TalkOverload bounds the capacity estimate when streams skip silence:
	// if every admitted stream talked at once, recognition would need at
	// most this many times its real-time share of the cores (so the lag
	// grows by at most 1 - 1/TalkOverload seconds per second of everyone
	// talking). 1 admits no more than talkers alone; default 1.6.
	TalkOverload float64 `yaml:"talk_overload"`
	// Calibrate runs a few full batches of silence at start, so that
	// Capacity is measured before the first stream. Default off.
	Calibrate bool `yaml:"-"`
	// NewEngine opens an engine; default NewEngine. Tests wrap it. At
	// start the engines after the first open at once, each from a
	// goroutine of its own.
	NewEngine func(*ModelInfo, EngineOptions) (Engine, error) `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// DefaultBatcherOptions are the options a gateway recognizes with when its
// file says nothing: CPU, greedy decoding, sherpa-onnx's endpoint rules;
// batches, waits and engines by provider.
func DefaultBatcherOptions() BatcherOptions {
	return BatcherOptions{Engine: EngineOptions{Provider: "cpu", CUDAOptions: map[string]string{}, Threads: 1},
		DeviceIDs: []int{}, GPURetry: DefaultGPURetry, RunTimeout: DefaultRunTimeout, Decoding: Greedy,
		ActivePaths: DefaultActivePaths, Endpoint: DefaultEndpointConfig(), Headroom: DefaultHeadroom,
		SkipSilence: true, TalkOverload: DefaultTalkOverload}
}

// Validate checks the options as written (a zero that has a default is an
// error here, but for max_batch, max_wait and workers, whose zero means
// by provider); an error names the first bad one by its key in the
// gateway's asr section ("decoding: ...").
func (o *BatcherOptions) Validate() error {
	if o.Engine.Provider != "cpu" && o.Engine.Provider != "cuda" {
		return fmt.Errorf("provider: %q: want cpu or cuda", o.Engine.Provider)
	}
	if o.Decoding != Greedy && o.Decoding != ModifiedBeamSearch {
		return fmt.Errorf("decoding: %q: want %s or %s", o.Decoding, Greedy, ModifiedBeamSearch)
	}
	switch o.Endpoint.Mode {
	case EndpointRules, EndpointVAD:
	default:
		return fmt.Errorf("endpoint.mode: %q: want %s or %s", o.Endpoint.Mode, EndpointRules, EndpointVAD)
	}
	if s := o.Endpoint.VADMinSilence; s < 0.05 || s > 5 {
		return fmt.Errorf("endpoint.vad_min_silence: %v: want 0.05 to 5 (seconds)", s)
	}
	if o.ActivePaths < 1 || o.ActivePaths > 64 {
		return fmt.Errorf("num_active_paths: %d: want 1 to 64", o.ActivePaths)
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"threads", o.Engine.Threads > 0}, {"max_batch", o.MaxBatch >= 0}, {"max_wait", o.MaxWait >= 0},
		{"workers", o.Workers >= 0}, {"gpu_retry", o.GPURetry > 0}, {"run_timeout", o.RunTimeout > 0},
		{"device_ids", !slices.ContainsFunc(o.DeviceIDs, func(d int) bool { return d < 0 })},
		{"headroom", o.Headroom > 0 && o.Headroom <= 1},
		{"talk_overload", o.TalkOverload >= 1 && o.TalkOverload <= 10},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}

func (o *BatcherOptions) withDefaults(info *ModelInfo) {
	cuda := o.Engine.Provider == "cuda"
	if len(o.DeviceIDs) == 0 {
		o.DeviceIDs = []int{o.Engine.DeviceID}
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
		if cuda {
			o.MaxBatch = DefaultCUDAMaxBatch
		}
	}
	if info.MaxBatch > 0 {
		o.MaxBatch = min(o.MaxBatch, info.MaxBatch)
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
		if cuda {
			o.MaxWait = DefaultCUDAMaxWait
		}
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0) // the CPUs this process may use (a container's quota)
		if cuda {
			o.Workers = DefaultCUDAEnginesPerDevice * len(o.DeviceIDs)
		}
	}
	if o.GPURetry <= 0 {
		o.GPURetry = DefaultGPURetry
	}
	if o.Headroom <= 0 || o.Headroom > 1 {
		o.Headroom = DefaultHeadroom
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = DefaultRunTimeout
	}
	if o.TalkOverload < 1 {
		o.TalkOverload = DefaultTalkOverload
	}
	if o.SkipHangoverMs <= 0 {
		o.SkipHangoverMs = 600
	}
	if o.SkipPrerollMs <= 0 {
		o.SkipPrerollMs = 320
	}
	if o.Decoding == "" {
		o.Decoding = Greedy
	}
	if o.Engine.Provider == "" {
		o.Engine.Provider = "cpu"
	}
	if o.Engine.Threads <= 0 {
		o.Engine.Threads = 1
	}
	if o.Endpoint.Mode == "" {
		o.Endpoint.Mode = EndpointRules
	}
	if o.Endpoint.VADMinSilence <= 0 {
		o.Endpoint.VADMinSilence = DefaultVADMinSilence
	}
	if o.ActivePaths <= 0 {
		o.ActivePaths = DefaultActivePaths
	}
	if o.FallbackAfter <= 0 {
		o.FallbackAfter = 3
	}
	if o.TailPaddingMs == 0 {
		o.TailPaddingMs = 660
	}
	if o.MaxBacklogMs == 0 {
		o.MaxBacklogMs = 10000
	}
	if o.NewEngine == nil {
		o.NewEngine = NewEngine
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Engine.Logger == nil {
		o.Engine.Logger = o.Logger
	}
}

// Stats are the batcher's counters since it started.
type Stats struct {
	Batches       int64
	Chunks        int64                 // stream chunks decoded
	Skipped       int64                 // stream chunks of silence not encoded (SkipSilence)
	VADTime       time.Duration         // time in the VAD before steps
	VADWindows    int64                 // stream windows the VAD model heard (the rest were still)
	BatchSizes    map[int]int64         // batches by size
	BatchTime     map[int]time.Duration // time in successful steps, by batch size
	Faults        int64                 // failed or timed-out steps
	Timeouts      int64
	Retries       int64
	Fallbacks     int64 // engines moved to the CPU provider (failures, or CUDA unavailable)
	Recoveries    int64 // engines back on their device after a fallback
	DroppedFrames int64 // feature frames dropped on overflow
	ActiveStreams int
	Healthy       bool
	StepTime      time.Duration // total time in successful steps
}

// Batcher is the one inference stage every stream goes through: it gathers
// streams with a full chunk ready, runs one encoder call for up to MaxBatch
// of them and a batched greedy search across the same streams.
type Batcher struct {
	info *ModelInfo
	opts BatcherOptions

	mu      sync.Mutex
	ready   []*Stream
	readyAt []time.Time
	streams map[*Stream]struct{}
	closed  bool
	stats   Stats
	wake    chan struct{}

	fbank             *fbankTables
	workers           []*worker
	freed             chan *worker
	quit              chan struct{}
	wg                sync.WaitGroup
	dropped           atomic.Int64
	cost              atomic.Int64 // per-stream step time at full batches, ns (EWMA); 0: not measured yet
	epoch             time.Time    // Stream.readyAt counts from here
	chunkLat, stepLat latencyHist

	mix mix // the share of chunks encoded and the VAD's cost (SkipSilence)

	calibrating atomic.Bool // steps go to calSamples, not the EWMA
	calMu       sync.Mutex
	calSamples  []int64
}

// NewBatcher opens the engines and starts the dispatcher.
func NewBatcher(info *ModelInfo, opts BatcherOptions) (*Batcher, error) {
	asked := opts
	opts.withDefaults(info)
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("asr: %w", err)
	}
	if opts.Endpoint.Mode == EndpointVAD || opts.SkipSilence {
		path, err := FindVADModel(opts.VADModel)
		if err != nil {
			return nil, err
		}
		opts.VADModel = path
	}
	fo := DefaultFbankOptions()
	fo.NumBins = info.FeatureDim
	tables, err := newFbankTables(fo)
	if err != nil {
		return nil, err
	}
	b := &Batcher{
		fbank: tables, epoch: time.Now(),
		info: info, opts: opts,
		streams: map[*Stream]struct{}{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	b.mix.every, b.mix.tau = mixEvery, mixTau
	b.stats.BatchSizes = map[int]int64{}
	b.stats.BatchTime = map[int]time.Duration{}
	b.stats.Healthy = true
	first, err := newWorker(b, 0)
	if err != nil {
		return nil, err
	}
	if asked.Engine.Provider == "cuda" && first.provider() != "cuda" {
		// CUDA did not start at all: this run is a CPU recognizer, with the
		// CPU's defaults for what was not set (two engines and batches of
		// 256 suit a GPU, not the cores). A device lost while serving is
		// another matter: its engines try it again every GPURetry.
		cpu := asked
		cpu.Engine.Provider = "cpu"
		cpu.withDefaults(info)
		b.opts.MaxBatch, b.opts.MaxWait, b.opts.Workers = cpu.MaxBatch, cpu.MaxWait, cpu.Workers
		b.opts.Engine.Provider = "cpu"
		first.want = "cpu"
		b.opts.Logger.Warn("asr: CUDA did not start: running on CPU", "workers", b.opts.Workers, "max_batch", b.opts.MaxBatch)
	}
	b.freed = make(chan *worker, b.opts.Workers)
	b.workers = append(b.workers, first)
	b.freed <- first
	// The others open at once (their sessions take a few hundred
	// milliseconds each on a core; a host has many).
	rest := make([]*worker, b.opts.Workers-1)
	errs := make([]error, len(rest))
	var opening sync.WaitGroup
	for i := range rest {
		opening.Go(func() { rest[i], errs[i] = newWorker(b, i+1) })
	}
	opening.Wait()
	if err := errors.Join(errs...); err != nil {
		close(b.quit) // the workers started stop
		b.wg.Wait()
		for _, w := range append(b.workers, rest...) {
			if w != nil {
				w.close()
			}
		}
		return nil, err
	}
	for _, w := range rest {
		b.workers = append(b.workers, w)
		b.freed <- w
	}
	b.wg.Add(1)
	go b.dispatch()
	if b.opts.Calibrate {
		if err := b.calibrate(); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// Info describes the model the batcher serves.
func (b *Batcher) Info() *ModelInfo { return b.info }

// Decoding is the decoding method in use.
func (b *Batcher) Decoding() string { return b.opts.Decoding }

// Provider is the execution provider of the first engine.
func (b *Batcher) Provider() string { return b.workers[0].provider() }

// Engines counts the engines by the provider they run on now.
func (b *Batcher) Engines() map[string]int {
	m := map[string]int{}
	for _, w := range b.workers {
		m[w.provider()]++
	}
	return m
}

// StreamOptions adjust one stream.
type StreamOptions struct {
	// MaxBacklogMs overrides the batcher's backlog bound: 0 keeps it, < 0
	// lifts it (a file decoded faster than real time must lose nothing).
	MaxBacklogMs int
	// Hotwords biases the stream's decoding towards phrases; it needs
	// modified beam search.
	Hotwords *ContextGraph
}

// ErrHotwordsNeedBeam is returned for hotwords on a greedy batcher.
var ErrHotwordsNeedBeam = errors.New("asr: hotwords need decoding " + ModifiedBeamSearch)

// NewStream starts a live stream; onResult receives its partial and final
// results on a batcher goroutine and must not block.
func (b *Batcher) NewStream(id string, onResult func(Result)) (*Stream, error) {
	return b.NewStreamWith(id, onResult, StreamOptions{})
}

// NewStreamWith starts a stream with options.
func (b *Batcher) NewStreamWith(id string, onResult func(Result), o StreamOptions) (*Stream, error) {
	if o.Hotwords != nil && b.opts.Decoding != ModifiedBeamSearch {
		return nil, ErrHotwordsNeedBeam
	}
	fb := b.fbank.newFbank()
	s := &Stream{id: id, b: b, onResult: onResult, fbank: fb, done: make(chan struct{}),
		maxBacklog: int64(b.opts.MaxBacklogMs / 10), graph: o.Hotwords}
	s.voiceEnd = -1
	if b.opts.Endpoint.Mode == EndpointVAD || b.opts.SkipSilence {
		s.vad = &VADState{}
	}
	if b.opts.Endpoint.Mode == EndpointVAD {
		s.seg = NewSegmenter(int(b.opts.Endpoint.VADMinSilence * 1000))
	}
	if o.MaxBacklogMs != 0 {
		s.maxBacklog = int64(o.MaxBacklogMs / 10)
	}
	ctx := b.info.ContextSize
	s.tokens = make([]int64, ctx, ctx+64)
	for i := range s.tokens {
		s.tokens[i] = -1
	}
	s.tokens[ctx-1] = int64(b.info.BlankID)
	s.decOut = make([]float32, b.info.EncoderDim)
	for _, st := range b.info.States {
		if st.Int64 {
			s.state = append(s.state, StateBuf{I: make([]int64, st.size)})
		} else {
			s.state = append(s.state, StateBuf{F: make([]float32, st.size)})
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.streams[s] = struct{}{}
	return s, nil
}

// Stats returns a copy of the counters.
func (b *Batcher) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.BatchSizes = maps.Clone(b.stats.BatchSizes)
	s.BatchTime = maps.Clone(b.stats.BatchTime)
	s.ActiveStreams = len(b.streams)
	s.DroppedFrames = b.dropped.Load()
	return s
}

func (b *Batcher) countDropped(frames int64) { b.dropped.Add(frames) }

// enqueue puts a stream in the ready queue (the caller set s.queued) or,
// for a finished stream with nothing left to decode, finalizes it.
func (b *Batcher) enqueue(s *Stream) {
	s.readyAt.Store(int64(time.Since(b.epoch)))
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.ready = append(b.ready, s)
	b.readyAt = append(b.readyAt, time.Now())
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Close stops the batcher: queued work is dropped, engines are closed and
// unfinished streams are released. Idempotent.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	b.wg.Wait()
	for _, w := range b.workers {
		w.close()
	}
	return nil
}

// dispatch owns the ready queue: it hands batches to idle workers.
func (b *Batcher) dispatch() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var idle []*worker
	for {
		select {
		case <-b.quit:
			return
		case w := <-b.freed:
			idle = append(idle, w)
		case <-b.wake:
		case <-timer.C:
		}
		for len(idle) > 0 {
			batch, wait, settled := b.take(len(idle))
			for _, s := range settled { // their last results go out without b.mu
				b.settle(s)
			}
			if batch == nil {
				if wait > 0 {
					timer.Reset(wait)
				}
				break
			}
			w := idle[len(idle)-1]
			idle = idle[:len(idle)-1]
			w.holding.Store(int32(len(batch)))
			w.jobs <- batch
		}
	}
}

// take returns the next batch for one of idle workers, or how long to wait
// for one to fill. Fewer ready streams than idle workers can take in full
// batches are shared out evenly, so no core idles while another runs them all.
func (b *Batcher) take(idle int) (batch []*Stream, wait time.Duration, settled []*Stream) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	// Finished streams with no full chunk left leave here, to be settled
	// by the caller; closed ones are dropped.
	for i, s := range b.ready {
		switch b.drained(s) {
		case streamClosed:
			continue
		case streamDrained:
			delete(b.streams, s)
			settled = append(settled, s)
			continue
		}
		b.ready[n], b.readyAt[n] = s, b.readyAt[i]
		n++
	}
	b.ready, b.readyAt = b.ready[:n], b.readyAt[:n]
	if n == 0 {
		return nil, 0, settled
	}
	// A stream skipping silence weighs a quarter of one the encoder runs
	// (its VAD and bookkeeping), so a batch of mostly silent streams keeps
	// the encoder's rows near MaxBatch.
	weight := func(s *Stream) int {
		if s.silent.Load() {
			return 1
		}
		return 4
	}
	load := 0
	for _, s := range b.ready {
		load += weight(s)
	}
	full := 4 * b.opts.MaxBatch
	if age := time.Since(b.readyAt[0]); load < full && age < b.opts.MaxWait && n < b.waitingFor() {
		return nil, b.opts.MaxWait - age, settled
	}
	share := min(full, (load+idle-1)/idle)
	k, w := 0, 0
	for k < n && w < share && k < full {
		w += weight(b.ready[k])
		k++
	}
	batch = append(batch, b.ready[:k]...)
	b.ready = append(b.ready[:0], b.ready[k:]...)
	b.readyAt = append(b.readyAt[:0], b.readyAt[k:]...)
	return batch, 0, settled
}

// waitingFor is how many streams could join a batch: all live ones that no
// worker holds. Waiting longer cannot fill a batch beyond that.
func (b *Batcher) waitingFor() int {
	busy := 0
	for _, w := range b.workers {
		busy += int(w.holding.Load())
	}
	return len(b.streams) - busy
}

// A queued stream's state, for take.
const (
	streamPending = iota // a chunk to decode
	streamDrained        // finished, no full chunk left: settle it
	streamClosed         // abandoned (Stream.Close): drop it
)

// drained tells whether a stream has finished and has no full chunk left,
// or was closed.
func (b *Batcher) drained(s *Stream) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return streamClosed
	case s.finishing && s.framesEnd()-s.processed < int64(b.info.ChunkFrames):
		return streamDrained
	}
	return streamPending
}

// settle finalizes a finished stream that left the batcher: its last final,
// then Done. Called without b.mu, on the dispatcher.
func (b *Batcher) settle(s *Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	processed, dropped := s.processed, s.dropped
	s.mu.Unlock()
	if len(s.tokens) > b.info.ContextSize {
		s.onResult(s.result(Final, processed, dropped))
	}
	if s.seg != nil && s.seg.Speaking() { // the audio ended in speech
		at := windowMs(s.seg.window)
		s.onResult(Result{Stream: s.id, Kind: SpeechEnd, Utt: s.utt, StartMs: at, EndMs: at})
	}
	s.doneOnce.Do(func() { close(s.done) })
}

// remove forgets an abandoned stream.
func (b *Batcher) remove(s *Stream) {
	b.mu.Lock()
	delete(b.streams, s)
	b.mu.Unlock()
}

// afterStep commits nothing itself: the worker committed the streams. It
// puts back those with more work and frees the worker.
func (b *Batcher) afterStep(streams []*Stream) {
	var again []*Stream
	for _, s := range streams {
		s.mu.Lock()
		s.queued = false
		ok := s.readyLocked() || s.finishing
		if ok {
			s.queued = true
		}
		s.mu.Unlock()
		if ok {
			again = append(again, s)
		}
	}
	for _, s := range again {
		b.enqueue(s)
	}
}

// ChunkLatency is the histogram, since start, of the time from a stream's
// chunk being ready (queued) to its step committed.
func (b *Batcher) ChunkLatency() Latency { return b.chunkLat.snapshot() }

// StepLatency is the histogram, since start, of successful steps' times.
func (b *Batcher) StepLatency() Latency { return b.stepLat.snapshot() }

// record counts a committed job: the encoder's step over enc took d and
// cost its core busy (none when every chunk was skipped); every chunk of
// job was committed.
func (b *Batcher) record(job, enc []*Stream, d, busy time.Duration) {
	n := len(enc)
	if n > 0 {
		b.observe(n, busy)
		b.stepLat.add(d)
	}
	now := int64(time.Since(b.epoch))
	for _, s := range job {
		b.chunkLat.add(time.Duration(now - s.readyAt.Load()))
	}
	b.mu.Lock()
	b.stats.Chunks += int64(n)
	b.stats.Skipped += int64(len(job) - n)
	if n > 0 {
		b.stats.Batches++
		b.stats.BatchSizes[n]++
		b.stats.BatchTime[n] += d
		b.stats.StepTime += d
		b.stats.Healthy = true
	}
	b.mu.Unlock()
}

// recovered counts an engine back on its device.
func (b *Batcher) recovered() {
	b.mu.Lock()
	b.stats.Recoveries++
	b.mu.Unlock()
}

// fault counts a failed step (retried) and/or a move to the CPU provider.
func (b *Batcher) fault(step, timeout, fallback bool) {
	b.mu.Lock()
	if step {
		b.stats.Faults++
		b.stats.Retries++
	}
	if timeout {
		b.stats.Timeouts++
	}
	if fallback {
		b.stats.Fallbacks++
	}
	b.mu.Unlock()
}

func (b *Batcher) setHealthy(ok bool) {
	b.mu.Lock()
	b.stats.Healthy = ok
	b.mu.Unlock()
}

// logSoftmaxAt returns log p(y) of logits.
func logSoftmaxAt(logits []float32, y int) float32 {
	m := logits[0]
	for _, v := range logits[1:] {
		m = max(m, v)
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v - m))
	}
	return float32(float64(logits[y]-m) - math.Log(sum))
}

func argmax(v []float32) int {
	best, bi := v[0], 0
	for i, x := range v[1:] {
		if x > best {
			best, bi = x, i+1
		}
	}
	return bi
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprint(err)
}
