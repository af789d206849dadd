package moonshine

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
)

// modelDir is where scripts/setup keeps a model: .cache/moonshine/<size>
// ($CALLSCRIBE_MOONSHINE/<size> if set).
func modelDir(size string) string {
	if d := os.Getenv("CALLSCRIBE_MOONSHINE"); d != "" {
		return filepath.Join(d, size)
	}
	return filepath.Join("..", "..", ".cache", "moonshine", size)
}

// testModel opens a model scripts/setup keeps.
func testModel(t testing.TB, size string, o Options) *Recognizer {
	t.Helper()
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	r, err := New(Files{Dir: modelDir(size)}, o)
	if err != nil {
		t.Fatalf("%v (run scripts/setup)", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// shared holds one recognizer per model with the default options, opened
// once for the tests that only transcribe: opening one rewrites the model,
// seconds under the race detector.
var shared struct {
	sync.Mutex
	m map[string]*Recognizer
}

func sharedModel(t testing.TB, size string) *Recognizer {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if r := shared.m[size]; r != nil {
		return r
	}
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	r, err := New(Files{Dir: modelDir(size)}, Options{})
	if err != nil {
		t.Fatalf("%v (run scripts/setup)", err)
	}
	if shared.m == nil {
		shared.m = map[string]*Recognizer{}
	}
	shared.m[size] = r
	return r
}

// readWAV reads a WAV file as 16 kHz audio (8 kHz files through the Kaldi
// filter, as callscribe transcribe does by default).
func readWAV(t testing.TB, path string) []float32 {
	t.Helper()
	a, err := media.ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := a.Samples
	if a.SampleRate != SampleRate {
		if x, err = media.ResampleFilter(x, a.SampleRate, SampleRate, media.FilterKaldi); err != nil {
			t.Fatal(err)
		}
	}
	return x
}
