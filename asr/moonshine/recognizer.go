package moonshine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// SampleRate is the rate of the audio Transcribe takes.
const SampleRate = 16000

// Defaults of Options. The bucket is measured (docs/performance.md): 1 s
// batches finals of telephone prompts about 1.4 times fuller than 500 ms
// and errs no more than without padding.
const (
	DefaultMaxBatch        = 16
	DefaultBucketMs        = 1000
	DefaultTokensPerSecond = 6
)

// Options choose how a Recognizer runs.
type Options struct {
	// Provider is "cpu" (default) or "cuda"; CUDA that cannot start falls
	// back to CPU (logged; Recognizer.Provider tells which runs). Batches
	// are exact on CPU (a segment's text does not depend on the segments
	// beside it); on CUDA that has not been measured.
	Provider string
	// DeviceID is the CUDA device; default 0.
	DeviceID int
	// CUDAOptions are ONNX Runtime CUDA provider options, over ours:
	// device_id and cudnn_conv_algo_search HEURISTIC.
	CUDAOptions map[string]string
	// Threads is the intra-op thread count per session; default 1.
	Threads int
	// MaxBatch is the most segments in one encoder call and decoder step;
	// default DefaultMaxBatch.
	MaxBatch int
	// BucketMs: each segment is padded with silence to the next multiple of
	// this length, and only segments of one padded length share a batch
	// (the encoder has no mask: padding is part of what it hears, so a
	// segment's text depends on its padded length and nothing else).
	// Default DefaultBucketMs; -1 pads nothing (only segments of the very
	// same length share a batch).
	BucketMs int
	// TokensPerSecond bounds decoding: a segment stops after this many
	// tokens per second of its audio (unpadded, rounded down; the end token
	// counts). Default DefaultTokensPerSecond, as moonshine-js.
	TokensPerSecond int
	// Logger says when CUDA could not start; default slog.Default().
	Logger *slog.Logger

	// asPublished runs the model files as they are, without the rewrite
	// that makes batching exact (tests compare the two).
	asPublished bool
	// singleRowHead leaves the output projection unpadded.
	singleRowHead bool
	// noPrepack keeps ONNX Runtime from packing constant weights ahead
	// (a float MatMul then takes another kernel path, ulps apart).
	noPrepack bool
}

