package asr

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
)

// The sherpa-onnx peer's greedy-search output for the model's test WAVs
// (see shared/models/SOURCES.md and testdata/parity.tsv).
var testWavTexts = map[string]string{
	"0.wav":  "AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE THE SQUALID QUARTER OF THE BRAFFLES",
	"1.wav":  "GOD AS A DIRECT CONSEQUENCE OF THE SIN WHICH MAN THUS PUNISHED HAD GIVEN HER A LOVELY CHILD WHOSE PLACE WAS ON THAT SAME DISHONOURED BOSOM TO CONNECT HER PARENT FOREVER WITH THE RACE AND DESCENT OF MORTALS AND TO BE FINALLY A BLESSED SOUL IN HEAVEN",
	"8k.wav": "YET THESE THOUGHTS EFFECTED HESTERPRIN LESS WITH HOPE THAN APPREHENSION",
}

func loadTestWavs(t testing.TB) ([]string, [][]float32) {
	t.Helper()
	dir := filepath.Join(asrtest.ModelDir(t), "test_wavs")
	var names []string
	var sigs [][]float32
	for _, n := range []string{"0.wav", "1.wav", "8k.wav"} {
		a, err := media.ReadWAVFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			if x, err = media.ResampleFilter(x, a.SampleRate, 16000, media.FilterKaldi); err != nil {
				t.Fatal(err)
			}
		}
		names = append(names, n)
		sigs = append(sigs, x)
	}
	return names, sigs
}

func newTestBatcher(t testing.TB, files ModelFiles, opts BatcherOptions) *Batcher {
	t.Helper()
	initRuntime(t)
	if files.Dir == "" {
		files.Dir = asrtest.ModelDir(t)
	}
	info, err := LoadModelInfo(files)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBatcher(info, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBatcherTranscribesTestWavs(t *testing.T) {
	names, sigs := loadTestWavs(t)
	opts := BatcherOptions{Workers: 1} // one engine: the three streams share its batches
	opts.Endpoint.Enabled = false
	b := newTestBatcher(t, ModelFiles{}, opts)
	res, err := DecodeAll(b, sigs, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if got := FinalText(res[i]); got != testWavTexts[n] {
			t.Errorf("%s:\n got %q\nwant %q", n, got, testWavTexts[n])
		}
	}
	st := b.Stats()
	t.Logf("batches %d, sizes %v", st.Batches, st.BatchSizes)
	if st.BatchSizes[3] == 0 {
		t.Errorf("no batch of 3 streams: %v", st.BatchSizes)
	}
	// Every step and every chunk is timed.
	var sum time.Duration
	for _, d := range st.BatchTime {
		sum += d
	}
	chunks, steps := b.ChunkLatency(), b.StepLatency()
	if sum != st.StepTime || chunks.N() != st.Chunks || steps.N() != st.Batches {
		t.Errorf("step time %v by size %v; %d chunk latencies for %d chunks, %d step times for %d steps",
			st.StepTime, sum, chunks.N(), st.Chunks, steps.N(), st.Batches)
	}
	if p := chunks.Quantile(0.95); p < steps.Quantile(0.5) || p > time.Minute {
		t.Errorf("chunk latency p95 %v, step time median %v", p, steps.Quantile(0.5))
	}
}

func TestLatencyQuantile(t *testing.T) {
	var h latencyHist
	if (Latency{}).Quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
	for ms := 1; ms <= 100; ms++ {
		h.add(time.Duration(ms)*time.Millisecond - time.Microsecond)
	}
	h.add(time.Hour)
	l := h.snapshot()
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 51 * time.Millisecond}, {0.95, 96 * time.Millisecond}, {0, time.Millisecond}, {1, LatencySpan + time.Millisecond}} {
		if got := l.Quantile(c.q); got != c.want {
			t.Errorf("q%.2f: %v, want %v", c.q, got, c.want)
		}
	}
	before := l
	h.add(3 * time.Millisecond)
	if d := h.snapshot().Sub(before); d.N() != 1 || d.Quantile(0.5) != 4*time.Millisecond {
		t.Errorf("difference: %d, q50 %v", d.N(), d.Quantile(0.5))
	}
}

// Batching never changes a result: each stream decoded alone gives the same
// partials, finals, times and confidences as all of them in shared batches
// (greedy, and beam search with every hypothesis of every stream in one
// joiner call).
func TestBatchedEqualsAlone(t *testing.T) {
	for _, decoding := range []string{Greedy, ModifiedBeamSearch} {
		t.Run(decoding, func(t *testing.T) { testBatchedEqualsAlone(t, decoding) })
	}
}

