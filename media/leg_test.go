package media

import (
	"encoding/binary"
	"math"
	"os"
	"reflect"
	"testing"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// pcmuPackets encodes x (8 kHz) as 20 ms PCMU packets from seq 100, ts 1000.
func pcmuPackets(t testing.TB, x []float32, ssrc uint32) [][]byte {
	var out [][]byte
	for i, k := 0, 0; i+160 <= len(x); i, k = i+160, k+1 {
		payload := make([]byte, 160)
		for j := range payload {
			payload[j] = g711.EncodeUlawFrame(int16(x[i+j] * 32767))
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(100 + k),
			Timestamp: uint32(1000 + i), SSRC: ssrc}, Payload: payload}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func newTestLeg(t testing.TB, onDTMF func(DTMF)) *Leg {
	l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU", 8: "PCMA"}, DTMFPayloadType: 101, OnDTMF: onDTMF,
		Sink: NewRing(2 * 16000)}) // 2 s, what a leg held before it pushed to a sink
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ringOf is the ring a test leg writes to.
func ringOf(l *Leg) *Ring { return l.Sink().(*Ring) }

func readAll(l *Leg) []float32 {
	out := make([]float32, ringOf(l).Len())
	n, _ := ringOf(l).Read(out)
	return out[:n]
}

func TestLegDecodesPCMUTone(t *testing.T) {
	l := newTestLeg(t, nil)
	for _, p := range pcmuPackets(t, tone(1000, 8000, 8000), 1) {
		l.HandleRTP(p)
	}
	y := readAll(l)
	if len(y) < 15900 || len(y) > 16000 {
		t.Fatalf("%d samples for 1 s", len(y))
	}
	if a := level(y, 1000, 16000); math.Abs(db(a/0.5)) > 0.5 {
		t.Errorf("1 kHz at %.2f dB", db(a/0.5))
	}
	if a := level(y, 2500, 16000); db(a/0.5) > -40 {
		t.Errorf("2.5 kHz at %.1f dB", db(a/0.5))
	}
	if st := l.Stats(); st.Packets != 50 || st.Lost+st.Late+st.Malformed != 0 {
		t.Errorf("%+v", st)
	}
}

func TestLegReordersWithinWindow(t *testing.T) {
	pkts := pcmuPackets(t, tone(440, 8000, 4000), 7)
	inOrder := newTestLeg(t, nil)
	for _, p := range pkts {
		inOrder.HandleRTP(p)
	}
	want := readAll(inOrder)
	shuffled := newTestLeg(t, nil)
	order := []int{0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 10, 12, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}
	for _, i := range order {
		shuffled.HandleRTP(pkts[i])
	}
	shuffled.HandleRTP(pkts[3]) // a duplicate
	got := readAll(shuffled)
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d differs", i)
		}
	}
	if st := shuffled.Stats(); st.Late != 1 || st.Lost != 0 {
		t.Errorf("%+v", st)
	}
}

func TestLegLossBecomesSilenceOnTheTimeline(t *testing.T) {
	pkts := pcmuPackets(t, tone(440, 8000, 8000), 3)
	l := newTestLeg(t, nil)
	for i, p := range pkts {
		if i == 10 || i == 11 {
			continue
		}
		l.HandleRTP(p)
	}
	y := readAll(l)
	full := newTestLeg(t, nil)
	for _, p := range pkts {
		full.HandleRTP(p)
	}
	if want := len(readAll(full)); len(y) != want {
		t.Fatalf("timeline %d samples, want %d", len(y), want)
	}
	// 40 ms missing at 200 ms: the middle of the gap is silent.
	for i := 200*16 + 100; i < 240*16-100; i++ {
		if y[i] != 0 {
			t.Fatalf("sample %d = %g inside the gap", i, y[i])
		}
	}
	if st := l.Stats(); st.Lost != 2 || st.SilenceSamples != 640 {
		t.Errorf("%+v", st)
	}
}

func TestLegDropsMalformed(t *testing.T) {
	l := newTestLeg(t, nil)
	good := pcmuPackets(t, tone(440, 8000, 320), 1)[0]
	bad := [][]byte{
		nil,
		good[:11],
		append([]byte{0x40}, good[1:]...),   // version 1
		append([]byte{0x8f}, good[1:20]...), // 15 CSRCs past the end
		append(append([]byte{0xa0}, good[1:]...)[:172], 200), // padding longer than the packet
	}
	for _, b := range bad {
		l.HandleRTP(b)
	}
	other := append([]byte(nil), good...)
	other[1] = 99 // payload type not negotiated
	l.HandleRTP(other)
	st := l.Stats()
	if st.Malformed != int64(len(bad)) || st.UnknownPT != 1 || ringOf(l).Len() != 0 {
		t.Errorf("%+v, %d samples", st, ringOf(l).Len())
	}
}

func TestLegDTMFOncePerEvent(t *testing.T) {
	var got []DTMF
	l := newTestLeg(t, func(d DTMF) { got = append(got, d) })
	seq := uint16(500)
	send := func(ts uint32, event byte, end bool, dur uint16) {
		e := byte(10)
		if end {
			e |= 0x80
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq, Timestamp: ts, SSRC: 9},
			Payload: []byte{event, e, byte(dur >> 8), byte(dur)}}
		b, _ := p.Marshal()
		l.HandleRTP(b)
		seq++
	}
	for d := uint16(160); d <= 800; d += 160 {
		send(8000, 5, false, d)
	}
	for range 3 {
		send(8000, 5, true, 960)
	}
	send(16000, 11, true, 400) // '#'
	send(24000, 16, true, 400) // hook flash (fmtp 0-16): no digit, not malformed
	if len(got) != 2 || got[0].Digit != '5' || got[0].DurationMs != 120 || got[1].Digit != '#' || got[1].DurationMs != 50 {
		t.Fatalf("%+v", got)
	}
	if st := l.Stats(); st.Malformed != 0 {
		t.Errorf("%d malformed", st.Malformed)
	}
}

