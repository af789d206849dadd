package asr

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
)

var errAbandoned = errors.New("asr: step abandoned")

// worker runs batches on one engine at a time. The engine lives in a runner
// goroutine so that a hung call can be abandoned: the worker waits for each
// step with a deadline, and on an error or a timeout it drops the runner
// (its engine is closed when the call returns, if ever) and runs the same
// batch again on a fresh engine from the streams' committed state.
type worker struct {
	b        *Batcher
	id       int
	jobs     chan []*Stream
	holding  atomic.Int32 // streams in the batch being run
	r        *runner
	failures int // consecutive failed steps
	opts     EngineOptions
	want     string       // the provider asked for; opts.Provider is the one in use
	cpuSince time.Time    // when the engine last moved to (or last retried from) CPU
	inUse    atomic.Value // string: the running engine's provider, read by any goroutine
	timer    *time.Timer
	vad      *VAD // endpoint mode vad or skipping silence; run on the worker
	ends     []stepEnd
	vadSets  [][][]float32
	vadFirst []int64 // sample where each stream's first window of vadSets starts
	vadWins  [][]float32
	vadProbs []float32
	energy   []float32 // mean square of each stream's window in hand (rules mode)
	skip     []bool    // the job's streams whose chunk is not encoded
	vadRan   int       // streams of the job the VAD heard
	vadWinN  int64     // windows the model ran on for the job
	enc      []*Stream
}

// runner owns an engine and the scratch of the step it runs.
type runner struct {
	eng       Engine
	in        chan []*Stream
	out       chan stepDone
	abandoned atomic.Bool
	batch     *Batch
	hyps      []scratch
	// Modified beam search: each stream's hypotheses (the step's copy) and
	// the scratch of a frame.
	beams  [][]hyp
	next   [][]hyp
	frame0 []int64
	rows   [][2]int
	topk   []int
}

// stepDone is how a runner's step ended: its error, and the CPU time its
// thread spent on it (0 where not measured).
type stepDone struct {
	err error
	cpu time.Duration
}

// scratch is one stream's decoding during a step, committed on success.
type scratch struct {
	frame0   int64 // encoder frame of the chunk's start in the stream's timeline
	ctx      []int64
	tokens   []int64
	times    []int64
	probs    []float32
	trailing int
}

func newWorker(b *Batcher, id int) (*worker, error) {
	w := &worker{b: b, id: id, jobs: make(chan []*Stream, 1), opts: b.opts.Engine,
		timer: time.NewTimer(time.Hour)}
	w.opts.DeviceID = b.opts.DeviceIDs[id%len(b.opts.DeviceIDs)]
	w.want = w.opts.Provider
	w.inUse.Store(w.opts.Provider)
	w.timer.Stop()
	r, err := w.newRunner()
	if err != nil {
		return nil, err
	}
	w.r = r
	if b.opts.Endpoint.Mode == EndpointVAD || b.opts.SkipSilence {
		if w.vad, err = NewVAD(b.opts.VADModel); err != nil {
			w.close()
			return nil, err
		}
	}
	b.wg.Add(1)
	go w.loop()
	return w, nil
}

// provider is the running engine's provider; safe from any goroutine.
func (w *worker) provider() string { return w.inUse.Load().(string) }

func (w *worker) newRunner() (*runner, error) {
	eng, err := w.b.opts.NewEngine(w.b.info, w.opts)
	if err != nil {
		return nil, err
	}
	if w.opts.Provider != "" && w.opts.Provider != eng.Provider() {
		// The engine started on another provider (CUDA could not start).
		w.b.fault(false, false, true)
		w.opts.Provider = eng.Provider()
		w.cpuSince = time.Now()
	}
	return w.start(eng), nil
}

func (w *worker) start(eng Engine) *runner {
	r := &runner{eng: eng, in: make(chan []*Stream, 1), out: make(chan stepDone, 1)}
	w.inUse.Store(eng.Provider())
	go r.loop(w.b.info)
	return r
}

