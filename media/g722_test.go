package media

import (
	"encoding/binary"
	"os"
	"testing"
)

// testdata/speech.g722 is 2 s of speech encoded by ffmpeg 5.1 (Debian 12);
// speech.g722.ffmpeg.s16 is what ffmpeg's G.722 decoder makes of it.
func TestG722MatchesFFmpeg(t *testing.T) {
	code, err := os.ReadFile("testdata/speech.g722")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/speech.g722.ffmpeg.s16")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LookupCodec("g722")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for i := 0; i < len(code); i += 160 { // 20 ms packets
		if got, err = dec.Decode(got, code[i:min(i+160, len(code))]); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(raw)/2 {
		t.Fatalf("%d samples, ffmpeg %d", len(got), len(raw)/2)
	}
	differ := 0
	for i := range got {
		want := int16(binary.LittleEndian.Uint16(raw[2*i:]))
		if g := int16(got[i] * 32768); g != want {
			if differ < 5 {
				t.Errorf("sample %d: %d, ffmpeg %d", i, g, want)
			}
			differ++
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d samples differ", differ, len(got))
	}
}

func BenchmarkG722Decode20ms(b *testing.B) {
	code, _ := os.ReadFile("testdata/speech.g722")
	dec := newG722Decoder()
	out := make([]float32, 0, 320)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := (i * 160) % (len(code) - 160)
		out, _ = dec.Decode(out[:0], code[off:off+160])
	}
}
