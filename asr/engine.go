package asr

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrAborted is returned by an engine call cut short by Abort.
var ErrAborted = errors.New("asr: engine run aborted")

// Batch holds the inputs and outputs of one model step for N streams. Its
// slices belong to the engine that made it and alias its tensors.
type Batch struct {
	N int
	// Encoder: X is [N, ChunkFrames, FeatureDim]; States[i] is ModelInfo.States[i]
	// stacked on its batch axis; the outputs have the same layout.
	X         []float32
	States    []StateBuf
	EncOut    []float32 // [N, OutFrames, EncoderDim]
	NewStates []StateBuf
	// Decoder: Y is [N, ContextSize] token ids, DecOut [N, EncoderDim].
	Y      []int64
	DecOut []float32
	// Joiner: JoinEnc and JoinDec are [N, EncoderDim]; Logits [N, VocabSize].
	JoinEnc, JoinDec []float32
	Logits           []float32
}

// StateBuf holds one state tensor: F for float32 states, I for int64 ones.
type StateBuf struct {
	F []float32
	I []int64
}

// Engine runs the three networks of a transducer. Implementations: ONNX
// Runtime on CPU or CUDA; tests wrap it to inject faults. An engine is used
// by one goroutine at a time, except Abort, which may be called from any.
type Engine interface {
	// Batch returns the buffers for a step of n streams, valid until the
	// next call to Batch.
	Batch(n int) (*Batch, error)
	// Heads returns decoder and joiner buffers for n rows (beam search runs
	// them on every hypothesis of every stream), valid until the next call
	// to Heads; they do not alias those of Batch.
	Heads(n int) (*Batch, error)
	Encode(b *Batch) error
	Decode(b *Batch) error
	Join(b *Batch) error
	// Abort makes a call in progress return soon with an error.
	Abort()
	// Provider names the execution provider in use ("cpu", "cuda").
	Provider() string
	Close() error
}

// EngineOptions choose how an engine runs.
type EngineOptions struct {
	// Provider is the execution provider: cpu (the default) or cuda. If
	// CUDA does not start at all, the run recognizes on CPU with the CPU's
	// defaults (logged). An engine whose device is lost while serving
	// (fresh engines do not open on it, or steps fail three times in a
	// row) moves to cpu and tries its device again every gpu_retry.
	Provider string `yaml:"provider"`
	// DeviceID is the CUDA device; default 0.
	DeviceID int `yaml:"-"`
	// CUDAOptions are ONNX Runtime CUDA provider options, over ours
	// (device_id, from device_ids, and cudnn_conv_algo_search HEURISTIC):
	// gpu_mem_limit: "8589934592" (bytes per engine) on a shared GPU,
	// arena_extend_strategy, ... An option the provider refuses keeps the
	// engines on CPU (logged).
	CUDAOptions map[string]string `yaml:"cuda_options"`
	// Threads is the intra-op thread count of each engine's sessions;
	// default 1.
	Threads int `yaml:"threads"`
	// Logger says when CUDA could not start; default slog.Default(). The
	// batcher gives its own.
	Logger *slog.Logger `yaml:"-"`
}

// ortEngine runs a model on ONNX Runtime.
type ortEngine struct {
	info     *ModelInfo
	provider string
	enc      *ort.DynamicAdvancedSession
	dec      *ort.DynamicAdvancedSession
	join     *ort.DynamicAdvancedSession
	run      *ort.RunOptions

	capN    int // batch the backing arrays hold
	backing *Batch
	sets    map[int]*tensorSet
	// The decoder and joiner at other row counts (Heads).
	headCap     int
	headBacking *Batch
	heads       map[int]*tensorSet
	// closeMu orders Abort (any goroutine) against Close (the owner).
	closeMu sync.Mutex
	closed  bool
}

// tensorSet is the ORT values of one batch size, over the engine's backing arrays.
type tensorSet struct {
	batch           Batch
	encIn, encOut   []ort.Value
	decIn, decOut   []ort.Value
	joinIn, joinOut []ort.Value
}

