package moonshine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
)

func TestReadShape(t *testing.T) {
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size string
		want Shape
	}{
		{"tiny", Shape{Layers: 6, Heads: 8, HeadDim: 36, Hidden: 288, Vocab: 32768}},
		{"base", Shape{Layers: 8, Heads: 8, HeadDim: 52, Hidden: 416, Vocab: 32768}},
	} {
		f, err := (Files{Dir: modelDir(tc.size)}).Resolve()
		if err != nil {
			t.Fatal(err)
		}
		if s, err := ReadShape(f); err != nil || s != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.size, s, err, tc.want)
		}
	}
}

// Other networks where a Moonshine model should be (the first pass's
// transducer under Moonshine's names): NewN says the model is not one,
// whichever of the shapes and the rewrite finds it first.
func TestNewNRefusesOtherModels(t *testing.T) {
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	tiny, err := (Files{Dir: modelDir("tiny")}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	zipformer, _ := filepath.Glob(filepath.Join(asrtest.ModelDir(t), "*.onnx"))
	for _, other := range zipformer {
		dir := t.TempDir()
		for name, from := range map[string]string{"encoder_model.onnx": other, "decoder_model_merged.onnx": other, "tokens.txt": tiny.Tokens} {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if rs, err := NewN(Files{Dir: dir}, Options{}, 2); !errors.Is(err, ErrModel) {
			t.Errorf("%s as Moonshine: %d recognizers, %v", filepath.Base(other), len(rs), err)
		}
	}
}

// stepLogits records, for every decoder step of a Transcribe, the logits of
// the batch's first row.
func stepLogits(r *Recognizer) *[][]float32 {
	var got [][]float32
	v := r.shape.Vocab
	r.debugLogits = func(_ int, l []float32, _ int) { got = append(got, append([]float32(nil), l[:v]...)) }
	return &got
}

func sameLogits(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d steps, want %d", what, len(got), len(want))
	}
	for s := range got {
		for k := range got[s] {
			if got[s][k] != want[s][k] {
				t.Fatalf("%s: step %d logit %d: %g, want %g", what, s, k, got[s][k], want[s][k])
			}
		}
	}
}

// The rewrite for exact batching (rowQuantize, foldConstants) computes what
// the published model computes: at one row, with the output projection as
// published and no weights packed ahead (which the folded output projection
// would be), the logits of every step are the same to the bit.
func TestRowQuantizeIsExact(t *testing.T) {
	x := readWAV(t, "../testdata/parity/u03-8k.wav")
	for _, size := range []string{"tiny", "base"} {
		var want [][]float32
		for _, o := range []Options{{asPublished: true, noPrepack: true}, {singleRowHead: true, noPrepack: true}} {
			r := testModel(t, size, o)
			got := stepLogits(r)
			if _, err := r.Transcribe([][]float32{x}); err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = *got
				continue
			}
			sameLogits(t, size, *got, want)
		}
	}
}

// With the rewrite, a segment's logits do not depend on the segments beside
// it in the batch nor on how many there are; as published, they do.
func TestBatchRowsAreIndependent(t *testing.T) {
	x := readWAV(t, "../testdata/parity/u00-16k.wav")
	y := readWAV(t, "../testdata/parity/u02-16k.wav")
	z := readWAV(t, "../testdata/parity/u21-8k.wav")
	for _, published := range []bool{false, true} {
		r := testModel(t, "tiny", Options{MaxBatch: 16, BucketMs: 5000, asPublished: published})
		got := stepLogits(r)
		var want [][]float32
		for i, batch := range [][][]float32{{x}, {x, y}, {x, y, z, y, z}, {x, x, x}} {
			*got = nil
			if _, err := r.Transcribe(batch); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				want = *got
				continue
			}
			// x is the first row while it lasts: its steps come first.
			steps := (*got)[:min(len(want), len(*got))]
			if published {
				if i == 1 && equalSteps(steps, want) {
					t.Errorf("as published, x's logits beside y equal x's alone: the test no longer shows the coupling")
				}
				continue
			}
			sameLogits(t, fmt.Sprintf("x in a batch of %d", len(batch)), steps, want)
		}
	}
}

func equalSteps(a, b [][]float32) bool {
	for s := range a {
		for k := range a[s] {
			if a[s][k] != b[s][k] {
				return false
			}
		}
	}
	return true
}

