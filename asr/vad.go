package asr

import (
	"errors"
	"fmt"
	"os"

	ort "github.com/yalue/onnxruntime_go"
)

// Silero VAD v5 at 16 kHz: windows of 512 samples (32 ms), each seen with
// the 64 samples before it; a state of 2×128 per stream.
const (
	VADWindow   = 512
	vadContext  = 64
	vadStateLen = 2 * 128
)

const vadRel = ".cache/silero-vad/silero_vad_v5.onnx"

// FindVADModel returns the path of the Silero VAD model: explicit if set,
// else the project cache (scripts/setup puts it in .cache/silero-vad/) next
// to the executable's parent or above the working directory.
func FindVADModel(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", err
		}
		return explicit, nil
	}
	if p, ok := FindInCache(vadRel); ok {
		return p, nil
	}
	return "", errors.New("asr: Silero VAD model not found: run `make setup` (scripts/setup)")
}

// VAD runs Silero VAD v5 on ONNX Runtime for many streams at once: one
// model call per window for all of them, over tensors kept per batch size.
// Used by one goroutine at a time.
type VAD struct {
	sess *ort.DynamicAdvancedSession
	sr   *ort.Scalar[int64]
	sets map[int]*vadSet
}

// vadSet is the tensors of a batch of n streams.
type vadSet struct {
	in, st, out, stN *ort.Tensor[float32]
}

func (s *vadSet) destroy() {
	for _, t := range []*ort.Tensor[float32]{s.in, s.st, s.out, s.stN} {
		if t != nil {
			t.Destroy()
		}
	}
}

// set returns the tensors for n streams, made on first use.
func (v *VAD) set(n int) (*vadSet, error) {
	if s, ok := v.sets[n]; ok {
		return s, nil
	}
	N := int64(n)
	s := &vadSet{}
	var errs []error
	var err error
	s.in, err = ort.NewTensor(ort.NewShape(N, VADWindow+vadContext), make([]float32, n*(VADWindow+vadContext)))
	errs = append(errs, err)
	s.st, err = ort.NewTensor(ort.NewShape(2, N, 128), make([]float32, 2*n*128))
	errs = append(errs, err)
	s.out, err = ort.NewEmptyTensor[float32](ort.NewShape(N, 1))
	errs = append(errs, err)
	s.stN, err = ort.NewEmptyTensor[float32](ort.NewShape(2, N, 128))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		s.destroy()
		return nil, fmt.Errorf("asr: VAD tensors for %d streams: %w", n, err)
	}
	v.sets[n] = s
	return s, nil
}

// VADState is one stream's: the model's state and the end of its audio.
type VADState struct {
	h    [vadStateLen]float32
	tail [vadContext]float32
}

// Prime takes a stream's first 64 samples as the first window's context
// (what sherpa-onnx and Silero's own iterator do); the windows then start
// 4 ms into the stream.
func (s *VADState) Prime(x []float32) { copy(s.tail[:], x) }

// NewVAD opens the model.
func NewVAD(path string) (*VAD, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	so.SetIntraOpNumThreads(1)
	so.SetInterOpNumThreads(1)
	sess, err := ort.NewDynamicAdvancedSession(path, []string{"input", "state", "sr"}, []string{"output", "stateN"}, so)
	if err != nil {
		return nil, fmt.Errorf("asr: open %s: %w", path, err)
	}
	sr, err := ort.NewScalar[int64](16000)
	if err != nil {
		sess.Destroy()
		return nil, err
	}
	return &VAD{sess: sess, sr: sr, sets: map[int]*vadSet{}}, nil
}

// Close frees the session and its tensors.
func (v *VAD) Close() error {
	for _, s := range v.sets {
		s.destroy()
	}
	v.sr.Destroy()
	return v.sess.Destroy()
}

