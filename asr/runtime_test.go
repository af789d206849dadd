package asr

import (
	"os"
	"path/filepath"
	"testing"
)

// The CUDA provider gets the GPU build of ONNX Runtime when setup fetched
// one, the CPU build otherwise; explicit paths and the environment win.
func TestFindRuntimeLibraryByProvider(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(RuntimeLibEnv, "")
	t.Setenv(GPURuntimeLibEnv, "")
	put := func(rel string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	find := func(explicit, provider string) string {
		t.Helper()
		p, err := FindRuntimeLibrary(explicit, provider)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := FindRuntimeLibrary("", "cuda"); err == nil {
		t.Fatal("found a library in an empty directory")
	}
	cpu := put(runtimeRel)
	if got := find("", "cuda"); got != cpu {
		t.Errorf("cuda without a GPU build: %s, want the CPU build %s", got, cpu)
	}
	gpu := put(gpuRuntimeRel)
	if got := find("", "cuda"); got != gpu {
		t.Errorf("cuda: %s, want %s", got, gpu)
	}
	if got := find("", "cpu"); got != cpu {
		t.Errorf("cpu: %s, want %s", got, cpu)
	}
	other := put("elsewhere/libonnxruntime.so.1")
	t.Setenv(GPURuntimeLibEnv, other)
	if got := find("", "cuda"); got != other {
		t.Errorf("cuda with %s: %s", GPURuntimeLibEnv, got)
	}
	if got := find("", "cpu"); got != cpu {
		t.Errorf("cpu with %s set: %s", GPURuntimeLibEnv, got)
	}
	explicit := put("mine/libonnxruntime.so.1")
	if got := find(explicit, "cuda"); got != explicit {
		t.Errorf("explicit: %s", got)
	}
	t.Setenv(GPURuntimeLibEnv, filepath.Join(dir, "missing.so"))
	if _, err := FindRuntimeLibrary("", "cuda"); err == nil {
		t.Error("a missing $" + GPURuntimeLibEnv + " was not reported")
	}
}
