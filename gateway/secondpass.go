package gateway

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/asr/moonshine"
)

// The second pass recognizes each final's audio again with a larger,
// non-streaming model (Moonshine) before the final is published: the
// streaming model keeps making the partials and deciding where utterances
// end; the words of the finals come from the second pass. One SecondPass
// serves every call: the finals that are waiting when it turns to them are
// recognized together (the recognizer batches segments of one padded
// length). A final whose second pass fails, is refused by a guard, or does
// not come back in time is published from the first pass: never nothing,
// counted by reason.

// Fallback reasons: why a final was published from the first pass.
const (
	FallbackError   = "error"   // the recognizer failed
	FallbackTimeout = "timeout" // its result did not come back in time
	FallbackLag     = "lag"     // it waited too long to start, or the queue was full
	FallbackGuard   = "guard"   // the text looked made up: it used its token budget, looped, was empty or far longer than the first pass's
)

// FallbackReasons are the reasons, in the order metrics list them.
func FallbackReasons() []string {
	return []string{FallbackError, FallbackTimeout, FallbackLag, FallbackGuard}
}

// Recognizer recognizes segments of 16 kHz audio (moonshine.Recognizer).
type Recognizer interface {
	Recognize(segments [][]float32) ([]moonshine.Result, error)
}

// SecondPassOptions tune a SecondPass.
type SecondPassOptions struct {
	// MaxSegment: a final's audio longer than this is cut at its quietest
	// moments into pieces no longer (the model makes text up on long
	// segments). Default 15 s.
	MaxSegment time.Duration
	// Timeout: a final whose second pass has not come back this long after
	// it was asked for is published from the first pass (timeout; lag if it
	// had not started). Default 3 s.
	Timeout time.Duration
	// MaxQueue bounds the finals waiting; more fall back (lag). Default
	// 256.
	MaxQueue int
	// MaxRound is the most finals recognized together; default 16.
	MaxRound int
	// Name is the model's name in events ("moonshine-tiny"); default
	// "second-pass".
	Name string
	// OnDone, if set, learns how long each second pass took, from the ask
	// to the result (not for fallbacks).
	OnDone func(time.Duration)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (o SecondPassOptions) withDefaults() SecondPassOptions {
	if o.MaxSegment <= 0 {
		o.MaxSegment = 15 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 256
	}
	if o.MaxRound <= 0 {
		o.MaxRound = 16
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Name == "" {
		o.Name = "second-pass"
	}
	return o
}

// SecondPass is the shared second-pass stage: a goroutine per recognizer
// taking rounds of the finals asked for, and one ending those that
// overstay their time.
type SecondPass struct {
	recs []Recognizer
	opts SecondPassOptions
	jobs chan *passJob
	quit chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	inflight  map[*passJob]struct{} // asked for and not done
	fallbacks map[string]int64
	done      int64 // finals the second pass gave words to
	audio     time.Duration
	busy      time.Duration
	closed    bool

	cost atomic.Int64 // ns of recognition per second of audio, EWMA of busy rounds
}

// passJob is one final's audio waiting for its second pass.
type passJob struct {
	audio  []float32
	words  int // the first pass's words
	asked  time.Time
	result func(words []moonshine.Word, reason string)

	started bool // p.mu
	once    sync.Once
}

// NewSecondPass starts a second pass over recs, each recognizing a round
// at a time (one per core: a round's batch runs on one). cost, if known
// (Cost of a busy round), seeds the capacity estimate: recognition time per
// second of audio.
func NewSecondPass(recs []Recognizer, cost time.Duration, o SecondPassOptions) *SecondPass {
	o = o.withDefaults()
	p := &SecondPass{recs: recs, opts: o, jobs: make(chan *passJob, o.MaxQueue), quit: make(chan struct{}),
		inflight: map[*passJob]struct{}{}, fallbacks: map[string]int64{}}
	p.cost.Store(int64(cost))
	p.wg.Add(1 + len(recs))
	for _, r := range recs {
		go p.run(r)
	}
	go p.watch()
	return p
}

// Name is the model's name in events.
func (p *SecondPass) Name() string { return p.opts.Name }

// Workers is the number of recognizers, each on a core.
func (p *SecondPass) Workers() int { return len(p.recs) }

// ask queues a final's audio; result is called once, on a goroutine of the
// stage's (never the caller's: it may hold the call's lock), with the
// second pass's words or the reason to fall back. firstWords is how many
// words the first pass heard (a guard compares). A final that cannot wait
// (the stage closed, its queue full) is not queued: ask returns the reason
// to fall back at once (counted), and result is not called.
func (p *SecondPass) ask(audio []float32, firstWords int, result func([]moonshine.Word, string)) (_ *passJob, fallback string) {
	j := &passJob{audio: audio, words: firstWords, asked: time.Now(), result: result}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.fallbacks[FallbackError]++
		return nil, FallbackError
	}
	select {
	case p.jobs <- j: // a worker looks j up under p.mu: it is there first
		p.inflight[j] = struct{}{}
		return j, ""
	default:
		p.fallbacks[FallbackLag]++
		return nil, FallbackLag
	}
}

// abandon ends a job its caller gave up waiting for (timeout, counted);
// its result is not called. Any goroutine, the call's lock held or not.
func (p *SecondPass) abandon(j *passJob) {
	if j == nil {
		return
	}
	j.once.Do(func() {
		p.mu.Lock()
		delete(p.inflight, j)
		p.fallbacks[FallbackTimeout]++
		p.mu.Unlock()
	})
}

// finish gives a job its outcome, once.
func (p *SecondPass) finish(j *passJob, words []moonshine.Word, reason string) {
	j.once.Do(func() {
		p.mu.Lock()
		delete(p.inflight, j)
		if reason != "" {
			p.fallbacks[reason]++
		} else {
			p.done++
		}
		p.mu.Unlock()
		if reason == "" && p.opts.OnDone != nil {
			p.opts.OnDone(time.Since(j.asked))
		}
		j.result(words, reason)
	})
}

// run recognizes jobs on rec, a round at a time: every job waiting, up to
// MaxRound.
func (p *SecondPass) run(rec Recognizer) {
	defer p.wg.Done()
	var round []*passJob
	for {
		round = round[:0]
		select {
		case <-p.quit:
			return
		case j := <-p.jobs:
			round = append(round, j)
		}
	more:
		for len(round) < p.opts.MaxRound {
			select {
			case j := <-p.jobs:
				round = append(round, j)
			default:
				break more
			}
		}
		p.recognize(rec, round)
	}
}

// recognize runs one round: the jobs not already ended, each cut into
// pieces of at most MaxSegment.
func (p *SecondPass) recognize(rec Recognizer, round []*passJob) {
	p.mu.Lock()
	live := round[:0]
	for _, j := range round {
		if _, ok := p.inflight[j]; ok {
			j.started = true
			live = append(live, j)
		}
	}
	p.mu.Unlock()
	if len(live) == 0 {
		return
	}
	var segs [][]float32
	pieces := make([]int, len(live))
	var audio time.Duration
	for i, j := range live {
		cut := PassPieces(j.audio, p.opts.MaxSegment)
		segs = append(segs, cut...)
		pieces[i] = len(cut)
		audio += time.Duration(len(j.audio)) * time.Second / moonshine.SampleRate
	}
	t := time.Now()
	res, err := rec.Recognize(segs)
	took := time.Since(t)
	p.observe(len(live), audio, took)
	if err != nil {
		p.opts.Logger.Warn("gateway: second pass failed, finals from the first pass", "err", err, "finals", len(live))
		for _, j := range live {
			p.finish(j, nil, FallbackError)
		}
		return
	}
	for i, j := range live {
		words, reason := PassWords(res[:pieces[i]], j.words)
		res = res[pieces[i]:]
		p.finish(j, words, reason)
	}
}

// observe adds a round to the totals and, for a busy round (at least half
// of MaxRound), to the cost per second of audio.
func (p *SecondPass) observe(n int, audio, took time.Duration) {
	p.mu.Lock()
	p.audio += audio
	p.busy += took
	p.mu.Unlock()
	if n < max(1, p.opts.MaxRound/2) || audio <= 0 {
		return
	}
	sample := int64(float64(took) / audio.Seconds())
	for {
		old := p.cost.Load()
		next := sample
		if old > 0 {
			next = old + (sample-old)/5
		}
		if p.cost.CompareAndSwap(old, next) {
			return
		}
	}
}

// watch ends the jobs that overstay Timeout: lag if they never started,
// timeout if their round is still running.
func (p *SecondPass) watch() {
	defer p.wg.Done()
	tick := time.NewTicker(min(p.opts.Timeout/4, 100*time.Millisecond))
	defer tick.Stop()
	type late struct {
		j      *passJob
		reason string
	}
	var over []late
	for {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		over = over[:0]
		p.mu.Lock()
		for j := range p.inflight {
			if time.Since(j.asked) >= p.opts.Timeout {
				reason := FallbackLag
				if j.started {
					reason = FallbackTimeout
				}
				over = append(over, late{j, reason})
			}
		}
		p.mu.Unlock()
		for _, l := range over {
			p.finish(l.j, nil, l.reason)
		}
	}
}

// Cost is the recognition time per second of final audio at busy rounds
// (measured, or the seed until a busy round ran).
func (p *SecondPass) Cost() time.Duration { return time.Duration(p.cost.Load()) }

// SecondPassStats are the stage's counters.
type SecondPassStats struct {
	Done      int64            // finals with second-pass words
	Fallbacks map[string]int64 // finals from the first pass, by reason
	Waiting   int              // asked for and not done
	Audio     time.Duration    // audio recognized
	Busy      time.Duration    // time spent recognizing
}

// Stats returns a copy of the counters.
func (p *SecondPass) Stats() SecondPassStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := SecondPassStats{Done: p.done, Fallbacks: map[string]int64{}, Waiting: len(p.inflight), Audio: p.audio, Busy: p.busy}
	for _, r := range FallbackReasons() {
		s.Fallbacks[r] = p.fallbacks[r]
	}
	return s
}

// Close stops the stage: the finals still waiting fall back (error), and
// its goroutines are done when it returns. Idempotent.
func (p *SecondPass) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	p.mu.Lock()
	left := make([]*passJob, 0, len(p.inflight))
	for j := range p.inflight {
		left = append(left, j)
	}
	p.mu.Unlock()
	for _, j := range left {
		p.finish(j, nil, FallbackError)
	}
}
