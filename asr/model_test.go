package asr

import (
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
)

func initRuntime(t testing.TB) {
	t.Helper()
	if err := InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadModelInfoReadsMetadata(t *testing.T) {
	initRuntime(t)
	dir := asrtest.ModelDir(t)
	for _, tc := range []struct {
		encoder  string
		maxBatch int
	}{
		{"", 0}, // default: fp32.dynbatch
		{"encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx", 1},
	} {
		m, err := LoadModelInfo(ModelFiles{Dir: dir, Encoder: tc.encoder})
		if err != nil {
			t.Fatal(err)
		}
		if m.MaxBatch != tc.maxBatch {
			t.Errorf("%s: MaxBatch %d, want %d", m.Files.Encoder, m.MaxBatch, tc.maxBatch)
		}
		if m.ChunkFrames != 45 || m.ChunkShift != 32 || m.OutFrames != 8 || m.EncoderDim != 320 ||
			m.ContextSize != 2 || m.VocabSize != 500 || m.FeatureDim != 80 || m.FrameShiftMs() != 40 {
			t.Errorf("%+v", m)
		}
		if len(m.States) != 6*6+2 {
			t.Fatalf("%d states", len(m.States))
		}
		for _, s := range m.States {
			want := batchAxisByName(s.Name)
			if s.Axis != want {
				t.Errorf("%s: axis %d, want %d", s.Name, s.Axis, want)
			}
		}
		if m.UnkID < 0 || m.Tokens[0] != "<blk>" {
			t.Errorf("unk %d, token 0 %q", m.UnkID, m.Tokens[0])
		}
		t.Logf("%s: %d bytes of state per stream", m.Files.Encoder, m.StateBytes())
	}
}

func TestLoadModelInfoErrors(t *testing.T) {
	initRuntime(t)
	dir := asrtest.ModelDir(t)
	if _, err := LoadModelInfo(ModelFiles{Dir: t.TempDir()}); err == nil {
		t.Error("empty dir accepted")
	}
	// A decoder is not an encoder.
	if _, err := LoadModelInfo(ModelFiles{Dir: dir, Encoder: "decoder-epoch-12-avg-2-chunk-16-left-64.onnx"}); err == nil {
		t.Error("decoder accepted as encoder")
	}
}
