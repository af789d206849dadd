package asr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrRuntimeMissing is returned when the ONNX Runtime shared library cannot
// be found.
var ErrRuntimeMissing = errors.New("asr: ONNX Runtime library not found")

// RuntimeLibEnv names the environment variable that points at
// libonnxruntime.so.
const RuntimeLibEnv = "CALLSCRIBE_ORT_LIB"

// GPURuntimeLibEnv names the environment variable that points at the GPU
// build of libonnxruntime.so, used when the provider is CUDA.
const GPURuntimeLibEnv = "CALLSCRIBE_ORT_GPU_LIB"

const (
	runtimeRel    = ".cache/onnxruntime/libonnxruntime.so.1"
	gpuRuntimeRel = ".cache/onnxruntime-gpu/libonnxruntime.so.1" // scripts/setup --gpu
)

// FindRuntimeLibrary returns the path of libonnxruntime for a provider
// ("cpu" or "cuda"): explicit if set; for CUDA then $CALLSCRIBE_ORT_GPU_LIB
// or the GPU build in the project cache (.cache/onnxruntime-gpu/); else
// $CALLSCRIBE_ORT_LIB, else the project cache (.cache/onnxruntime/) next to
// the executable's parent or above the working directory, else
// $XDG_CACHE_HOME/callscribe/onnxruntime. Without a GPU build, CUDA gets
// the CPU one, on which NewEngine falls back to CPU.
func FindRuntimeLibrary(explicit, provider string) (string, error) {
	if explicit != "" {
		return existing(explicit, "")
	}
	if provider == "cuda" {
		if p := os.Getenv(GPURuntimeLibEnv); p != "" {
			return existing(p, GPURuntimeLibEnv)
		}
		if p, ok := FindInCache(gpuRuntimeRel); ok {
			return p, nil
		}
	}
	if p := os.Getenv(RuntimeLibEnv); p != "" {
		return existing(p, RuntimeLibEnv)
	}
	var extra []string
	if c, err := os.UserCacheDir(); err == nil {
		extra = append(extra, filepath.Join(c, "callscribe", "onnxruntime", "libonnxruntime.so.1"))
	}
	if p, ok := FindInCache(runtimeRel, extra...); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: run `make setup` (scripts/setup) to install it, or set %s", ErrRuntimeMissing, RuntimeLibEnv)
}

// existing returns path if it is there; env names the variable it came
// from, if any, for the error.
func existing(path, env string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		if env != "" {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrRuntimeMissing, env, path, err)
		}
		return "", fmt.Errorf("%w: %v", ErrRuntimeMissing, err)
	}
	return path, nil
}

// FindInCache looks for rel (a path in the project's .cache) next to the
// executable's parent directory, then in the working directory and each
// one above it, then at the extra paths.
func FindInCache(rel string, extra ...string) (string, bool) {
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "..", rel))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, filepath.Join(d, rel))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range append(cands, extra...) {
		if _, err := os.Stat(c); err == nil {
			return filepath.Clean(c), true
		}
	}
	return "", false
}

// The ONNX Runtime environment is process-wide in the C library; this guards
// its one-time start.
var runtimeOnce struct {
	sync.Mutex
	path string
	err  error
}

// InitRuntime loads the ONNX Runtime library for a provider at path (see
// FindRuntimeLibrary) once per process. Later calls with any path return the
// first outcome.
func InitRuntime(path, provider string) error {
	runtimeOnce.Lock()
	defer runtimeOnce.Unlock()
	if runtimeOnce.path != "" {
		return runtimeOnce.err
	}
	p, err := FindRuntimeLibrary(path, provider)
	if err != nil {
		return err
	}
	runtimeOnce.path = p
	ort.SetSharedLibraryPath(p)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		runtimeOnce.err = fmt.Errorf("asr: start ONNX Runtime from %s: %w", p, err)
	}
	return runtimeOnce.err
}

// RuntimePath is the file of the loaded ONNX Runtime ("" before InitRuntime).
func RuntimePath() string {
	runtimeOnce.Lock()
	defer runtimeOnce.Unlock()
	return runtimeOnce.path
}

// RuntimeVersion is the loaded ONNX Runtime's version.
func RuntimeVersion() string { return ort.GetVersion() }

func readONNX(path string) (onnxFile, error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return onnxFile{}, fmt.Errorf("%w: %s: %v", ErrModel, path, err)
	}
	f := onnxFile{Meta: map[string]string{}}
	conv := func(list []ort.InputOutputInfo) []tensorInfo {
		out := make([]tensorInfo, len(list))
		for i, t := range list {
			out[i] = tensorInfo{Name: t.Name, Dims: append([]int64(nil), t.Dimensions...),
				Int64: t.DataType == ort.TensorElementDataTypeInt64}
		}
		return out
	}
	f.Inputs, f.Outputs = conv(ins), conv(outs)
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return onnxFile{}, fmt.Errorf("%w: %s metadata: %v", ErrModel, path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return onnxFile{}, fmt.Errorf("%w: %s metadata: %v", ErrModel, path, err)
	}
	for _, k := range keys {
		if v, ok, err := md.LookupCustomMetadataMap(k); err == nil && ok {
			f.Meta[k] = v
		}
	}
	return f, nil
}

// LoadModelInfo reads a model's description from its files. InitRuntime must
// have succeeded.
func LoadModelInfo(files ModelFiles) (*ModelInfo, error) {
	files, err := files.Resolve()
	if err != nil {
		return nil, err
	}
	enc, err := readONNX(files.Encoder)
	if err != nil {
		return nil, err
	}
	dec, err := readONNX(files.Decoder)
	if err != nil {
		return nil, err
	}
	join, err := readONNX(files.Joiner)
	if err != nil {
		return nil, err
	}
	return newModelInfo(files, enc, dec, join)
}