// retryDevice moves an engine that fell back to CPU onto its device again
// once GPURetry has passed since the fallback (or the last try): the device
// may have come back. Between steps, on the worker.
func (w *worker) retryDevice() {
	if w.want == "" || w.want == "cpu" || w.opts.Provider == w.want || time.Since(w.cpuSince) < w.b.opts.GPURetry {
		return
	}
	w.cpuSince = time.Now()
	opts := w.opts
	opts.Provider = w.want
	eng, err := w.b.opts.NewEngine(w.b.info, opts)
	if err != nil {
		return
	}
	if eng.Provider() != w.want { // still unavailable (NewEngine fell back)
		eng.Close()
		return
	}
	w.b.opts.Logger.Info("asr: engine back on its device", "worker", w.id, "provider", w.want, "device", opts.DeviceID)
	if w.r != nil {
		w.r.abandon()
	}
	w.opts, w.failures = opts, 0
	w.r = w.start(eng)
	w.b.recovered()
}

// abandon lets the runner go: an engine call in progress is aborted, and
// the engine is closed once the runner returns.
func (r *runner) abandon() {
	r.abandoned.Store(true)
	r.eng.Abort()
	close(r.in)
}

// loop runs the steps on one OS thread, so that a step's CPU time is that
// thread's: an engine of one intra-op thread runs its kernels on the
// caller's thread, and the search is Go code on it.
func (r *runner) loop(info *ModelInfo) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer r.eng.Close()
	for job := range r.in {
		t0 := threadCPU()
		err := r.step(info, job)
		cpu := time.Duration(threadCPU() - t0)
		if r.abandoned.Load() {
			return
		}
		r.out <- stepDone{err, cpu}
	}
}

func (w *worker) close() {
	if w.r != nil {
		w.r.abandon()
		w.r = nil
	}
}

func (w *worker) loop() {
	defer w.b.wg.Done()
	runtime.LockOSThread() // the VAD's CPU time is this thread's (see run)
	defer runtime.UnlockOSThread()
	if w.vad != nil {
		defer w.vad.Close()
	}
	for {
		select {
		case <-w.b.quit:
			return
		case job := <-w.jobs:
			if !w.run(job) {
				return
			}
			w.holding.Store(0)
			w.b.afterStep(job)
			w.b.freed <- w
		}
	}
}

// run decodes one batch, retrying until it succeeds or the batcher closes:
// the VAD first, then the encoder and search for the chunks that need them.
func (w *worker) run(job []*Stream) bool {
	b := w.b
	w.retryDevice()
	start, cpu0 := time.Now(), threadCPU()
	enc := w.prepare(job)
	b.observeVAD(job, enc, w.vadRan, w.vadWinN, onCore(time.Since(start), time.Duration(threadCPU()-cpu0)))
	if len(enc) == 0 {
		w.commit(job)
		b.record(job, nil, 0, 0)
		return true
	}
	for {
		if w.r == nil {
			r, err := w.newRunner()
			if err != nil {
				b.opts.Logger.Error("asr: open engine", "worker", w.id, "err", err)
				if !w.backoff() {
					return false
				}
				continue
			}
			w.r = r
		}
		start := time.Now()
		w.r.in <- enc
		w.timer.Reset(b.opts.RunTimeout)
		var done stepDone
		timedOut := false
		select {
		case done = <-w.r.out:
		case <-w.timer.C:
			timedOut = true
		case <-b.quit:
			w.timer.Stop()
			return false
		}
		if !timedOut && !w.timer.Stop() {
			<-w.timer.C
		}
		err := done.err
		if err == nil && !timedOut {
			d := time.Since(start)
			w.commit(job)
			b.record(job, enc, d, w.busy(d, done.cpu))
			w.failures = 0
			return true
		}
		w.failures++
		fallback := w.failures >= b.opts.FallbackAfter && w.opts.Provider != "" && w.opts.Provider != "cpu"
		b.fault(true, timedOut, fallback)
		b.opts.Logger.Warn("asr: batch step failed, retrying on a fresh engine",
			"worker", w.id, "batch", len(enc), "timeout", timedOut, "err", errString(err), "failures", w.failures)
		w.r.abandon()
		w.r = nil
		if fallback {
			b.opts.Logger.Warn("asr: falling back to the CPU provider", "worker", w.id, "from", w.opts.Provider)
			w.opts.Provider = "cpu"
			w.cpuSince = time.Now()
		}
		if w.failures >= b.opts.FallbackAfter {
			b.setHealthy(false)
		}
		if w.failures > 1 && !w.backoff() {
			return false
		}
	}
}