func testBatchedEqualsAlone(t *testing.T, decoding string) {
	_, sigs := loadTestWavs(t)
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{Workers: 1, Decoding: decoding})
	together, err := DecodeAll(b, append(append(sigs, sigs...), sigs...), 100)
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.BatchSizes[9] == 0 {
		t.Fatalf("no batch of 9: %v", st.BatchSizes)
	}
	for i, x := range sigs {
		alone, err := DecodeAll(b, [][]float32{x}, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{i, i + 3, i + 6} {
			if len(together[k]) != len(alone[0]) {
				t.Fatalf("stream %d: %d results, alone %d", k, len(together[k]), len(alone[0]))
			}
			for j := range alone[0] {
				g, w := together[k][j], alone[0][j]
				if g.Text != w.Text || g.Conf != w.Conf || g.StartMs != w.StartMs || len(g.Words) != len(w.Words) {
					t.Fatalf("stream %d result %d: %+v, alone %+v", k, j, g, w)
				}
			}
		}
	}
}

// Endpointing splits a stream at a long pause into utterances with their
// own finals, and the word times fall where the speech is.
func TestEndpointSplitsUtterances(t *testing.T) {
	_, sigs := loadTestWavs(t)
	gap := 3 * 16000
	x := append(append(append([]float32{}, sigs[0]...), make([]float32, gap)...), sigs[2]...)
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{Endpoint: DefaultEndpointConfig()})
	res, err := DecodeAll(b, [][]float32{x}, 20)
	if err != nil {
		t.Fatal(err)
	}
	var finals []Result
	for _, r := range res[0] {
		if r.Kind == Final {
			finals = append(finals, r)
		}
	}
	if len(finals) != 2 {
		t.Fatalf("%d finals: %+v", len(finals), finals)
	}
	if finals[0].Utt != 0 || finals[1].Utt != 1 || finals[0].Text != testWavTexts["0.wav"] {
		t.Errorf("finals %+v", finals)
	}
	end0 := int64(len(sigs[0]) / 16)
	if finals[0].EndMs > end0+200 || finals[1].StartMs < end0+int64(gap/16) {
		t.Errorf("utterance times %d-%d, %d-%d; speech ends at %d ms, resumes at %d ms",
			finals[0].StartMs, finals[0].EndMs, finals[1].StartMs, finals[1].EndMs, end0, end0+int64(gap/16))
	}
	for _, f := range finals {
		last := int64(-1)
		for _, w := range f.Words {
			if w.StartMs < last || w.EndMs <= w.StartMs || w.Conf <= 0 || w.Conf > 1 {
				t.Errorf("word %+v after %d", w, last)
			}
			last = w.EndMs
		}
		if f.Conf <= 0 || f.Conf > 1 {
			t.Errorf("utterance conf %g", f.Conf)
		}
	}
}

// A ready chunk waits at most MaxWait for other live streams to fill its
// batch, then runs alone.
func TestMaxWaitBoundsPartialBatch(t *testing.T) {
	_, sigs := loadTestWavs(t)
	const wait = 300 * time.Millisecond
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{MaxWait: wait})
	a, _ := b.NewStream("a", func(Result) {})
	idle, _ := b.NewStream("idle", func(Result) {}) // live, never speaks
	start := time.Now()
	a.Accept(sigs[0][:16000]) // 1 s: two chunks ready at once
	for b.Stats().Chunks == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("chunk never decoded")
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < wait-20*time.Millisecond {
		t.Errorf("decoded after %v, before MaxWait %v", d, wait)
	}
	if st := b.Stats(); st.BatchSizes[1] == 0 {
		t.Errorf("batch sizes %v", st.BatchSizes)
	}
	a.Finish()
	idle.Finish()
	<-a.Done()
	<-idle.Done()
}

// The engines after the first open at once; when one cannot, NewBatcher
// says why and every engine that opened is closed.
func TestNewBatcherClosesTheEnginesWhenOneFails(t *testing.T) {
	initRuntime(t)
	info, err := LoadModelInfo(ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	var opened, closed atomic.Int32
	refused := errors.New("no engine today")
	open := func(i *ModelInfo, o EngineOptions) (Engine, error) {
		if opened.Add(1) == 3 {
			return nil, refused
		}
		e, err := NewEngine(i, o)
		if err != nil {
			return nil, err
		}
		return closeCounter{e, &closed}, nil
	}
	b, err := NewBatcher(info, BatcherOptions{Workers: 4, NewEngine: open})
	if !errors.Is(err, refused) || b != nil {
		t.Fatalf("NewBatcher: %v, %v", b, err)
	}
	for deadline := time.Now().Add(10 * time.Second); closed.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if opened.Load() != 4 || closed.Load() != 3 {
		t.Errorf("%d engines asked for, %d closed; want 4 and 3", opened.Load(), closed.Load())
	}
}

type closeCounter struct {
	Engine
	closed *atomic.Int32
}

func (c closeCounter) Close() error {
	c.closed.Add(1)
	return c.Engine.Close()
}
