package asr

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrModel is wrapped by every error about a model directory or file that
// cannot be used.
var ErrModel = errors.New("asr: unusable model")

// ModelFiles names the files of a transducer. Empty names are found in Dir.
// In the gateway's configuration they are keys of the asr section.
type ModelFiles struct {
	// Dir is the model directory, where the files are looked for
	// (callscribe serve: empty, the shared test model next to the
	// repository).
	Dir string `yaml:"model_dir"`
	// Encoder is the encoder's file name in model_dir (or a path); empty:
	// encoder*fp32.dynbatch.onnx, else encoder*.onnx.
	Encoder string `yaml:"encoder"`
	// Decoder is the decoder's file; empty: decoder*.onnx.
	Decoder string `yaml:"decoder"`
	// Joiner is the joiner's file; empty: joiner*.onnx without int8
	// (batch-invariant), else joiner*.onnx.
	Joiner string `yaml:"joiner"`
	// Tokens is the token table; empty: tokens.txt.
	Tokens string `yaml:"-"`
}

// Resolve fills in missing names from Dir and checks the files exist.
func (f ModelFiles) Resolve() (ModelFiles, error) {
	pick := func(name string, patterns ...string) (string, error) {
		if name != "" {
			if !filepath.IsAbs(name) && f.Dir != "" && !strings.ContainsRune(name, os.PathSeparator) {
				name = filepath.Join(f.Dir, name)
			}
			if _, err := os.Stat(name); err != nil {
				return "", fmt.Errorf("%w: %v", ErrModel, err)
			}
			return name, nil
		}
		for _, p := range patterns {
			m, _ := filepath.Glob(filepath.Join(f.Dir, p))
			for _, c := range m {
				if !strings.Contains(filepath.Base(c), "int8") || strings.Contains(p, "int8") {
					return c, nil
				}
			}
		}
		return "", fmt.Errorf("%w: no %s in %s", ErrModel, patterns[len(patterns)-1], f.Dir)
	}
	var err error
	out := f
	if out.Encoder, err = pick(f.Encoder, "encoder*fp32.dynbatch.onnx", "encoder*dynbatch*.onnx", "encoder*int8*.onnx", "encoder*.onnx"); err != nil {
		return f, err
	}
	if out.Decoder, err = pick(f.Decoder, "decoder*.onnx", "decoder*int8*.onnx"); err != nil {
		return f, err
	}
	if out.Joiner, err = pick(f.Joiner, "joiner*.onnx", "joiner*int8*.onnx"); err != nil {
		return f, err
	}
	if out.Tokens, err = pick(f.Tokens, "tokens.txt"); err != nil {
		return f, err
	}
	return out, nil
}

// StateSpec describes one encoder state tensor.
type StateSpec struct {
	Name   string  // input name
	Output string  // output name (new_<Name>)
	Shape  []int64 // with batch 1
	Axis   int     // batch axis
	Int64  bool    // element type int64 (else float32)
	size   int     // elements per stream
	pre    int     // product of dims before Axis
	post   int     // product of dims after Axis
}

// Size is the number of elements one stream holds.
func (s StateSpec) Size() int { return s.size }

// ModelInfo is what the engine and decoder need to know of a model, all of
// it read from the ONNX files and tokens.txt.
type ModelInfo struct {
	Files       ModelFiles
	Type        string // metadata model_type
	ChunkFrames int    // T: feature frames per encoder call
	ChunkShift  int    // decode_chunk_len: frames consumed per call
	FeatureDim  int
	OutFrames   int // encoder output frames per call
	EncoderDim  int // encoder_out / decoder_out width
	ContextSize int
	VocabSize   int
	MaxBatch    int // 0: the batch axis is dynamic; else fixed
	States      []StateSpec
	Tokens      []string
	BlankID     int
	UnkID       int // -1 when the vocabulary has no <unk>
}

// FrameShiftMs is the time of one encoder output frame.
func (m *ModelInfo) FrameShiftMs() int { return 10 * m.ChunkShift / m.OutFrames }

// StateBytes is the size of one stream's encoder state.
func (m *ModelInfo) StateBytes() int {
	n := 0
	for _, s := range m.States {
		if s.Int64 {
			n += 8 * s.size
		} else {
			n += 4 * s.size
		}
	}
	return n
}

// tensorInfo is the part of an ONNX input or output the model loader uses.
type tensorInfo struct {
	Name  string
	Dims  []int64 // -1 for a symbolic dim
	Int64 bool
}

// onnxFile is what the loader reads from one ONNX file.
type onnxFile struct {
	Inputs, Outputs []tensorInfo
	Meta            map[string]string
}

func metaInt(f onnxFile, file, key string) (int, error) {
	v, ok := f.Meta[key]
	if !ok {
		return 0, fmt.Errorf("%w: %s has no metadata %q", ErrModel, file, key)
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%w: %s metadata %s=%q: %v", ErrModel, file, key, v, err)
	}
	return n, nil
}

// batchAxisByName is the zipformer2 export's layout, used when a batch-1
// model has no symbolic dim to show its batch axis.
func batchAxisByName(name string) int {
	for _, p := range []string{"cached_key", "cached_nonlin_attn", "cached_val1", "cached_val2"} {
		if strings.HasPrefix(name, p) {
			return 1
		}
	}
	return 0
}

