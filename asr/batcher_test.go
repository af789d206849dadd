package asr

import (
	"path/filepath"
	"testing"

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
	dir := filepath.Join(testModelDir(t), "test_wavs")
	var names []string
	var sigs [][]float32
	for _, n := range []string{"0.wav", "1.wav", "8k.wav"} {
		a, err := media.ReadWAVFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			if x, err = media.Resample(x, a.SampleRate, 16000); err != nil {
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
		files.Dir = testModelDir(t)
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
	opts := BatcherOptions{}
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
}
