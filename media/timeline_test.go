package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// blockLog is a Sink that records where each block landed on the timeline.
type blockLog struct{ blocks []logged }

type logged struct {
	at     int64
	n      int
	silent bool // every sample zero: written silence
}

func (b *blockLog) WriteAudio(at int64, x []float32) {
	silent := true
	for _, v := range x {
		if v != 0 {
			silent = false
			break
		}
	}
	b.blocks = append(b.blocks, logged{at, len(x), silent})
}

// end is the timeline index after the last block.
func (b *blockLog) end() int64 {
	if len(b.blocks) == 0 {
		return 0
	}
	last := b.blocks[len(b.blocks)-1]
	return last.at + int64(last.n)
}

// firstAudio is the first block from i on that is not silence.
func (b *blockLog) firstAudio(t *testing.T, i int) logged {
	t.Helper()
	for _, x := range b.blocks[i:] {
		if !x.silent {
			return x
		}
	}
	t.Fatal("no audio after the gap")
	return logged{}
}

// audio counts the samples of blocks from i on that are not silence.
func (b *blockLog) audio(i int) int {
	n := 0
	for _, x := range b.blocks[i:] {
		if !x.silent {
			n += x.n
		}
	}
	return n
}

// checkContract asserts the Sink contract: blocks in timeline order, never
// overlapping, and no run of written silence longer than maxGapMs.
func (b *blockLog) checkContract(t *testing.T, maxGapMs int) {
	t.Helper()
	var end, run int64
	for i, x := range b.blocks {
		if x.at < end {
			t.Fatalf("block %d at %d, before the previous end %d", i, x.at, end)
		}
		if x.at > end || !x.silent {
			run = 0
		}
		if x.silent {
			run += int64(x.n)
			if run > int64(maxGapMs)*16 {
				t.Fatalf("block %d: %d ms of silence written in one run", i, run/16)
			}
		}
		end = x.at + int64(x.n)
	}
}

// samplesSince is the arrival time from t0 to t, in 16 kHz samples.
func samplesSince(t0, t int64) int64 { return (t - t0) / 62500 }

// rtpSender writes 20 ms PCMU packets of a tone into a leg, each stamped
// with an arrival time of the test's own clock: 20 ms apart unless a test
// moves now (a hold, a stall). No test waits in real time.
type rtpSender struct {
	t       testing.TB
	l       *Leg
	ssrc    uint32
	seq     uint16
	ts      uint32
	now     int64 // arrival of the next packet, unix nanoseconds
	payload []byte
}

func newSender(t testing.TB, l *Leg, ssrc uint32, seq uint16, ts uint32) *rtpSender {
	s := &rtpSender{t: t, l: l, ssrc: ssrc, seq: seq, ts: ts, now: 1_700_000_000 * int64(time.Second),
		payload: make([]byte, 160)}
	for i, v := range tone(440, 8000, 160) {
		s.payload[i] = g711.EncodeUlawFrame(int16(v * 32767))
	}
	return s
}

// packet marshals one packet of the sender's stream as it stands.
func (s *rtpSender) packet(pt uint8, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc},
		Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// send writes n audio packets in order, 20 ms of RTP clock and of arrival
// time apart.
func (s *rtpSender) send(n int) {
	for range n {
		s.l.HandleRTPAt(s.packet(0, s.payload), s.now)
		s.seq++
		s.ts += 160
		s.now += int64(20 * time.Millisecond)
	}
}

// stray writes one packet with the sequence number and timestamp given,
// at the sender's present arrival time, leaving the sender's stream as it
// was.
func (s *rtpSender) stray(seq uint16, ts uint32) {
	keepSeq, keepTS := s.seq, s.ts
	s.seq, s.ts = seq, ts
	s.l.HandleRTPAt(s.packet(0, s.payload), s.now)
	s.seq, s.ts = keepSeq, keepTS
}

// digit writes one RFC 4733 event of ms milliseconds in place of audio:
// updates every 20 ms, three end packets, the event's timestamp its start.
func (s *rtpSender) digit(event byte, ms int) {
	start := s.ts
	for d := 20; ; d += 20 {
		end := d >= ms
		e := byte(10)
		if end {
			e |= 0x80
		}
		dur, n := uint16(d*8), 1
		if end {
			n = 3 // the end packet is sent three times
		}
		for range n {
			s.ts = start
			s.l.HandleRTPAt(s.packet(101, []byte{event, e, byte(dur >> 8), byte(dur)}), s.now)
			s.seq++
		}
		s.now += int64(20 * time.Millisecond)
		if end {
			break
		}
	}
	s.ts = start + uint32(ms*8)
}

