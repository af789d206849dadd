package moonshine

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// Shape is what decoding needs to know of a model, read from its ONNX files.
type Shape struct {
	Layers  int // decoder layers (past_key_values.{i}.*)
	Heads   int // key/value heads
	HeadDim int
	Hidden  int // encoder output width
	Vocab   int // logits per token
}

// ReadShape reads a model's shape from its encoder and merged decoder.
// ONNX Runtime must have been started (asr.InitRuntime).
func ReadShape(files Files) (Shape, error) {
	var s Shape
	ins, outs, err := ort.GetInputOutputInfo(files.Encoder)
	if err != nil {
		return s, fmt.Errorf("%w: %s: %v", ErrModel, files.Encoder, err)
	}
	if len(ins) != 1 || ins[0].Name != "input_values" || len(outs) != 1 || outs[0].Name != "last_hidden_state" ||
		len(outs[0].Dimensions) != 3 {
		return s, fmt.Errorf("%w: %s: want input_values → last_hidden_state [B, T, D]", ErrModel, files.Encoder)
	}
	s.Hidden = int(outs[0].Dimensions[2])
	ins, outs, err = ort.GetInputOutputInfo(files.Decoder)
	if err != nil {
		return s, fmt.Errorf("%w: %s: %v", ErrModel, files.Decoder, err)
	}
	have := map[string]ort.InputOutputInfo{}
	for _, t := range append(ins, outs...) {
		have[t.Name] = t
	}
	for _, t := range ins {
		rest, ok := strings.CutPrefix(t.Name, "past_key_values.")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
		if err != nil {
			return s, fmt.Errorf("%w: %s: input %s", ErrModel, files.Decoder, t.Name)
		}
		s.Layers = max(s.Layers, i+1)
		if len(t.Dimensions) != 4 {
			return s, fmt.Errorf("%w: %s: %s is not [B, heads, L, dim]", ErrModel, files.Decoder, t.Name)
		}
		s.Heads, s.HeadDim = int(t.Dimensions[1]), int(t.Dimensions[3])
	}
	want := []string{"input_ids", "encoder_hidden_states", "use_cache_branch", "logits"}
	for i := range s.Layers {
		for _, n := range cacheNames(i) {
			want = append(want, "past_key_values."+n, "present."+n)
		}
	}
	for _, n := range want {
		if _, ok := have[n]; !ok {
			return s, fmt.Errorf("%w: %s: no %s (not a merged Moonshine decoder)", ErrModel, files.Decoder, n)
		}
	}
	if d := have["encoder_hidden_states"].Dimensions; len(d) != 3 || int(d[2]) != s.Hidden {
		return s, fmt.Errorf("%w: %s: encoder_hidden_states %v does not take the encoder's width %d", ErrModel, files.Decoder, d, s.Hidden)
	}
	if d := have["logits"].Dimensions; len(d) == 3 && d[2] > 0 {
		s.Vocab = int(d[2])
	}
	if s.Layers == 0 || s.Heads <= 0 || s.HeadDim <= 0 || s.Hidden <= 0 || s.Vocab <= tokenEnd {
		return s, fmt.Errorf("%w: %s: shape %+v", ErrModel, files.Decoder, s)
	}
	return s, nil
}

// cacheNames are the four cache tensors of layer i, in the order the engine
// keeps them: decoder key and value (they grow a step at a time), encoder
// key and value (made by the first step, then fixed).
func cacheNames(i int) [4]string {
	p := "." + strconv.Itoa(i) + "."
	return [4]string{p[1:] + "decoder.key", p[1:] + "decoder.value", p[1:] + "encoder.key", p[1:] + "encoder.value"}
}

// sessions are an encoder's and a decoder's, held by one recognizer or, on
// the CPU, shared by all that NewN opened: ONNX Runtime runs a session from
// several threads at once, each run on its caller's thread (one intra-op
// thread), so n recognizers use n cores with one copy of the weights. On
// CUDA each recognizer has its own (and its own stream).
type sessions struct {
	enc, dec *ort.DynamicAdvancedSession
	refs     atomic.Int32
}

// share adds a holder.
func (s *sessions) share() *sessions {
	s.refs.Add(1)
	return s
}

// release drops a holder; the last destroys the sessions.
func (s *sessions) release() {
	if s.refs.Add(-1) == 0 {
		s.enc.Destroy()
		s.dec.Destroy()
	}
}