// busy is what a step that took d and its thread's CPU time cpu cost the
// worker's core: onCore on an engine that runs on one CPU thread, its wall
// time otherwise (a device, or a pool of intra-op threads).
func (w *worker) busy(d, cpu time.Duration) time.Duration {
	if w.opts.Provider != "cpu" || w.opts.Threads > 1 {
		return d
	}
	return onCore(d, cpu)
}

// onCore is what work that took d of wall time and cpu of its thread's CPU
// cost the core: its CPU time, so that time the cores gave to others
// meanwhile, under load, is not counted as the work's; d where the thread
// clock was not read (cpu 0).
func onCore(d, cpu time.Duration) time.Duration {
	if cpu <= 0 {
		return d
	}
	return min(cpu, d)
}

// backoff waits a little longer after each failure; false when closing.
func (w *worker) backoff() bool {
	d := time.Duration(min(w.failures, 20)) * 50 * time.Millisecond
	w.timer.Reset(d)
	select {
	case <-w.timer.C:
		return true
	case <-w.b.quit:
		w.timer.Stop()
		return false
	}
}

// stackRow copies one stream's state into row i of a batch of n (or, with
// back, row i of the batch into the stream's state), for every state tensor.
func stackRow(info *ModelInfo, batch, stream []StateBuf, i, n int, back bool) {
	for k := range info.States {
		st := &info.States[k]
		if st.Int64 {
			copyRow(st, batch[k].I, stream[k].I, i, n, back)
		} else {
			copyRow(st, batch[k].F, stream[k].F, i, n, back)
		}
	}
}

func copyRow[T float32 | int64](st *StateSpec, batch, stream []T, i, n int, back bool) {
	post := st.post
	for p := range st.pre {
		row := batch[(p*n+i)*post : (p*n+i+1)*post]
		if back {
			copy(stream[p*post:(p+1)*post], row)
		} else {
			copy(row, stream[p*post:(p+1)*post])
		}
	}
}

// step runs the encoder and greedy search for the streams. It reads their
// committed state and writes only the runner's own buffers.
func (r *runner) step(info *ModelInfo, job []*Stream) error {
	n := len(job)
	bt, err := r.eng.Batch(n)
	if err != nil {
		return err
	}
	r.batch = bt
	for len(r.hyps) < n {
		r.hyps = append(r.hyps, scratch{ctx: make([]int64, info.ContextSize)})
	}
	chunk := info.ChunkFrames * info.FeatureDim
	allCached := true
	for i, s := range job {
		s.mu.Lock()
		off := int(s.processed-s.featStart) * info.FeatureDim
		copy(bt.X[i*chunk:(i+1)*chunk], s.feats[off:off+chunk])
		frame0 := s.processed / int64(info.ChunkShift/info.OutFrames)
		s.mu.Unlock()
		stackRow(info, bt.States, s.state, i, n, false)
		h := &r.hyps[i]
		h.frame0 = frame0
		copy(h.ctx, s.tokens[len(s.tokens)-info.ContextSize:])
		h.tokens, h.times, h.probs = h.tokens[:0], h.times[:0], h.probs[:0]
		h.trailing = s.trailing
		if s.hasDecOut {
			copy(bt.JoinDec[i*info.EncoderDim:(i+1)*info.EncoderDim], s.decOut)
		} else {
			allCached = false
		}
	}
	if err := r.eng.Encode(bt); err != nil {
		return err
	}
	if paths := job[0].b.opts.ActivePaths; job[0].b.opts.Decoding == ModifiedBeamSearch {
		for len(r.beams) < n {
			r.beams, r.next = append(r.beams, nil), append(r.next, nil)
		}
		r.frame0 = r.frame0[:0]
		for i, s := range job {
			r.frame0 = append(r.frame0, r.hyps[i].frame0)
			if len(s.hyps) == 0 { // a new utterance: its context alone
				s.hyps = []hyp{{ys: slices.Clone(s.tokens)}}
				if s.graph != nil {
					s.hyps[0].ctx = s.graph.root
				}
			}
			r.beams[i] = append(r.beams[i][:0], s.hyps...)
		}
		return r.beamSearch(info, job, bt, paths)
	}
	return r.greedy(info, job, bt, allCached)
}