// newModelInfo checks a zipformer2 transducer and describes it.
func newModelInfo(files ModelFiles, enc, dec, join onnxFile) (*ModelInfo, error) {
	m := &ModelInfo{Files: files, Type: enc.Meta["model_type"], BlankID: 0, UnkID: -1}
	if m.Type != "zipformer2" {
		return nil, fmt.Errorf("%w: %s: model_type %q, want zipformer2", ErrModel, files.Encoder, m.Type)
	}
	var err error
	if m.ChunkFrames, err = metaInt(enc, files.Encoder, "T"); err != nil {
		return nil, err
	}
	if m.ChunkShift, err = metaInt(enc, files.Encoder, "decode_chunk_len"); err != nil {
		return nil, err
	}
	if m.ContextSize, err = metaInt(dec, files.Decoder, "context_size"); err != nil {
		return nil, err
	}
	if m.VocabSize, err = metaInt(dec, files.Decoder, "vocab_size"); err != nil {
		return nil, err
	}
	if len(enc.Inputs) < 2 || enc.Inputs[0].Name != "x" || len(enc.Inputs[0].Dims) != 3 {
		return nil, fmt.Errorf("%w: %s: first input must be x [N,T,F]", ErrModel, files.Encoder)
	}
	x := enc.Inputs[0]
	m.FeatureDim = int(x.Dims[2])
	if x.Dims[1] != int64(m.ChunkFrames) {
		return nil, fmt.Errorf("%w: %s: x has %d frames, metadata T=%d", ErrModel, files.Encoder, x.Dims[1], m.ChunkFrames)
	}
	if x.Dims[0] > 0 {
		m.MaxBatch = int(x.Dims[0])
	}
	outs := map[string]tensorInfo{}
	for _, o := range enc.Outputs {
		outs[o.Name] = o
	}
	eo, ok := outs["encoder_out"]
	if !ok || len(eo.Dims) != 3 || eo.Dims[1] <= 0 || eo.Dims[2] <= 0 {
		return nil, fmt.Errorf("%w: %s: no encoder_out [N,frames,dim]", ErrModel, files.Encoder)
	}
	m.OutFrames, m.EncoderDim = int(eo.Dims[1]), int(eo.Dims[2])
	if m.ChunkShift%m.OutFrames != 0 {
		return nil, fmt.Errorf("%w: decode_chunk_len %d is not a multiple of %d output frames", ErrModel, m.ChunkShift, m.OutFrames)
	}
	for _, in := range enc.Inputs[1:] {
		s := StateSpec{Name: in.Name, Output: "new_" + in.Name, Int64: in.Int64}
		o, ok := outs[s.Output]
		if !ok || len(o.Dims) != len(in.Dims) {
			return nil, fmt.Errorf("%w: %s: state %s has no matching output %s", ErrModel, files.Encoder, s.Name, s.Output)
		}
		s.Axis = -1
		for i, d := range in.Dims {
			if d < 0 {
				if s.Axis >= 0 {
					return nil, fmt.Errorf("%w: %s: state %s has two symbolic dims", ErrModel, files.Encoder, s.Name)
				}
				s.Axis = i
			}
		}
		if s.Axis < 0 {
			s.Axis = batchAxisByName(s.Name)
			if s.Axis >= len(in.Dims) || in.Dims[s.Axis] != 1 {
				return nil, fmt.Errorf("%w: %s: cannot tell the batch axis of state %s %v", ErrModel, files.Encoder, s.Name, in.Dims)
			}
		}
		s.Shape = append([]int64(nil), in.Dims...)
		s.Shape[s.Axis] = 1
		s.size, s.pre, s.post = 1, 1, 1
		for i, d := range s.Shape {
			s.size *= int(d)
			if i < s.Axis {
				s.pre *= int(d)
			} else if i > s.Axis {
				s.post *= int(d)
			}
		}
		m.States = append(m.States, s)
	}
	if len(dec.Inputs) != 1 || len(dec.Inputs[0].Dims) != 2 || !dec.Inputs[0].Int64 {
		return nil, fmt.Errorf("%w: %s: want one int64 input y [N,context]", ErrModel, files.Decoder)
	}
	if d := dec.Inputs[0].Dims[1]; d > 0 && int(d) != m.ContextSize {
		return nil, fmt.Errorf("%w: %s: y has %d columns, context_size=%d", ErrModel, files.Decoder, d, m.ContextSize)
	}
	if len(join.Inputs) != 2 || len(join.Outputs) != 1 {
		return nil, fmt.Errorf("%w: %s: want inputs (encoder_out, decoder_out) and one output", ErrModel, files.Joiner)
	}
	if v := join.Outputs[0].Dims; len(v) != 2 || (v[1] > 0 && int(v[1]) != m.VocabSize) {
		return nil, fmt.Errorf("%w: %s: logit shape %v, vocab_size=%d", ErrModel, files.Joiner, v, m.VocabSize)
	}
	if m.Tokens, err = readTokens(files.Tokens); err != nil {
		return nil, err
	}
	if len(m.Tokens) != m.VocabSize {
		return nil, fmt.Errorf("%w: %s has %d tokens, model vocab_size=%d", ErrModel, files.Tokens, len(m.Tokens), m.VocabSize)
	}
	for i, t := range m.Tokens {
		if t == "<unk>" {
			m.UnkID = i
		}
	}
	return m, nil
}

// readTokens reads "symbol id" lines.
func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	defer f.Close()
	var toks []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		i := strings.LastIndexAny(text, " \t")
		if i < 0 {
			return nil, fmt.Errorf("%w: %s:%d: want \"symbol id\"", ErrModel, path, line)
		}
		id, err := strconv.Atoi(text[i+1:])
		if err != nil || id < 0 || id > 1<<20 {
			return nil, fmt.Errorf("%w: %s:%d: bad id %q", ErrModel, path, line, text[i+1:])
		}
		for len(toks) <= id {
			toks = append(toks, "")
		}
		toks[id] = text[:i]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModel, path, err)
	}
	return toks, nil
}