// Run gives each stream's next window (512 samples) to the model and
// writes each one's speech probability to probs; the states advance.
func (v *VAD) Run(windows [][]float32, states []*VADState, probs []float32) error {
	n := len(windows)
	if n == 0 {
		return nil
	}
	set, err := v.set(n)
	if err != nil {
		return err
	}
	w := VADWindow + vadContext
	in, st := set.in.GetData(), set.st.GetData()
	for i, x := range windows {
		if len(x) != VADWindow {
			return fmt.Errorf("asr: VAD window of %d samples, want %d", len(x), VADWindow)
		}
		row := in[i*w : (i+1)*w]
		copy(row, states[i].tail[:])
		copy(row[vadContext:], x)
		for k := range 2 {
			copy(st[(k*n+i)*128:(k*n+i+1)*128], states[i].h[k*128:(k+1)*128])
		}
	}
	if err := v.sess.Run([]ort.Value{set.in, set.st, v.sr}, []ort.Value{set.out, set.stN}); err != nil {
		return fmt.Errorf("asr: VAD run: %w", err)
	}
	p, ns := set.out.GetData(), set.stN.GetData()
	for i := range n {
		probs[i] = p[i]
		for k := range 2 {
			copy(states[i].h[k*128:(k+1)*128], ns[(k*n+i)*128:(k*n+i+1)*128])
		}
		copy(states[i].tail[:], windows[i][VADWindow-vadContext:])
	}
	return nil
}

// Segmenter turns a stream's window probabilities into speech segments as
// sherpa-onnx's Silero VAD does: speech starts once MinSpeechMs of windows
// in a row are over Threshold (the segment begins at the first of them) and
// ends once MinSilenceMs have passed since a window under Threshold-0.15
// with none over Threshold since (the segment ends at that window).
type Segmenter struct {
	Threshold    float32
	MinSpeechMs  int
	MinSilenceMs int

	speaking bool
	window   int64 // windows seen
	startAt  int64 // first window of the speech being confirmed; -1: none
	silentAt int64 // first window of the current silence; -1: none
}

// NewSegmenter returns a segmenter with Silero's defaults (threshold 0.5,
// 250 ms of speech to start) and a minimum silence of minSilenceMs.
func NewSegmenter(minSilenceMs int) *Segmenter {
	return &Segmenter{Threshold: 0.5, MinSpeechMs: 250, MinSilenceMs: minSilenceMs, startAt: -1, silentAt: -1}
}

// SegmentEvent is a change of a stream's speech state at a time (ms since
// the stream's start).
type SegmentEvent struct {
	Speech bool // true: speech starts; false: it ended
	AtMs   int64
}

func windowMs(w int64) int64 { return w * VADWindow / 16 }

// Add takes the next window's probability and says whether speech started
// or ended.
func (s *Segmenter) Add(p float32) (SegmentEvent, bool) {
	w := s.window
	s.window++
	if !s.speaking {
		if p <= s.Threshold {
			s.startAt = -1
			return SegmentEvent{}, false
		}
		if s.startAt < 0 {
			s.startAt = w
		}
		if windowMs(w-s.startAt) < int64(s.MinSpeechMs) {
			return SegmentEvent{}, false
		}
		s.speaking, s.silentAt = true, -1
		return SegmentEvent{Speech: true, AtMs: windowMs(s.startAt)}, true
	}
	if p > s.Threshold {
		s.silentAt = -1
		return SegmentEvent{}, false
	}
	if p > s.Threshold-0.15 {
		return SegmentEvent{}, false
	}
	if s.silentAt < 0 {
		s.silentAt = w
	}
	if windowMs(s.window-s.silentAt) < int64(s.MinSilenceMs) {
		return SegmentEvent{}, false
	}
	s.speaking, s.startAt = false, -1
	return SegmentEvent{Speech: false, AtMs: windowMs(s.silentAt)}, true
}

// Speaking tells whether the stream is in speech now.
func (s *Segmenter) Speaking() bool { return s.speaking }
