package media

import (
	"os"
	"testing"
)

// The packet path allocates nothing per packet: what the benchmarks report
// (0 allocs/op) is asserted here, so a change that allocates fails a test.
func TestPacketPathAllocatesNothing(t *testing.T) {
	pkts := pcmuPackets(t, tone(440, 8000, 8000), 1)
	l := newTestLeg(t, nil)
	buf := make([]float32, 16000)
	seq, ts := uint16(0), uint32(0)
	i := 0
	packet := func() {
		p := pkts[i%len(pkts)]
		p[2], p[3] = byte(seq>>8), byte(seq)
		p[4], p[5], p[6], p[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		l.HandleRTP(p)
		seq++
		ts += 160
		i++
		if i%50 == 0 {
			ringOf(l).Read(buf)
		}
	}
	for range 100 { // warm: decoders and buffers at their size
		packet()
	}
	if n := testing.AllocsPerRun(500, packet); n != 0 {
		t.Errorf("Leg.HandleRTP (PCMU): %.2f allocations per packet", n)
	}

	keys, peer := newSRTPPair(t, "AES_CM_128_HMAC_SHA1_80")
	sl, _ := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: -1, Sink: NewRing(2 * 16000), SRTP: keys})
	sealed := peer.protect(t, pcmuPackets(t, tone(440, 8000, 8*8000), 1))
	k := 0
	srtpPacket := func() {
		sl.HandleRTP(sealed[k])
		k++
		if k%50 == 0 {
			ringOf(sl).Read(buf)
		}
	}
	for range 100 {
		srtpPacket()
	}
	if n := testing.AllocsPerRun(200, srtpPacket); n != 0 {
		t.Errorf("Leg.HandleRTP (SRTP PCMU): %.2f allocations per packet", n)
	}

	code, err := os.ReadFile("testdata/speech.g722")
	if err != nil {
		t.Fatal(err)
	}
	dec := newG722Decoder()
	out := make([]float32, 0, 320)
	off := 0
	if n := testing.AllocsPerRun(200, func() {
		out, _ = dec.Decode(out[:0], code[off:off+160])
		off = (off + 160) % (len(code) - 160)
	}); n != 0 {
		t.Errorf("G.722 decode: %.2f allocations per 20 ms", n)
	}

	for _, f := range []Filter{FilterKaldi, FilterSharp} {
		r, _ := NewResamplerFilter(8000, 16000, f)
		in := tone(440, 8000, 160)
		res := make([]float32, 0, 400)
		if n := testing.AllocsPerRun(200, func() { res = r.Process(res[:0], in) }); n != 0 {
			t.Errorf("resampler: %.2f allocations per 20 ms", n)
		}
	}
}