func (o Options) withDefaults() Options {
	if o.Provider == "" {
		o.Provider = "cpu"
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.BucketMs == 0 {
		o.BucketMs = DefaultBucketMs
	}
	if o.TokensPerSecond <= 0 {
		o.TokensPerSecond = DefaultTokensPerSecond
	}
	return o
}

// Recognizer transcribes segments with one model on one device. Its
// methods may be called from several goroutines; calls run one at a time.
type Recognizer struct {
	files    Files
	shape    Shape
	vocab    *Vocab
	opts     Options
	provider string
	bucket   int // samples; 1: no padding

	mu     sync.Mutex // one Transcribe at a time: buf is the recognizer's
	sess   *sessions
	closed bool
	buf    buffers

	rewrites [2]rewriteCounts // encoder's and decoder's, for tests
	forced   int              // Cost: every row decodes this many steps, mu held

	// debugLogits, if set, sees every decoder step's logits (tests).
	debugLogits func(step int, logits []float32, n int)
}

// New opens a model. ONNX Runtime must have been started (asr.InitRuntime).
func New(files Files, opts Options) (*Recognizer, error) {
	rs, err := NewN(files, opts, 1)
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// NewN opens n recognizers of one model, to run on as many cores, reading
// and rewriting the model files once. On the CPU they share one pair of
// sessions (see sessions); on CUDA each has its own.
func NewN(files Files, opts Options, n int) ([]*Recognizer, error) {
	files, err := files.Resolve()
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if opts.BucketMs < -1 {
		return nil, fmt.Errorf("moonshine: BucketMs %d", opts.BucketMs)
	}
	vocab, err := ReadVocab(files.Tokens)
	if err != nil {
		return nil, err
	}
	// ONNX Runtime reads the shapes (it opens each file) while the models
	// are rewritten; a file it refuses is refused for that, whatever the
	// rewrite made of it.
	var shape Shape
	var shapeErr error
	var wg sync.WaitGroup
	wg.Go(func() { shape, shapeErr = ReadShape(files) })
	m, err := loadModels(files, opts)
	wg.Wait()
	if shapeErr != nil {
		return nil, shapeErr
	}
	if err != nil {
		return nil, err
	}
	if vocab.Len() > shape.Vocab {
		return nil, fmt.Errorf("%w: %s has %d tokens, the decoder %d logits", ErrModel, files.Tokens, vocab.Len(), shape.Vocab)
	}
	var out []*Recognizer
	var cpu *sessions // the pair the CPU's recognizers share
	for range max(n, 1) {
		r := &Recognizer{files: files, shape: shape, vocab: vocab, opts: opts, provider: opts.Provider, bucket: 1, rewrites: m.rewrites}
		if opts.BucketMs > 0 {
			r.bucket = opts.BucketMs * SampleRate / 1000
		}
		if cpu != nil {
			r.sess = cpu.share()
			out = append(out, r)
			continue
		}
		r.sess, err = openSessions(files, m, shape, opts)
		if err != nil && opts.Provider == "cuda" {
			logger(opts.Logger).Warn("moonshine: CUDA provider unavailable, using CPU", "err", err)
			opts.Provider = "cpu"
			r.provider = "cpu"
			r.sess, err = openSessions(files, m, shape, opts)
		}
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		if opts.Provider == "cpu" {
			cpu = r.sess
		}
		out = append(out, r)
	}
	return out, nil
}

// Shape is the model's shape.
func (r *Recognizer) Shape() Shape { return r.shape }

// Provider names the execution provider in use ("cpu", "cuda").
func (r *Recognizer) Provider() string { return r.provider }

// PaddedLen is the length a segment of n samples is padded to: the next
// multiple of the bucket. Segments share a batch when it is the same.
func (r *Recognizer) PaddedLen(n int) int { return (n + r.bucket - 1) / r.bucket * r.bucket }

// budget is the most decoder steps for a segment of n samples.
func (r *Recognizer) budget(n int) int { return n * r.opts.TokensPerSecond / SampleRate }

// Close releases the sessions. It is idempotent.
func (r *Recognizer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.sess.release()
	return nil
}

// ErrClosed is returned by Transcribe after Close.
var ErrClosed = errors.New("moonshine: recognizer closed")

// Stop is why decoding a segment stopped.
type Stop uint8

const (
	// StopEnd: the model ended the text (or the segment is too short for
	// one token).
	StopEnd Stop = iota
	// StopBudget: the segment used its token budget (TokensPerSecond)
	// without ending: the model was likely making text up.
	StopBudget
	// StopRepeat: the text went round a loop, a run of tokens said again
	// and again (repeats); the text holds the loop once.
	StopRepeat
)

func (s Stop) String() string {
	switch s {
	case StopBudget:
		return "budget"
	case StopRepeat:
		return "repeat"
	}
	return "end"
}

// Result is a segment's text, its words and why its decoding stopped.
type Result struct {
	Text  string
	Words []Word // Text's words (split at spaces), in order
	Stop  Stop
}

// Word is a word of a Result's text as the model writes it ("Dial",
// "$250", "now.") and its confidence: the mean posterior of its tokens.
type Word struct {
	Text string
	Conf float32
}

// Transcribe returns the text of each segment (16 kHz mono). Segments of
// one padded length (PaddedLen) are decoded together, up to MaxBatch at a
// time; a segment too short for one token has the empty text.
func (r *Recognizer) Transcribe(segments [][]float32) ([]string, error) {
	res, err := r.Recognize(segments)
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(res))
	for i, x := range res {
		texts[i] = x.Text
	}
	return texts, nil
}

// Recognize is Transcribe telling, for each segment, why its decoding
// stopped: a text that used its budget or went round a loop is suspect.
func (r *Recognizer) Recognize(segments [][]float32) ([]Result, error) {
	return r.recognize(segments, 0)
}

// recognize is Recognize with every row decoding forced steps, the end
// token and loops ignored (0: as Recognize).
func (r *Recognizer) recognize(segments [][]float32, forced int) ([]Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.forced = forced
	defer func() { r.forced = 0 }()
	texts := make([]Result, len(segments))
	groups := map[int][]int{}
	var lens []int
	for i, s := range segments {
		if r.budget(len(s)) == 0 {
			continue
		}
		p := r.PaddedLen(len(s))
		if groups[p] == nil {
			lens = append(lens, p)
		}
		groups[p] = append(groups[p], i)
	}
	slices.Sort(lens)
	for _, p := range lens {
		for rows := groups[p]; len(rows) > 0; {
			n := min(len(rows), r.opts.MaxBatch)
			if err := r.batch(segments, rows[:n], p, texts); err != nil {
				return nil, err
			}
			rows = rows[n:]
		}
	}
	return texts, nil
}

// Cost measures the time of recognizing n segments of the given length at
// once, each decoding tokens tokens (the end token and loops ignored): what
// a busy second pass spends on a batch of finals, before any has come.
func (r *Recognizer) Cost(n int, length time.Duration, tokens int) (time.Duration, error) {
	segs := make([][]float32, n)
	var seed uint32 = 1
	for i := range segs {
		segs[i] = make([]float32, int(length.Seconds()*SampleRate))
		for k := range segs[i] {
			seed = seed*1664525 + 1013904223
			segs[i][k] = (float32(seed>>8)/float32(1<<24) - 0.5) * 0.01
		}
	}
	t := time.Now()
	_, err := r.recognize(segs, max(tokens, 1))
	return time.Since(t), err
}
