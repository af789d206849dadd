package asr

import (
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
)

// testdata/0.wav.fbank holds the features kaldi-native-fbank (the library
// sherpa-onnx uses) computes for the model's test_wavs/0.wav with sherpa-onnx's
// settings, fed in 100 ms pieces and then flushed: an int32 frame count, then
// frames of 80 float32.
func TestFbankMatchesKaldiNativeFbank(t *testing.T) {
	raw, err := os.ReadFile("testdata/0.wav.fbank")
	if err != nil {
		t.Fatal(err)
	}
	want := int(binary.LittleEndian.Uint32(raw))
	ref := make([]float32, want*80)
	for i := range ref {
		ref[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4+4*i:]))
	}
	a := asrtest.WAV(t, "0.wav")
	fb, err := NewFbank(DefaultFbankOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	frame := make([]float32, 80)
	// Odd piece sizes exercise the buffer compaction.
	for i := 0; i < len(a.Samples); i += 333 {
		fb.Accept(a.Samples[i:min(i+333, len(a.Samples))])
		for fb.Next(frame) {
			got = append(got, frame...)
		}
	}
	fb.Finish()
	for fb.Next(frame) {
		got = append(got, frame...)
	}
	if len(got) != len(ref) {
		t.Fatalf("got %d frames, want %d", len(got)/80, want)
	}
	// Bit for bit: the same float32 operations in the same order.
	differ := 0
	for i := range ref {
		if got[i] != ref[i] {
			if differ < 5 {
				t.Errorf("frame %d bin %d: %g, want %g", i/80, i%80, got[i], ref[i])
			}
			differ++
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d values differ", differ, len(ref))
	}
}

func TestLogfWithinOneUlp(t *testing.T) {
	for _, x := range []float32{1e-30, 1.1920929e-07, 0.5, 0.7, 0.99999994, 1, 1.0000001, 2, 3.14159, 1e5, 3e38} {
		got := logf(x)
		want := float32(math.Log(float64(x)))
		if d := math.Float32bits(got) - math.Float32bits(want); d+1 > 2 {
			t.Errorf("logf(%g) = %g, want %g", x, got, want)
		}
	}
	if !math.IsInf(float64(logf(0)), -1) || !math.IsNaN(float64(logf(-1))) {
		t.Error("special cases")
	}
}

func TestFbankFramesAvailableOnlyWhenComplete(t *testing.T) {
	fb, _ := NewFbank(DefaultFbankOptions())
	frame := make([]float32, 80)
	fb.Accept(make([]float32, 279)) // frame 0 needs samples up to 280 (centre 80, half-length 200)
	if fb.Next(frame) {
		t.Fatal("frame before its last sample arrived")
	}
	fb.Accept(make([]float32, 1))
	if !fb.Next(frame) || fb.Next(frame) {
		t.Fatal("want exactly one frame after 280 samples")
	}
	fb.Finish()
	n := 0
	for fb.Next(frame) {
		n++
	}
	if n != 1 { // (280+80)/160 = 2 frames in all
		t.Fatalf("flush gave %d frames, want 1", n)
	}
}

func BenchmarkFbankFrame(b *testing.B) {
	fb, _ := NewFbank(DefaultFbankOptions())
	in := make([]float32, 160)
	for i := range in {
		in[i] = float32(math.Sin(float64(i) * 0.1))
	}
	frame := make([]float32, 80)
	fb.Accept(make([]float32, 400))
	b.ReportAllocs()
	for b.Loop() {
		fb.Accept(in)
		for fb.Next(frame) {
		}
	}
}
