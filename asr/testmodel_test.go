package asr

import (
	"os"
	"path/filepath"
	"testing"
)

// testModelDir returns the shared model directory, or fails the test.
func testModelDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CALLSCRIBE_MODEL")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "models", "sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile")
	}
	if _, err := os.Stat(filepath.Join(dir, "tokens.txt")); err != nil {
		t.Fatalf("model not found (set CALLSCRIBE_MODEL): %v", err)
	}
	return dir
}
