// Package asrtest finds the model the tests recognize with and its
// recordings. It holds no recognizer: tests load the model themselves.
package asrtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/callscribe/callscribe/media"
)

// ModelName is the test model's directory under ../shared/models, beside
// the repository (scripts/setup puts it there).
const ModelName = "sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile"

// ModelDir is the test model's directory: $CALLSCRIBE_MODEL, or
// ../shared/models/ModelName from the repository's root (the folder of
// go.mod above the test's working directory). It fails the test when the
// model is not there.
func ModelDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CALLSCRIBE_MODEL")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "..", "shared", "models", ModelName)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokens.txt")); err != nil {
		t.Fatalf("model not found (set CALLSCRIBE_MODEL): %v", err)
	}
	return dir
}

// WAV reads a recording of the model's test set (test_wavs/name).
func WAV(t testing.TB, name string) media.Audio {
	t.Helper()
	a, err := media.ReadWAVFile(filepath.Join(ModelDir(t), "test_wavs", name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// repoRoot is the nearest folder holding go.mod, from the working
// directory up (a test runs in its package's folder).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = up
	}
}
