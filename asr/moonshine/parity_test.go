package moonshine

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// parityCases reads asr/testdata/parity-moonshine-<size>.tsv: what a plain
// greedy Moonshine loop on onnxruntime-node (batch 1, the models as
// published) transcribed from the parity corpus and the first-pass model's
// test WAVs, each padded to the bucket of the file's first line; recorded
// by scripts/parity-reference.
func parityCases(t *testing.T, size string) (bucketMs int, files, want []string) {
	f, err := os.Open("../testdata/parity-moonshine-" + size + ".tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	model := os.Getenv("CALLSCRIBE_MODEL")
	if model == "" {
		model = "../../../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile"
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if b, ok := strings.CutPrefix(sc.Text(), "# bucket_ms "); ok {
			if bucketMs, err = strconv.Atoi(b); err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			continue
		}
		name, text, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		path := filepath.Join("..", "testdata", "parity", name)
		if !strings.HasPrefix(name, "u") {
			path = filepath.Join(model, "test_wavs", name)
		}
		files = append(files, path)
		want = append(want, text)
	}
	if bucketMs == 0 || len(files) < 25 {
		t.Fatalf("%s: bucket %d ms, %d cases", f.Name(), bucketMs, len(files))
	}
	return bucketMs, files, want
}

// parityKnown lists the texts of ours that differ from the reference, by
// model and file: none. Our float kernels are the reference's (the same
// ONNX Runtime, graph optimizations off on both sides); only the output
// projection's GEMM takes another path (two rows or more, weights packed),
// which moves logits by about 1e-5 and could flip a near tie.
//
// The references were recorded on an AVX2-only CPU (AMD EPYC, no VNNI).
// ONNX Runtime picks float kernels by instruction set, and the int8 models
// requantize after every layer, so a CPU with AVX-512 may give other texts,
// as it does for the transducer (int8DivergentNoVNNI in cmd/callscribe):
// rerun scripts/parity-reference --moonshine there to see which.
var parityKnown = map[string]map[string]string{}

// Our texts equal the reference's, one segment at a time and in batches of
// 4 and 16 (segments of one padded length share a batch).
func TestParityWithOnnxruntimeNode(t *testing.T) {
	for _, size := range []string{"tiny", "base"} {
		bucket, files, want := parityCases(t, size)
		if bucket != DefaultBucketMs {
			t.Errorf("%s reference padded to %d ms, DefaultBucketMs is %d: run scripts/parity-reference --moonshine", size, bucket, DefaultBucketMs)
		}
		segs := make([][]float32, len(files))
		for i, f := range files {
			segs[i] = readWAV(t, f)
		}
		// The corpus must make batches: segments of one padded length.
		sameLen := map[int]int{}
		most := 0
		for _, s := range segs {
			p := (len(s) + SampleRate*bucket/1000 - 1) / (SampleRate * bucket / 1000)
			sameLen[p]++
			most = max(most, sameLen[p])
		}
		if most < 8 {
			t.Fatalf("at most %d segments of one padded length: batches of 4 and 16 are not tested", most)
		}
		r := sharedModel(t, size)
		defer func(b int) { r.opts.MaxBatch = b }(r.opts.MaxBatch)
		for _, batch := range []int{1, 4, 16} {
			r.opts.MaxBatch = batch
			got, err := r.Transcribe(segs)
			if err != nil {
				t.Fatal(err)
			}
			same := 0
			for i, f := range files {
				name := filepath.Base(f)
				w, known := want[i], false
				if k, ok := parityKnown[size][name]; ok {
					w, known = k, true
				}
				if got[i] != w {
					t.Errorf("%s batch %d %s:\n got %q\nwant %q", size, batch, name, got[i], w)
				} else if !known {
					same++
				}
			}
			t.Logf("%s, batches of up to %d: %d of %d texts equal the reference", size, batch, same, len(files))
		}
	}
}
