package media

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
)

// testdata/speech.opus.ogg is 2 s of speech encoded by ffmpeg's libopus at
// 24 kbit/s in VoIP mode, 20 ms frames. Decoded, it must keep the speech:
// high correlation with ffmpeg's own decoding of the same file.
func TestOpusDecodesSpeech(t *testing.T) {
	b, err := os.ReadFile("testdata/speech.opus.ogg")
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := OggPackets(b)
	if err != nil {
		t.Fatal(err)
	}
	pkts = pkts[2:] // OpusHead, OpusTags
	c, err := LookupCodec("opus")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, p := range pkts {
		if got, err = dec.Decode(got, p); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 16000*len(pkts)/50 {
		t.Fatalf("%d samples from %d packets", len(got), len(pkts))
	}
	raw, err := os.ReadFile("testdata/speech.opus.ffmpeg.s16")
	if err != nil {
		t.Fatal(err)
	}
	ref := make([]float32, len(raw)/2)
	for i := range ref {
		ref[i] = float32(int16(binary.LittleEndian.Uint16(raw[2*i:]))) / 32768
	}
	// ffmpeg drops the encoder's pre-skip; find the lag, then correlate.
	best, lag := 0.0, 0
	for d := 0; d < 640; d++ {
		if c := correlation(got[d:], ref); c > best {
			best, lag = c, d
		}
	}
	if best < 0.9 {
		t.Fatalf("correlation with ffmpeg's decoding %.3f (lag %d)", best, lag)
	}
	t.Logf("correlation %.4f at lag %d", best, lag)
}

func correlation(a, b []float32) float64 {
	n := min(len(a), len(b))
	var ab, aa, bb float64
	for i := range n {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

func TestOggPacketsRejectsTruncated(t *testing.T) {
	b, err := os.ReadFile("testdata/speech.opus.ogg")
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{10, 30, len(b) - 7} {
		if _, err := OggPackets(b[:cut]); !errors.Is(err, ErrBadOgg) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}