// NewEngine opens the model's three networks on ONNX Runtime. When the CUDA
// provider cannot start it falls back to CPU and says so in the log; the
// returned engine's Provider tells which one runs.
func NewEngine(info *ModelInfo, opts EngineOptions) (Engine, error) {
	e, err := newORTEngine(info, opts)
	if err != nil && opts.Provider == "cuda" {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("asr: CUDA provider unavailable, using CPU", "err", err)
		opts.Provider = "cpu"
		e, err = newORTEngine(info, opts)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

func newORTEngine(info *ModelInfo, opts EngineOptions) (*ortEngine, error) {
	if opts.Provider == "" {
		opts.Provider = "cpu"
	}
	if opts.Threads <= 0 {
		opts.Threads = 1
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("asr: session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
		return nil, fmt.Errorf("asr: intra-op threads: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("asr: inter-op threads: %w", err)
	}
	switch opts.Provider {
	case "cpu":
	case "cuda":
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("asr: CUDA options: %w", err)
		}
		defer co.Destroy()
		// The batch size changes from step to step: an exhaustive cuDNN
		// search for every new input shape would stall those steps.
		m := map[string]string{"cudnn_conv_algo_search": "HEURISTIC"}
		maps.Copy(m, opts.CUDAOptions)
		m["device_id"] = fmt.Sprint(opts.DeviceID)
		if err := co.Update(m); err != nil {
			return nil, fmt.Errorf("asr: CUDA options: %w", err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("asr: CUDA provider: %w", err)
		}
	default:
		return nil, fmt.Errorf("asr: unknown provider %q (want cpu or cuda)", opts.Provider)
	}
	e := &ortEngine{info: info, provider: opts.Provider, sets: map[int]*tensorSet{}, heads: map[int]*tensorSet{}}
	encIn, encOut := []string{"x"}, []string{"encoder_out"}
	for _, s := range info.States {
		encIn = append(encIn, s.Name)
		encOut = append(encOut, s.Output)
	}
	if e.enc, err = ort.NewDynamicAdvancedSession(info.Files.Encoder, encIn, encOut, so); err != nil {
		return nil, fmt.Errorf("asr: open %s: %w", info.Files.Encoder, err)
	}
	if e.dec, err = ort.NewDynamicAdvancedSession(info.Files.Decoder, []string{"y"}, []string{"decoder_out"}, so); err != nil {
		e.Close()
		return nil, fmt.Errorf("asr: open %s: %w", info.Files.Decoder, err)
	}
	if e.join, err = ort.NewDynamicAdvancedSession(info.Files.Joiner, []string{"encoder_out", "decoder_out"}, []string{"logit"}, so); err != nil {
		e.Close()
		return nil, fmt.Errorf("asr: open %s: %w", info.Files.Joiner, err)
	}
	if e.run, err = ort.NewRunOptions(); err != nil {
		e.Close()
		return nil, fmt.Errorf("asr: run options: %w", err)
	}
	return e, nil
}

func (e *ortEngine) Provider() string { return e.provider }

func (e *ortEngine) grow(n int) {
	if e.capN >= n {
		return
	}
	c := max(n, 2*e.capN)
	if e.info.MaxBatch > 0 {
		c = min(c, e.info.MaxBatch)
	}
	for _, s := range e.sets {
		s.destroy()
	}
	clear(e.sets)
	m := e.info
	b := &Batch{
		X:       make([]float32, c*m.ChunkFrames*m.FeatureDim),
		EncOut:  make([]float32, c*m.OutFrames*m.EncoderDim),
		Y:       make([]int64, c*m.ContextSize),
		DecOut:  make([]float32, c*m.EncoderDim),
		JoinEnc: make([]float32, c*m.EncoderDim),
		JoinDec: make([]float32, c*m.EncoderDim),
		Logits:  make([]float32, c*m.VocabSize),
	}
	for _, s := range m.States {
		if s.Int64 {
			b.States = append(b.States, StateBuf{I: make([]int64, c*s.size)})
			b.NewStates = append(b.NewStates, StateBuf{I: make([]int64, c*s.size)})
		} else {
			b.States = append(b.States, StateBuf{F: make([]float32, c*s.size)})
			b.NewStates = append(b.NewStates, StateBuf{F: make([]float32, c*s.size)})
		}
	}
	e.backing, e.capN = b, c
}

func (e *ortEngine) Batch(n int) (*Batch, error) {
	if n <= 0 || (e.info.MaxBatch > 0 && n > e.info.MaxBatch) {
		return nil, fmt.Errorf("asr: batch of %d (model allows %d)", n, e.info.MaxBatch)
	}
	if s, ok := e.sets[n]; ok {
		return &s.batch, nil
	}
	e.grow(n)
	s, err := e.newSet(e.backing, n, true)
	if err != nil {
		return nil, err
	}
	e.sets[n] = s
	return &s.batch, nil
}

func (e *ortEngine) Heads(n int) (*Batch, error) {
	if n <= 0 {
		return nil, fmt.Errorf("asr: heads for %d rows", n)
	}
	if s, ok := e.heads[n]; ok {
		return &s.batch, nil
	}
	if e.headCap < n {
		c := max(n, 2*e.headCap)
		for _, s := range e.heads {
			s.destroy()
		}
		clear(e.heads)
		m := e.info
		e.headBacking = &Batch{Y: make([]int64, c*m.ContextSize), DecOut: make([]float32, c*m.EncoderDim),
			JoinEnc: make([]float32, c*m.EncoderDim), JoinDec: make([]float32, c*m.EncoderDim), Logits: make([]float32, c*m.VocabSize)}
		e.headCap = c
	}
	s, err := e.newSet(e.headBacking, n, false)
	if err != nil {
		return nil, err
	}
	e.heads[n] = s
	return &s.batch, nil
}

func tensor[T ort.TensorData](data []T, dims ...int64) (ort.Value, []T, error) {
	sh := ort.NewShape(dims...)
	v := data[:sh.FlattenedSize()]
	t, err := ort.NewTensor(sh, v)
	if err != nil {
		return nil, nil, err
	}
	return t, v, nil
}

// newSet makes the ORT values of n rows over the backing arrays bk: the
// encoder's (when encoder) and the decoder's and joiner's.
func (e *ortEngine) newSet(bk *Batch, n int, encoder bool) (*tensorSet, error) {
	m := e.info
	N := int64(n)
	s := &tensorSet{}
	b := &s.batch
	b.N = n
	var errs []error // every tensor that could not be made, not only the last
	add := func(list *[]ort.Value, v ort.Value, err error) {
		if err != nil {
			errs = append(errs, err)
		}
		if v != nil {
			*list = append(*list, v)
		}
	}
	var v ort.Value
	var terr error
	if encoder {
		var x []float32
		v, x, terr = tensor(bk.X, N, int64(m.ChunkFrames), int64(m.FeatureDim))
		b.X = x
		add(&s.encIn, v, terr)
		v, b.EncOut, terr = tensor(bk.EncOut, N, int64(m.OutFrames), int64(m.EncoderDim))
		add(&s.encOut, v, terr)
		b.States = make([]StateBuf, len(m.States))
		b.NewStates = make([]StateBuf, len(m.States))
		for i, st := range m.States {
			dims := append([]int64(nil), st.Shape...)
			dims[st.Axis] = N
			var e1, e2 error
			var v1, v2 ort.Value
			if st.Int64 {
				v1, b.States[i].I, e1 = tensor(bk.States[i].I, dims...)
				v2, b.NewStates[i].I, e2 = tensor(bk.NewStates[i].I, dims...)
			} else {
				v1, b.States[i].F, e1 = tensor(bk.States[i].F, dims...)
				v2, b.NewStates[i].F, e2 = tensor(bk.NewStates[i].F, dims...)
			}
			add(&s.encIn, v1, e1)
			add(&s.encOut, v2, e2)
		}
	}
	v, b.Y, terr = tensor(bk.Y, N, int64(m.ContextSize))
	add(&s.decIn, v, terr)
	v, b.DecOut, terr = tensor(bk.DecOut, N, int64(m.EncoderDim))
	add(&s.decOut, v, terr)
	v, b.JoinEnc, terr = tensor(bk.JoinEnc, N, int64(m.EncoderDim))
	add(&s.joinIn, v, terr)
	v, b.JoinDec, terr = tensor(bk.JoinDec, N, int64(m.EncoderDim))
	add(&s.joinIn, v, terr)
	v, b.Logits, terr = tensor(bk.Logits, N, int64(m.VocabSize))
	add(&s.joinOut, v, terr)
	err := errors.Join(errs...)
	if err != nil {
		s.destroy()
		return nil, fmt.Errorf("asr: tensors for batch %d: %w", n, err)
	}
	return s, nil
}

func (s *tensorSet) destroy() {
	for _, l := range [][]ort.Value{s.encIn, s.encOut, s.decIn, s.decOut, s.joinIn, s.joinOut} {
		for _, v := range l {
			v.Destroy()
		}
	}
}

// ErrEngineClosed is returned by a run on a closed engine.
var ErrEngineClosed = errors.New("asr: engine closed")

func (e *ortEngine) runOn(sess *ort.DynamicAdvancedSession, b *Batch, pick func(*tensorSet) ([]ort.Value, []ort.Value)) error {
	if e.closed { // Close is the owner's, like this call
		return ErrEngineClosed
	}
	s, ok := e.sets[b.N]
	if !ok || &s.batch != b {
		if s, ok = e.heads[b.N]; !ok || &s.batch != b {
			return fmt.Errorf("asr: batch of %d does not belong to this engine", b.N)
		}
	}
	in, out := pick(s)
	if err := sess.RunWithOptions(in, out, e.run); err != nil {
		return fmt.Errorf("asr: run: %w", err)
	}
	return nil
}

func (e *ortEngine) Encode(b *Batch) error {
	return e.runOn(e.enc, b, func(s *tensorSet) ([]ort.Value, []ort.Value) { return s.encIn, s.encOut })
}

func (e *ortEngine) Decode(b *Batch) error {
	return e.runOn(e.dec, b, func(s *tensorSet) ([]ort.Value, []ort.Value) { return s.decIn, s.decOut })
}

func (e *ortEngine) Join(b *Batch) error {
	return e.runOn(e.join, b, func(s *tensorSet) ([]ort.Value, []ort.Value) { return s.joinIn, s.joinOut })
}

// Abort asks ONNX Runtime to stop the run in progress; the engine is not
// used again after it (the batcher opens a fresh one).
func (e *ortEngine) Abort() {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.run != nil && !e.closed {
		e.run.Terminate()
	}
}

// Close releases the sessions and tensors; idempotent.
func (e *ortEngine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	for _, s := range e.sets {
		s.destroy()
	}
	for _, s := range e.heads {
		s.destroy()
	}
	for _, s := range []*ort.DynamicAdvancedSession{e.enc, e.dec, e.join} {
		if s != nil {
			s.Destroy()
		}
	}
	if e.run != nil {
		e.run.Destroy()
	}
	return nil
}