func newLogLeg(t testing.TB, log *blockLog, onDTMF func(DTMF)) *Leg {
	l, err := NewLeg(LegOptions{PayloadTypes: map[uint8]string{0: "PCMU"}, DTMFPayloadType: 101, OnDTMF: onDTMF, Sink: log})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// resumes are the ways a stream comes back after a gap of arrival time
// (hold, silence suppression, a sender that stopped): its RTP clock ran
// with the gap, stood still, restarted backwards under the same SSRC, or a
// new source took over.
var resumes = []struct {
	name   string
	resume func(s *rtpSender, gap time.Duration)
}{
	{"clock ran", func(s *rtpSender, gap time.Duration) { s.ts += uint32(gap / time.Second * 8000) }},
	{"clock paused", func(*rtpSender, time.Duration) {}},
	{"resync", func(s *rtpSender, _ time.Duration) { s.seq, s.ts = 7, 99 }},
	{"new SSRC", func(s *rtpSender, _ time.Duration) { s.ssrc, s.seq, s.ts = 2, 1234, 777 }},
}

// Across a gap of 2 s, 12 s or 5 min, however the stream comes back, the
// first audio after it lands where the arrival clock says (within 100 ms),
// all of it is delivered, and no silence longer than MaxGapMs is written.
func TestLegTimelineFollowsArrivalClock(t *testing.T) {
	for _, gap := range []time.Duration{2 * time.Second, 12 * time.Second, 5 * time.Minute} {
		for _, r := range resumes {
			t.Run(gap.String()+"/"+r.name, func(t *testing.T) {
				log := &blockLog{}
				l := newLogLeg(t, log, nil)
				s := newSender(t, l, 1, 30000, 3_000_000)
				t0 := s.now
				s.send(50)
				s.now += int64(gap)
				r.resume(s, gap)
				mark, back := len(log.blocks), s.now
				s.send(50)
				if got, want := log.firstAudio(t, mark).at, samplesSince(t0, back); got < want-1600 || got > want+1600 {
					t.Errorf("first audio after the gap at %d (%.3f s), the arrival clock says %d (%.3f s)",
						got, float64(got)/16000, want, float64(want)/16000)
				}
				// The last packet arrived 20 ms before now; its audio ends there.
				if got, want := log.end(), samplesSince(t0, s.now-int64(20*time.Millisecond))+320; got < want-1600 || got > want+1600 {
					t.Errorf("timeline ends at %d, the arrival clock says %d", got, want)
				}
				if n := log.audio(mark); n != 50*320 {
					t.Errorf("%d samples of audio after the gap, want %d", n, 50*320)
				}
				log.checkContract(t, 5000)
				// Only a gap the RTP clock can tell (up to MaxGapMs) keeps it.
				discont := int64(1)
				if r.name == "clock ran" && gap <= 5*time.Second {
					discont = 0
				}
				if st := l.Stats(); st.Late != 0 || st.Lost != 0 || st.Discontinuities != discont {
					t.Errorf("%+v", st)
				}
			})
		}
	}
}

// Digits keyed after a hold are on the same timeline as the audio: within
// 100 ms of the arrival clock.
func TestLegDTMFFollowsTheTimeline(t *testing.T) {
	for _, r := range resumes {
		t.Run(r.name, func(t *testing.T) {
			var got []DTMF
			log := &blockLog{}
			l := newLogLeg(t, log, func(d DTMF) { got = append(got, d) })
			s := newSender(t, l, 1, 30000, 3_000_000)
			t0 := s.now
			s.send(50)
			s.now += int64(12 * time.Second)
			r.resume(s, 12*time.Second)
			s.send(10)
			keyed := s.now
			s.digit(5, 200)
			s.send(10)
			if len(got) != 1 {
				t.Fatalf("%d digits", len(got))
			}
			if want := samplesSince(t0, keyed) / 16; got[0].StartMs < want-100 || got[0].StartMs > want+100 {
				t.Errorf("digit at %d ms, keyed at %d ms on the arrival clock", got[0].StartMs, want)
			}
			if got[0].DurationMs != 200 {
				t.Errorf("digit of %d ms", got[0].DurationMs)
			}
		})
	}
}

// Ordinary delay does not move the timeline: packets late by up to 300 ms,
// and a 900 ms stall that then delivers what it held in a burst, leave the
// audio contiguous on the RTP clock, with no discontinuity.
func TestLegTimelineRidesOutJitter(t *testing.T) {
	log := &blockLog{}
	l := newLogLeg(t, log, nil)
	s := newSender(t, l, 1, 100, 0)
	delays := []time.Duration{0, 300 * time.Millisecond, 10 * time.Millisecond, 150 * time.Millisecond, 0, 80 * time.Millisecond}
	for i := range 200 {
		base := s.now
		s.now += int64(delays[i%len(delays)])
		if i >= 100 && i < 145 { // the stall: these arrive together when it ends
			s.now = base - int64(time.Duration(i-100)*20*time.Millisecond) + int64(900*time.Millisecond)
		}
		s.send(1)
		s.now = base + int64(20*time.Millisecond)
	}
	var end int64
	for i, b := range log.blocks {
		if b.at != end {
			t.Fatalf("block %d at %d, the previous one ended at %d", i, b.at, end)
		}
		end += int64(b.n)
	}
	if st := l.Stats(); st.Discontinuities != 0 || st.SilenceSamples != 0 {
		t.Errorf("%+v", st)
	}
}