// greedy runs the batched greedy search over the encoder frames in bt:
// one joiner call per frame for all streams, one decoder call after a frame
// in which any stream emitted a token.
func (r *runner) greedy(info *ModelInfo, job []*Stream, bt *Batch, allCached bool) error {
	n := len(job)
	if !allCached {
		if err := r.decode(info, bt, n); err != nil {
			return err
		}
	}
	D, V, F := info.EncoderDim, info.VocabSize, info.OutFrames
	for t := range F {
		if r.abandoned.Load() {
			return errAbandoned
		}
		for i := range n {
			copy(bt.JoinEnc[i*D:(i+1)*D], bt.EncOut[(i*F+t)*D:(i*F+t+1)*D])
		}
		if err := r.eng.Join(bt); err != nil {
			return err
		}
		emitted := false
		for i := range job {
			logits := bt.Logits[i*V : (i+1)*V]
			y := argmax(logits)
			h := &r.hyps[i]
			if y == info.BlankID || y == info.UnkID {
				h.trailing++
				continue
			}
			emitted = true
			h.tokens = append(h.tokens, int64(y))
			h.times = append(h.times, h.frame0+int64(t))
			h.probs = append(h.probs, float32(math.Exp(float64(logSoftmaxAt(logits, y)))))
			h.trailing = 0
			copy(h.ctx, h.ctx[1:])
			h.ctx[len(h.ctx)-1] = int64(y)
		}
		if emitted {
			if err := r.decode(info, bt, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode runs the prediction network on every row's context into JoinDec.
func (r *runner) decode(info *ModelInfo, bt *Batch, n int) error {
	C := info.ContextSize
	for i := range n {
		copy(bt.Y[i*C:(i+1)*C], r.hyps[i].ctx)
	}
	if err := r.eng.Decode(bt); err != nil {
		return err
	}
	copy(bt.JoinDec[:n*info.EncoderDim], bt.DecOut[:n*info.EncoderDim])
	return nil
}

// stepEnd is where a committed step left a stream.
type stepEnd struct {
	processed, dropped int64
}

// prepare runs Silero VAD over each stream's audio up to the end of the
// chunk it is about to decode, all the job's streams in one model call per
// window, and, when skipping silence, decides which chunks the encoder
// runs: it returns those streams (a stream resuming after a skip is moved
// back by the pre-roll first). A VAD error is logged and every chunk is
// encoded.
func (w *worker) prepare(job []*Stream) []*Stream {
	b := w.b
	info := b.info
	n := len(job)
	for len(w.vadSets) < n {
		w.vadSets, w.vadFirst, w.skip = append(w.vadSets, nil), append(w.vadFirst, 0), append(w.skip, false)
	}
	w.enc = w.enc[:0]
	if w.vad == nil {
		for i := range job {
			w.skip[i] = false
		}
		w.enc = append(w.enc, job...)
		return w.enc
	}
	sub := info.ChunkShift / info.OutFrames
	hangFrames := (b.opts.SkipHangoverMs/10 + sub - 1) / sub // encoder output frames
	w.vadRan = 0
	for i, s := range job {
		// The decoder's blanks say when a stream may have gone quiet: the
		// VAD (whose state starts over after a pause) then decides. In
		// endpoint mode vad it hears every window.
		w.skip[i] = b.opts.SkipSilence && !s.noSkip && s.quiet >= hangFrames
		s.mu.Lock()
		if s.seg != nil || w.skip[i] {
			w.vadSets[i], w.vadFirst[i] = s.vadWindows(w.vadSets[i][:0], (s.processed+int64(info.ChunkFrames))*160)
			w.vadRan++
		} else {
			// Not heard now; when it is, the VAD starts a hangover
			// before the next chunk, so the last words count.
			w.vadSets[i] = w.vadSets[i][:0]
			s.vadPass((s.processed+int64(info.ChunkShift))*160 - int64(b.opts.SkipHangoverMs)*16)
		}
		s.mu.Unlock()
	}
	vadOK := w.runVAD(job)
	hang := int64(b.opts.SkipHangoverMs) * 16
	for i, s := range job {
		s.mu.Lock()
		start := s.processed * 160
		skip := w.skip[i] && vadOK && (s.voiceEnd < 0 || s.voiceEnd+hang <= start)
		switch {
		case skip && !s.skipping:
			s.skipping, s.skipFrom = true, s.processed
		case !skip && s.skipping:
			// Speech again: decode from the pre-roll before this chunk,
			// as far as the skipped span and the kept features go.
			back := min(b.prerollFrames(), s.processed-s.skipFrom, s.processed-s.featStart)
			back -= back % int64(sub)
			s.processed -= back
			s.segStart = min(s.segStart, s.processed)
			out := int(back) / sub
			s.trailing, s.quiet = max(0, s.trailing-out), max(0, s.quiet-out)
			for k := range s.hyps {
				s.hyps[k].trailing = max(0, s.hyps[k].trailing-out)
			}
			s.skipping = false
		}
		s.mu.Unlock()
		s.silent.Store(skip)
		w.skip[i] = skip
		if !skip {
			w.enc = append(w.enc, s)
		}
	}
	return w.enc
}

// runVAD gives the windows of vadSets to the model, each window index of
// all streams in one call: a window over the voice threshold moves the
// stream's voiceEnd; in endpoint mode vad the probabilities wait for the
// segmenter. False on a VAD error (logged).
func (w *worker) runVAD(job []*Stream) bool {
	wins := w.vadWins[:0]
	defer func() { w.vadWins = wins }()
	w.vadWinN = 0
	if len(w.energy) < len(job) {
		w.energy = make([]float32, len(job))
	}
	for k := 0; w.anyWindow(len(job), k); k++ {
		wins = wins[:0]
		var states []*VADState
		var who []int
		for i, s := range job {
			if k >= len(w.vadSets[i]) {
				continue
			}
			x := w.vadSets[i][k]
			if s.seg == nil { // rules mode: mode vad's segmenter hears the model's every window
				w.energy[i] = meanSquare(x)
				if s.floor.still(w.energy[i]) {
					// Digital silence or the line's steady noise: no
					// speech, and the model starts over after it.
					s.vad.h = [vadStateLen]float32{}
					copy(s.vad.tail[:], x[VADWindow-vadContext:])
					continue
				}
			}
			wins, states, who = append(wins, x), append(states, s.vad), append(who, i)
		}
		if len(wins) == 0 {
			continue
		}
		if cap(w.vadProbs) < len(wins) {
			w.vadProbs = make([]float32, len(wins))
		}
		probs := w.vadProbs[:len(wins)]
		if err := w.vad.Run(wins, states, probs); err != nil {
			w.b.opts.Logger.Warn("asr: VAD", "err", err)
			return false
		}
		w.vadWinN += int64(len(wins))
		for j, i := range who {
			s := job[i]
			end := w.vadFirst[i] + int64(k+1)*VADWindow
			if probs[j] > voiceThreshold {
				s.voiceEnd = end
			} else if s.seg == nil {
				s.floor.heard(w.energy[i])
			}
			if s.seg != nil {
				s.vadPend = append(s.vadPend, vadProb{end: end, p: probs[j]})
			}
		}
	}
	return true
}

// anyWindow tells whether one of the job's n streams has a k-th window.
func (w *worker) anyWindow(n, k int) bool {
	for _, set := range w.vadSets[:n] {
		if k < len(set) {
			return true
		}
	}
	return false
}

// meanSquare is a window's energy: its mean square.
func meanSquare(x []float32) float32 {
	var e float32
	for _, v := range x {
		e += v * v
	}
	return e / float32(len(x))
}

// noiseFloor is a quiet stream's line: the energy of the windows the VAD
// has found free of speech, so that the windows no louder than that
// steady noise need not be heard again. A window is still when it is
// digital silence (under -60 dBFS) or within floorMargin of the floor;
// any louder window goes to the VAD, and only the windows the VAD finds
// without speech move the floor (down at once, up slowly), so speech never
// raises it.
type noiseFloor struct {
	e float32 // mean square; 0: none measured yet
}

const (
	hushedEnergy = 1e-6 // -60 dBFS
	floorMargin  = 2    // 3 dB: white noise's windows of 512 vary by about ±0.5 dB
	floorRise    = 0.05 // of the way to a louder window without speech
)

func (f *noiseFloor) still(e float32) bool {
	if e < hushedEnergy {
		return true
	}
	if f.e > 0 && e <= f.e*floorMargin {
		f.follow(e)
		return true
	}
	return false
}

// heard takes a window the VAD found free of speech.
func (f *noiseFloor) heard(e float32) {
	if e >= hushedEnergy {
		f.follow(e)
	}
}

func (f *noiseFloor) follow(e float32) {
	if f.e == 0 || e < f.e {
		f.e = e
		return
	}
	f.e += (e - f.e) * floorRise
}

// voiceThreshold is the speech probability over which a VAD window keeps
// its stream's encoder running: below the segmenter's 0.5, so that a soft
// onset or a quiet word is not skipped.
const voiceThreshold = 0.3

// segment gives the segmenter the windows that end by the sample upTo (the
// audio the decoder has now stepped over) and reports speech starts and
// ends.
func (s *Stream) segment(upTo int64) {
	if s.seg == nil {
		return
	}
	k := 0
	for ; k < len(s.vadPend) && s.vadPend[k].end <= upTo; k++ {
		if e, ok := s.seg.Add(s.vadPend[k].p); ok {
			kind := SpeechStart
			if e.Speech {
				s.vadHeard = true
			} else {
				kind = SpeechEnd
			}
			s.onResult(Result{Stream: s.id, Kind: kind, Utt: s.utt, StartMs: e.AtMs, EndMs: e.AtMs})
		}
	}
	s.vadPend = append(s.vadPend[:0], s.vadPend[k:]...)
}

// commit makes a successful step's results the streams' state and reports
// partials, endpoints and finals. The encoder's rows are the job's streams
// not skipped, in order; a skipped stream's chunk is all blank frames.
func (w *worker) commit(job []*Stream) {
	info := w.b.info
	r := w.r
	n := len(w.enc)
	var bt *Batch
	if n > 0 {
		bt = r.batch
	}
	D := info.EncoderDim
	sub := info.ChunkShift / info.OutFrames
	beam := w.b.opts.Decoding == ModifiedBeamSearch
	for len(w.ends) < len(job) {
		w.ends = append(w.ends, stepEnd{})
	}
	row := 0
	for i, s := range job {
		w.ends[i] = stepEnd{}
		if w.skip[i] {
			s.quiet += info.OutFrames
			s.trailing += info.OutFrames
			for k := range s.hyps {
				s.hyps[k].trailing += info.OutFrames
			}
			s.mu.Lock()
			s.processed += int64(info.ChunkShift)
			w.ends[i] = stepEnd{processed: s.processed, dropped: s.dropped}
			s.mu.Unlock()
			continue
		}
		j := row // the stream's row in the encoder's batch
		row++
		stackRow(info, bt.NewStates, s.state, j, n, true)
		changed := false
		before := s.trailing
		if beam {
			s.hyps = append(s.hyps[:0], r.beams[j]...)
			b := best(s.hyps)
			changed = !slices.Equal(b.ys, s.tokens)
			s.tokens = append(s.tokens[:0], b.ys...)
			s.times = append(s.times[:0], b.times...)
			s.probs = append(s.probs[:0], b.probs...)
			s.trailing = b.trailing
		} else {
			h := &r.hyps[j]
			s.tokens = append(s.tokens, h.tokens...)
			s.times = append(s.times, h.times...)
			s.probs = append(s.probs, h.probs...)
			s.trailing = h.trailing
			copy(s.decOut, bt.JoinDec[j*D:(j+1)*D])
			s.hasDecOut = true
		}
		if s.trailing == before+info.OutFrames { // no token in the chunk
			s.quiet += info.OutFrames
		} else {
			s.quiet = s.trailing
		}
		s.mu.Lock()
		s.processed += int64(info.ChunkShift)
		processed, dropped := s.processed, s.dropped
		s.mu.Unlock()

		ntok := len(s.tokens) - info.ContextSize
		if ntok != s.lastLen || changed {
			s.lastLen = ntok
			s.onResult(s.result(Partial, processed, dropped))
		}
		w.ends[i] = stepEnd{processed: processed, dropped: dropped}
	}
	for i, s := range job {
		processed, dropped := w.ends[i].processed, w.ends[i].dropped
		s.segment(processed * 160)
		ntok := len(s.tokens) - info.ContextSize
		ep := &w.b.opts.Endpoint
		endpoint := ep.IsEndpoint(int(processed-s.segStart), s.trailing*sub)
		if ep.Mode == EndpointVAD {
			length := float64(processed-s.segStart) * 0.01
			// Words, and VAD heard their speech end (now or in an earlier
			// step, the words coming after it).
			ended := s.vadHeard && !s.seg.Speaking()
			endpoint = ep.Enabled && (ntok > 0 && ended || ep.Rule3.MinUtteranceLength > 0 && ep.Rule3.fires(0, length))
		}
		if endpoint {
			if ntok > 0 {
				s.onResult(s.result(Final, processed, dropped))
			}
			s.resetUtterance(processed, dropped)
		}
	}
}