// openSessions opens the encoder and the merged decoder, at once, held
// once. The decoder's inputs are input_ids, encoder_hidden_states,
// use_cache_branch, then the caches layer by layer (cacheNames); its
// outputs logits, then the present caches in the same order.
func openSessions(files Files, m models, shape Shape, opts Options) (_ *sessions, err error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("moonshine: session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
		return nil, fmt.Errorf("moonshine: intra-op threads: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("moonshine: inter-op threads: %w", err)
	}
	// ONNX Runtime's graph optimizations (fusions, even some of the basic
	// level) make kernels take paths that depend on the batch's shape,
	// moving a row's values by an ulp or so; the int8 requantization after
	// every layer turns that into logits that differ by up to 0.6 between
	// one segment alone and the same segment in a batch (measured). The
	// graph as written computes every row alike.
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, fmt.Errorf("moonshine: graph optimization: %w", err)
	}
	if opts.noPrepack {
		if err := so.AddSessionConfigEntry("session.disable_prepacking", "1"); err != nil {
			return nil, fmt.Errorf("moonshine: prepacking: %w", err)
		}
	}
	switch opts.Provider {
	case "cpu":
	case "cuda":
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("moonshine: CUDA options: %w", err)
		}
		defer co.Destroy()
		// Segment lengths change from call to call: an exhaustive cuDNN
		// search for every new input shape would stall those calls.
		m := map[string]string{"cudnn_conv_algo_search": "HEURISTIC"}
		maps.Copy(m, opts.CUDAOptions)
		m["device_id"] = strconv.Itoa(opts.DeviceID)
		if err := co.Update(m); err != nil {
			return nil, fmt.Errorf("moonshine: CUDA options: %w", err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("moonshine: CUDA provider: %w", err)
		}
	default:
		return nil, fmt.Errorf("moonshine: unknown provider %q (want cpu or cuda)", opts.Provider)
	}
	in := []string{"input_ids", "encoder_hidden_states", "use_cache_branch"}
	out := []string{"logits"}
	for i := range shape.Layers {
		for _, n := range cacheNames(i) {
			in = append(in, "past_key_values."+n)
			out = append(out, "present."+n)
		}
	}
	s := &sessions{}
	var encErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		s.enc, encErr = ort.NewDynamicAdvancedSessionWithONNXData(m.encoder, []string{"input_values"}, []string{"last_hidden_state"}, so)
	})
	s.dec, err = ort.NewDynamicAdvancedSessionWithONNXData(m.decoder, in, out, so)
	wg.Wait()
	switch {
	case encErr != nil:
		if s.dec != nil {
			s.dec.Destroy()
		}
		return nil, fmt.Errorf("moonshine: open %s: %w", files.Encoder, encErr)
	case err != nil:
		s.enc.Destroy()
		return nil, fmt.Errorf("moonshine: open %s: %w", files.Decoder, err)
	}
	s.refs.Store(1)
	return s, nil
}

// models are the encoder and decoder as the sessions load them, and what
// the rewrite changed in each.
type models struct {
	encoder, decoder []byte
	rewrites         [2]rewriteCounts // zero as published
}

// loadModels reads the model files, rewritten for exact batching
// (rowQuantize) unless opts.asPublished.
func loadModels(files Files, opts Options) (models, error) {
	var m models
	var err error
	if m.encoder, m.rewrites[0], err = loadModel(files.Encoder, opts); err != nil {
		return m, err
	}
	m.decoder, m.rewrites[1], err = loadModel(files.Decoder, opts)
	return m, err
}

// loadModel reads one model file for loadModels. The rewrite reads a graph
// as a Moonshine export has it; it runs beside ReadShape, before anything
// says the file is one, so a graph it cannot follow is an error, not a
// panic.
func loadModel(path string, opts Options) (model []byte, counts rewriteCounts, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %s: batching per row: not a graph of a Moonshine export (%v)", ErrModel, path, p)
		}
	}()
	if model, err = os.ReadFile(path); err != nil {
		return nil, counts, fmt.Errorf("%w: %v", ErrModel, err)
	}
	if opts.asPublished {
		return model, counts, nil
	}
	model, rw, err := rowQuantize(model, !opts.singleRowHead)
	if err != nil {
		return nil, counts, fmt.Errorf("%w: %s: batching per row: %v", ErrModel, path, err)
	}
	return model, rw.rewriteCounts, nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
