package media

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// tone returns n samples of a sine at f Hz.
func tone(f float64, rate, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(0.5 * math.Sin(2*math.Pi*f*float64(i)/float64(rate)))
	}
	return s
}

// level returns the amplitude of the f Hz component of x (a single DFT bin
// over a Hann-windowed middle section).
func level(x []float32, f float64, rate int) float64 {
	x = x[len(x)/4 : 3*len(x)/4]
	var re, im, wsum float64
	for i, v := range x {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(len(x)-1))
		a := 2 * math.Pi * f * float64(i) / float64(rate)
		re += w * float64(v) * math.Cos(a)
		im += w * float64(v) * math.Sin(a)
		wsum += w
	}
	return 2 * math.Hypot(re, im) / wsum
}

func db(x float64) float64 { return 20 * math.Log10(x) }

func TestResamplerPassbandAndStopband(t *testing.T) {
	for _, tc := range []struct{ in, out int }{{8000, 16000}, {48000, 16000}, {44100, 16000}, {16000, 8000}, {22050, 16000}} {
		low := min(tc.in, tc.out)
		n := tc.in // one second
		// Passband: flat within 0.1 dB up to 0.4·min(rate).
		for _, f := range []float64{100, 300, 1000, 0.25 * float64(low), 0.4 * float64(low)} {
			y, err := Resample(tone(f, tc.in, n), tc.in, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if got := db(level(y, f, tc.out) / 0.5); math.Abs(got) > 0.1 {
				t.Errorf("%d->%d: %g Hz passes at %.3f dB", tc.in, tc.out, f, got)
			}
		}
		// Stopband: a tone above 0.5·min(rate) (down) or its image (up) is at
		// least 60 dB down.
		for _, f := range []float64{0.5 * float64(low), 0.52 * float64(low), 0.6 * float64(low), 0.9 * float64(low)} {
			var leak float64
			if tc.out < tc.in { // the tone itself must vanish (aliasing to out-f)
				y, _ := Resample(tone(f, tc.in, n), tc.in, tc.out)
				alias := math.Abs(float64(tc.out) - f)
				leak = math.Max(level(y, alias, tc.out), level(y, math.Mod(f, float64(tc.out)), tc.out))
			} else { // a tone at in-f must not make an image at f
				src := float64(tc.in) - f
				y, _ := Resample(tone(src, tc.in, n), tc.in, tc.out)
				leak = level(y, f, tc.out)
			}
			if got := db(leak / 0.5); got > -60 {
				t.Errorf("%d->%d: stopband %g Hz at %.1f dB", tc.in, tc.out, f, got)
			}
		}
	}
}

func TestResamplerStreamingEqualsWhole(t *testing.T) {
	x := tone(440, 8000, 8000)
	whole, _ := Resample(x, 8000, 16000)
	r, _ := NewResampler(8000, 16000)
	var got []float32
	for i := 0; i < len(x); i += 160 {
		got = r.Process(got, x[i:min(i+160, len(x))])
	}
	got = r.Flush(got)
	if len(got) != len(whole) || len(got) != 16000 {
		t.Fatalf("lengths %d, %d", len(got), len(whole))
	}
	for i := range got {
		if got[i] != whole[i] {
			t.Fatalf("sample %d: %g != %g", i, got[i], whole[i])
		}
	}
}

func TestResamplerIsZeroPhase(t *testing.T) {
	// An impulse stays at the same time.
	x := make([]float32, 800)
	x[400] = 1
	y, _ := Resample(x, 8000, 16000)
	best := 0
	for i := range y {
		if y[i] > y[best] {
			best = i
		}
	}
	if best != 800 {
		t.Fatalf("impulse moved to %d, want 800", best)
	}
}

func TestResamplerRejectsBadRates(t *testing.T) {
	for _, r := range [][2]int{{0, 16000}, {8000, -1}, {1000000, 16000}} {
		if _, err := NewResampler(r[0], r[1]); err == nil {
			t.Errorf("%v accepted", r)
		}
	}
}

func BenchmarkResample8kTo16k20ms(b *testing.B) {
	r, _ := NewResampler(8000, 16000)
	in := tone(440, 8000, 160)
	out := make([]float32, 0, 400)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

// testdata/speech-8k.kaldi16k.f32 is the first 8000 samples (float32 LE)
// that sherpa-onnx's LinearResample (Kaldi's) makes of testdata/speech-8k.wav
// at 16 kHz, fed in 100 ms pieces.
func TestFilterKaldiMatchesReferenceBitForBit(t *testing.T) {
	raw, err := os.ReadFile("testdata/speech-8k.kaldi16k.f32")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ReadWAVFile("testdata/speech-8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResamplerFilter(8000, 16000, FilterKaldi)
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for i := 0; i < len(a.Samples); i += 800 {
		got = r.Process(got, a.Samples[i:min(i+800, len(a.Samples))])
	}
	got = r.Flush(got)
	if len(got) < len(raw)/4 {
		t.Fatalf("got %d samples", len(got))
	}
	for i := range len(raw) / 4 {
		want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if got[i] != want {
			t.Fatalf("sample %d: %g, want %g", i, got[i], want)
		}
	}
}

func BenchmarkResampleKaldi8kTo16k20ms(b *testing.B) {
	r, _ := NewResamplerFilter(8000, 16000, FilterKaldi)
	in := tone(440, 8000, 160)
	out := make([]float32, 0, 400)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

// The unrolled paths give, bit for bit, what one output at a time with the
// taps summed in order gives, whatever the chunking of the input.
func TestResamplerFastPathsMatchPlainSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4000)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	for _, c := range []struct {
		in, out int
		f       Filter
	}{{8000, 16000, FilterKaldi}, {8000, 16000, FilterSharp}, {16000, 8000, FilterKaldi}, {48000, 16000, FilterSharp}, {8000, 11025, FilterSharp}} {
		r, err := NewResamplerFilter(c.in, c.out, c.f)
		if err != nil {
			t.Fatal(err)
		}
		// The plain sum, over zero padding before and after.
		L, M, W, taps := int64(r.l), int64(r.m), int64(r.w), 2*r.w
		at := func(i int64) float32 {
			if i < 0 || i >= int64(len(x)) {
				return 0
			}
			return x[i]
		}
		want := (int64(len(x))*L + M - 1) / M
		var plain []float32
		for n := int64(0); n < want; n++ {
			i := n % L
			base := (n/L)*M + r.base[i]
			var acc float32
			for j := range taps {
				acc += r.table[int(i)*taps+j] * at(base-W+1+int64(j))
			}
			plain = append(plain, acc)
		}
		var got []float32
		for i := 0; i < len(x); {
			n := 1 + rng.IntN(400)
			got = r.Process(got, x[i:min(i+n, len(x))])
			i += n
		}
		got = r.Flush(got)
		if len(got) != len(plain) {
			t.Fatalf("%d->%d: %d samples, want %d", c.in, c.out, len(got), len(plain))
		}
		for i := range got {
			if got[i] != plain[i] {
				t.Fatalf("%d->%d sample %d: %g != %g", c.in, c.out, i, got[i], plain[i])
			}
		}
	}
}
