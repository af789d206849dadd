package asr

import (
	"errors"
	"math"
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
	vad      *VAD // endpoint mode vad; run in commit, on the worker
	ends     []stepEnd
	vadSets  [][][]float32
	vadWins  [][]float32
	vadProbs []float32
}

// runner owns an engine and the scratch of the step it runs.
type runner struct {
	eng       Engine
	in        chan []*Stream
	out       chan error
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
	if b.opts.Endpoint.Mode == EndpointVAD {
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
	r := &runner{eng: eng, in: make(chan []*Stream, 1), out: make(chan error, 1)}
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

func (r *runner) loop(info *ModelInfo) {
	defer r.eng.Close()
	for job := range r.in {
		err := r.step(info, job)
		if r.abandoned.Load() {
			return
		}
		r.out <- err
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

// run decodes one batch, retrying until it succeeds or the batcher closes.
func (w *worker) run(job []*Stream) bool {
	b := w.b
	w.retryDevice()
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
		w.r.in <- job
		w.timer.Reset(b.opts.RunTimeout)
		var err error
		timedOut := false
		select {
		case err = <-w.r.out:
		case <-w.timer.C:
			timedOut = true
		case <-b.quit:
			w.timer.Stop()
			return false
		}
		if !timedOut && !w.timer.Stop() {
			<-w.timer.C
		}
		if err == nil && !timedOut {
			w.commit(job)
			b.record(job, time.Since(start))
			w.failures = 0
			return true
		}
		w.failures++
		fallback := w.failures >= b.opts.FallbackAfter && w.opts.Provider != "" && w.opts.Provider != "cpu"
		b.fault(true, timedOut, fallback)
		b.opts.Logger.Warn("asr: batch step failed, retrying on a fresh engine",
			"worker", w.id, "batch", len(job), "timeout", timedOut, "err", errString(err), "failures", w.failures)
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

// runVAD runs Silero VAD over the audio the step decoded, all the job's
// streams in one model call per window, and reports speech starts and ends.
// A VAD error is logged; the streams' endpoints then wait for rule 3.
func (w *worker) runVAD(job []*Stream) {
	if w.vad == nil {
		return
	}
	wins := w.vadWins[:0]
	for i, s := range job {
		s.mu.Lock()
		w.vadSets[i] = s.vadWindows(w.vadSets[i][:0], w.ends[i].processed*160)
		s.mu.Unlock()
	}
	for k := 0; ; k++ {
		wins = wins[:0]
		var states []*VADState
		var who []int
		for i, s := range job {
			if k < len(w.vadSets[i]) {
				wins, states, who = append(wins, w.vadSets[i][k]), append(states, s.vad), append(who, i)
			}
		}
		if len(wins) == 0 {
			break
		}
		if cap(w.vadProbs) < len(wins) {
			w.vadProbs = make([]float32, len(wins))
		}
		probs := w.vadProbs[:len(wins)]
		if err := w.vad.Run(wins, states, probs); err != nil {
			w.b.opts.Logger.Warn("asr: VAD", "err", err)
			return
		}
		for j, i := range who {
			s := job[i]
			if e, ok := s.seg.Add(probs[j]); ok {
				kind := SpeechStart
				if e.Speech {
					s.vadHeard = true
				} else {
					kind = SpeechEnd
				}
				s.onResult(Result{Stream: s.id, Kind: kind, Utt: s.utt, StartMs: e.AtMs, EndMs: e.AtMs})
			}
		}
	}
	w.vadWins = wins
}

// commit makes a successful step's results the streams' state and reports
// partials, endpoints and finals.
func (w *worker) commit(job []*Stream) {
	info := w.b.info
	r := w.r
	bt := r.batch
	n := len(job)
	D := info.EncoderDim
	sub := info.ChunkShift / info.OutFrames
	beam := w.b.opts.Decoding == ModifiedBeamSearch
	for len(w.ends) < n {
		w.ends, w.vadSets = append(w.ends, stepEnd{}), append(w.vadSets, nil)
	}
	for i, s := range job {
		w.ends[i] = stepEnd{}
		stackRow(info, bt.NewStates, s.state, i, n, true)
		changed := false
		if beam {
			s.hyps = append(s.hyps[:0], r.beams[i]...)
			b := best(s.hyps)
			changed = !slices.Equal(b.ys, s.tokens)
			s.tokens = append(s.tokens[:0], b.ys...)
			s.times = append(s.times[:0], b.times...)
			s.probs = append(s.probs[:0], b.probs...)
			s.trailing = b.trailing
		} else {
			h := &r.hyps[i]
			s.tokens = append(s.tokens, h.tokens...)
			s.times = append(s.times, h.times...)
			s.probs = append(s.probs, h.probs...)
			s.trailing = h.trailing
			copy(s.decOut, bt.JoinDec[i*D:(i+1)*D])
			s.hasDecOut = true
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
	w.runVAD(job)
	for i, s := range job {
		processed, dropped := w.ends[i].processed, w.ends[i].dropped
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