// Segments too short for a token have no text and cost no model call; the
// others keep their order whatever their lengths.
func TestTranscribeShortAndMixed(t *testing.T) {
	r := testModel(t, "tiny", Options{MaxBatch: 4})
	x := readWAV(t, "../testdata/parity/u03-8k.wav")
	alone, err := r.Transcribe([][]float32{x})
	if err != nil || alone[0] == "" {
		t.Fatalf("%q, %v", alone, err)
	}
	got, err := r.Transcribe([][]float32{nil, x[:SampleRate/6-1], x, x[:SampleRate/6], x})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "" || got[1] != "" || got[2] != alone[0] || got[4] != alone[0] {
		t.Errorf("texts %q; alone %q", got, alone[0])
	}
	if texts, err := r.Transcribe(nil); err != nil || len(texts) != 0 {
		t.Errorf("no segments: %q, %v", texts, err)
	}
	r.Close()
	if _, err := r.Transcribe([][]float32{x}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Recognizers opened together on the CPU share one pair of sessions, run
// at once from as many goroutines with the texts of one alone, and the
// sessions live until the last of them closes. Asked for CUDA that cannot
// start, they share the CPU's pair too.
func TestRecognizersShareTheCPUSessions(t *testing.T) {
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	segs := [][]float32{
		readWAV(t, "../testdata/parity/u00-16k.wav"),
		readWAV(t, "../testdata/parity/u03-8k.wav"),
		readWAV(t, "../testdata/parity/u21-8k.wav"),
	}
	for _, provider := range []string{"cpu", "cuda"} {
		rs, err := NewN(Files{Dir: modelDir("tiny")}, Options{Provider: provider, MaxBatch: 2, Logger: slog.New(slog.DiscardHandler)}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Provider() != "cpu" {
			for _, r := range rs {
				r.Close()
			}
			t.Skipf("provider %s: this ONNX Runtime runs CUDA", rs[0].Provider())
		}
		for _, r := range rs[1:] {
			if r.sess != rs[0].sess || r.Provider() != "cpu" {
				t.Fatalf("%s: a recognizer on %s with sessions of its own", provider, r.Provider())
			}
		}
		if n := rs[0].sess.refs.Load(); n != 3 {
			t.Errorf("%s: %d holders of the sessions, want 3", provider, n)
		}
		want, err := rs[0].Transcribe(segs)
		if err != nil {
			t.Fatal(err)
		}
		got := make([][]string, len(rs))
		errs := make([]error, len(rs))
		var wg sync.WaitGroup
		for i, r := range rs {
			wg.Go(func() {
				for range 2 {
					if got[i], errs[i] = r.Transcribe(segs); errs[i] != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		for i := range rs {
			if errs[i] != nil || !slices.Equal(got[i], want) {
				t.Errorf("%s: recognizer %d at once with the others: %q, %v; alone %q", provider, i, got[i], errs[i], want)
			}
		}
		rs[0].Close()
		rs[1].Close()
		if texts, err := rs[2].Transcribe(segs[:1]); err != nil || texts[0] != want[0] {
			t.Errorf("%s: the last recognizer after the others closed: %q, %v", provider, texts, err)
		}
		rs[2].Close()
		if n := rs[0].sess.refs.Load(); n != 0 {
			t.Errorf("%s: %d holders after every recognizer closed", provider, n)
		}
	}
}

// The CPU build of ONNX Runtime has no CUDA provider: a recognizer asked
// for CUDA runs on CPU and says so.
func TestCUDAFallsBackToCPU(t *testing.T) {
	var log bytes.Buffer
	r := testModel(t, "tiny", Options{Provider: "cuda", Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if r.Provider() != "cpu" {
		t.Skipf("provider %s: this ONNX Runtime runs CUDA", r.Provider())
	}
	if !strings.Contains(log.String(), "CUDA provider unavailable, using CPU") {
		t.Errorf("log: %q", log.String())
	}
	texts, err := r.Transcribe([][]float32{readWAV(t, filepath.Join("..", "testdata", "parity", "u03-8k.wav"))})
	if err != nil || texts[0] == "" {
		t.Errorf("%q, %v", texts, err)
	}
}

// The rewrite finds every quantizer of the published models (a new export
// with other patterns fails here, or in New, rather than batching inexactly).
func TestRewriteCounts(t *testing.T) {
	for _, tc := range []struct {
		size                                 string
		part                                 int // encoder, decoder
		quantizers, matmuls, heads, minFolds int
	}{
		{"tiny", 0, 24, 36, 0, 3},
		{"tiny", 1, 73, 108, 2, 1},
		{"base", 0, 32, 48, 0, 3},
		{"base", 1, 97, 144, 2, 1},
	} {
		rw := sharedModel(t, tc.size).rewrites[tc.part]
		if rw.quantizers != tc.quantizers || rw.matmuls != tc.matmuls || rw.heads != tc.heads || rw.folds < tc.minFolds {
			t.Errorf("%s %d: %d quantizers, %d MatMulIntegers, %d heads, %d folds; want %d, %d, %d, %d or more",
				tc.size, tc.part, rw.quantizers, rw.matmuls, rw.heads, rw.folds, tc.quantizers, tc.matmuls, tc.heads, tc.minFolds)
		}
	}
	if _, _, err := rowQuantize([]byte("not a model"), true); err == nil {
		t.Error("garbage: no error")
	}
}
