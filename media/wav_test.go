package media

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	in := Audio{SampleRate: 8000, Samples: []float32{0, 0.5, -0.5, 0.999, -1}}
	var buf bytes.Buffer
	if err := WriteWAV(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadWAV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if out.SampleRate != 8000 || len(out.Samples) != len(in.Samples) {
		t.Fatalf("%+v", out)
	}
	for i := range in.Samples {
		if math.Abs(float64(out.Samples[i]-in.Samples[i])) > 1.0/32768 {
			t.Errorf("sample %d: %g != %g", i, out.Samples[i], in.Samples[i])
		}
	}
}

func TestReadWAVRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte("RIFF"),
		[]byte("RIFX\x00\x00\x00\x00WAVE"),
		[]byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd"),                                                                                 // data before fmt
		[]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x02\x00\x01\x00\x40\x1f\x00\x00\x00\x00\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"), // ADPCM
	} {
		if _, err := ReadWAV(bytes.NewReader(b)); !errors.Is(err, ErrBadWAV) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

func FuzzReadWAV(f *testing.F) {
	var buf bytes.Buffer
	WriteWAV(&buf, Audio{SampleRate: 16000, Samples: []float32{0.1, -0.2, 0.3}})
	f.Add(buf.Bytes())
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x12\x00\x00\x00\x03\x00\x02\x00\x44\xac\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			return
		}
		if a.SampleRate <= 0 {
			t.Fatalf("rate %d accepted", a.SampleRate)
		}
		for _, s := range a.Samples {
			if s != s {
				return // float WAVs may carry NaN; the caller's business
			}
		}
	})
}