func TestLegSSRCChangeIsADiscontinuity(t *testing.T) {
	l := newTestLeg(t, nil)
	for _, p := range pcmuPackets(t, tone(440, 8000, 1600), 1) {
		l.HandleRTP(p)
	}
	for _, p := range pcmuPackets(t, tone(440, 8000, 1600), 2) { // same seq numbers, new source
		l.HandleRTP(p)
	}
	st := l.Stats()
	if st.Discontinuities != 1 || st.Late != 0 || ringOf(l).Len() < 6000 {
		t.Errorf("%+v, %d samples", st, ringOf(l).Len())
	}
}

func FuzzLegRTP(f *testing.F) {
	for _, p := range pcmuPackets(f, tone(440, 8000, 480), 1) {
		f.Add(p)
	}
	f.Add([]byte{0x80, 101, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5, 0x8a, 0, 160})
	seed := newSender(f, nil, 1, 30003, 3_000_480)
	f.Add(seed.packet(0, seed.payload)) // the stream's own next packet
	f.Fuzz(func(t *testing.T, b []byte) {
		l := newTestLeg(t, func(DTMF) {})
		l.HandleRTP(b)
		l.HandleRTP(b)
		// Amid a stream, arriving at a time its bytes choose (within
		// ±35 min), the packet leaves the Sink contract whole.
		log := &blockLog{}
		s := newSender(t, newLogLeg(t, log, func(DTMF) {}), 1, 30000, 3_000_000)
		s.send(3)
		var skew int64
		if len(b) >= 16 { // the last bytes: the payload's, for a packet
			skew = int64(int32(binary.BigEndian.Uint32(b[len(b)-4:]))) * 1000
		}
		s.l.HandleRTPAt(b, s.now+skew)
		s.l.HandleRTPAt(b, s.now+skew)
		s.send(3)
		log.checkContract(t, 5000)
	})
}

func BenchmarkLegPCMU20ms(b *testing.B) {
	pkts := pcmuPackets(b, tone(440, 8000, 8000), 1)
	l := newTestLeg(b, nil)
	buf := make([]float32, 16000)
	// Rewrite sequence numbers and timestamps so every packet is new.
	seq, ts := uint16(0), uint32(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := pkts[i%len(pkts)]
		p[2], p[3] = byte(seq>>8), byte(seq)
		p[4], p[5], p[6], p[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		l.HandleRTP(p)
		seq++
		ts += 160
		if i%50 == 49 {
			ringOf(l).Read(buf)
		}
	}
}

// G.722 rides RTP with an 8 kHz clock while it carries 16 kHz audio.
func TestLegG722(t *testing.T) {
	code, err := os.ReadFile("testdata/speech.g722")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{9: "G722"}, DTMFPayloadType: -1, Sink: NewRing(2 * 16000)})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; (k+1)*160 <= len(code); k++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: uint16(k),
			Timestamp: uint32(k * 160), SSRC: 4}, Payload: code[k*160 : (k+1)*160]}
		if k == 40 {
			continue // one lost packet: 20 ms of silence, the timeline intact
		}
		b, _ := p.Marshal()
		l.HandleRTP(b)
	}
	want, _ := newG722Decoder().Decode(nil, code)
	got := readAll(l)
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	if st := l.Stats(); st.Lost != 1 || st.SilenceSamples != 320 {
		t.Errorf("%+v", st)
	}
	for i := 0; i < 40*320; i++ {
		if got[i] != want[i] {
			t.Fatalf("sample %d differs before the loss", i)
		}
	}
}

func TestLegRenegotiate(t *testing.T) {
	l := newTestLeg(t, nil)
	l.Renegotiate(map[uint8]string{8: "PCMA"}, -1) // a re-INVITE moved to PCMA only
	pkts := pcmuPackets(t, tone(440, 8000, 1600), 1)
	l.HandleRTP(pkts[0]) // PCMU is no longer decoded
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: 101, Timestamp: 1160, SSRC: 1},
		Payload: make([]byte, 160)}
	for i := range p.Payload {
		p.Payload[i] = g711.EncodeAlawFrame(int16(8000 * math.Sin(float64(i)/3)))
	}
	b, _ := p.Marshal()
	l.HandleRTP(b)
	st := l.Stats()
	if st.UnknownPT != 1 || ringOf(l).Len() < 300 {
		t.Errorf("%+v, %d samples", st, ringOf(l).Len())
	}
	if err := l.Renegotiate(nil, -1); err == nil {
		t.Error("empty codec set accepted")
	}
}

// Add sums every counter, so totals over legs miss none.
func TestLegStatsAddSumsEveryField(t *testing.T) {
	var one LegStats
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		v.Field(i).SetInt(1)
	}
	var sum LegStats
	sum.Add(one)
	sum.Add(one)
	s := reflect.ValueOf(sum)
	for i := range s.NumField() {
		if s.Field(i).Int() != 2 {
			t.Errorf("%s not summed", s.Type().Field(i).Name)
		}
	}
}
