package asr

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/callscribe/callscribe/media"
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
	a, err := media.ReadWAVFile(filepath.Join(testModelDir(t), "test_wavs", "0.wav"))
	if err != nil {
		t.Fatal(err)
	}
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
	var maxDiff float64
	for i := range ref {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-ref[i])))
	}
	// The reference runs its FFT in float32, this one in float64; log-mel
	// values differ by about 1e-4 at most (they range over about -15..15).
	if maxDiff > 5e-4 {
		t.Fatalf("max |diff| = %g", maxDiff)
	}
	t.Logf("%d frames, max |diff| = %g", want, maxDiff)
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
