package media

import (
	"testing"
	"time"
)

// A source that jumps under the same SSRC — a B2BUA restarting sequence or
// timestamp after hold, a sender's reset — is followed after two packets in
// order (RFC 3550 A.1), without a pause of arrival time: none of its audio
// is lost, the jump is counted once, and the timeline goes on where the
// arrival clock is (here: straight on).
func TestLegResyncs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		jump          func(s *rtpSender)
		discont, lost int64
		silence       int64 // 16 kHz samples written for the jump
	}{
		{name: "sequence and timestamp back", jump: func(s *rtpSender) { s.seq, s.ts = 10, 500 }, discont: 1},
		{name: "sequence back, timestamp on", jump: func(s *rtpSender) { s.seq = 10 }, discont: 1},
		{name: "sequence past the dropout, timestamp on", jump: func(s *rtpSender) { s.seq += 10000 }, discont: 1},
		{name: "sequence half way round", jump: func(s *rtpSender) { s.seq -= 40000 }, discont: 1},
		{name: "timestamp back, sequence on", jump: func(s *rtpSender) { s.ts -= 1_000_000 }, discont: 1},
		{name: "timestamp far ahead, sequence on", jump: func(s *rtpSender) { s.ts += 100_000_000 }, discont: 1},
		// Within MaxGapMs, but 3 s ahead of what arrival allows: a reset,
		// not DTX (a packet cannot arrive before it was spoken).
		{name: "timestamp 3 s ahead, sequence on", jump: func(s *rtpSender) { s.ts += 3 * 8000 }, discont: 1},
		// An outage within A.1's dropout (3,000 packets) is loss, not a
		// restart: its silence comes from the RTP clock.
		{name: "an outage of 2 s", jump: func(s *rtpSender) {
			s.seq += 100
			s.ts += 100 * 160
			s.now += int64(2 * time.Second)
		}, lost: 100, silence: 100 * 320},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &blockLog{}
			l := newLogLeg(t, log, nil)
			s := newSender(t, l, 1, 30000, 3_000_000)
			t0 := s.now
			s.send(50)
			tc.jump(s)
			mark, back := len(log.blocks), s.now
			s.send(50)
			if n := log.audio(mark); n != 50*320 {
				t.Errorf("%d samples of audio after the jump, want %d", n, 50*320)
			}
			st := l.Stats()
			if st.Discontinuities != tc.discont || st.Lost != tc.lost || st.Late != 0 || st.SilenceSamples != tc.silence {
				t.Errorf("%+v", st)
			}
			if got, want := log.firstAudio(t, mark).at, samplesSince(t0, back); got < want-1600 || got > want+1600 {
				t.Errorf("first audio after the jump at %d, the arrival clock says %d", got, want)
			}
			log.checkContract(t, 5000)
		})
	}
}

// A single stray packet — a replayed old one, a wild sequence number or
// timestamp — is dropped and counted late; the stream around it plays on
// as if it had not come.
func TestLegDropsStrayPackets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stray func(s *rtpSender)
		// replaces says the stray took the place of the stream's next
		// packet (its sequence number): 20 ms of the stream is missing.
		replaces bool
	}{
		{name: "an old packet replayed", stray: func(s *rtpSender) { s.stray(s.seq-500, s.ts-500*160) }},
		{name: "a sequence number far ahead", stray: func(s *rtpSender) { s.stray(s.seq+20000, s.ts) }},
		{name: "a sequence number far back", stray: func(s *rtpSender) { s.stray(s.seq-20000, s.ts) }},
		{name: "a sequence number past the window", stray: func(s *rtpSender) { s.stray(s.seq+40, s.ts+40*160) }},
		{name: "a timestamp far ahead", stray: func(s *rtpSender) { s.stray(s.seq, s.ts+100_000_000) }, replaces: true},
		{name: "a timestamp from the past", stray: func(s *rtpSender) { s.stray(s.seq, s.ts-1_000_000) }, replaces: true},
		{name: "a timestamp 3 s ahead", stray: func(s *rtpSender) { s.stray(s.seq, s.ts+3*8000) }, replaces: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &blockLog{}
			l := newLogLeg(t, log, nil)
			s := newSender(t, l, 1, 30000, 3_000_000)
			s.send(50)
			tc.stray(s)
			want := int64(100 * 320)
			if tc.replaces {
				s.seq++
				s.ts += 160
				s.now += int64(20 * time.Millisecond)
				want += 320
			}
			s.send(50)
			st := l.Stats()
			if st.Late != 1 || st.Discontinuities != 0 {
				t.Errorf("%+v", st)
			}
			// The resampler holds back its first few samples.
			if end := log.end(); end < want-32 || end > want {
				t.Errorf("timeline ends at %d, want %d", end, want)
			}
			if n := log.audio(0); n < 100*320-32 {
				t.Errorf("%d samples of audio, want %d", n, 100*320)
			}
			var end int64
			for i, b := range log.blocks {
				if b.at != end {
					t.Fatalf("block %d at %d, the previous one ended at %d", i, b.at, end)
				}
				end += int64(b.n)
			}
		})
	}
}

// Receiver reports see what the leg takes: a stray packet does not move the
// highest sequence number, and a restarted source is counted anew from its
// first packet (A.1's init_seq), as a new one would be.
func TestLegReceptionFollowsResync(t *testing.T) {
	l := newLogLeg(t, &blockLog{}, nil)
	s := newSender(t, l, 1, 30000, 3_000_000)
	s.send(50)
	s.stray(s.seq+20000, s.ts)
	s.send(10)
	rx := &l.rxPub
	if ext, got := rx.extMax.Load(), rx.received.Load(); ext != 30059 || got != 60 {
		t.Errorf("after a stray: highest %d, received %d; want 30059, 60", ext, got)
	}
	s.seq, s.ts = 10, 500
	s.send(50)
	if base, ext, got := rx.base.Load(), rx.extMax.Load(), rx.received.Load(); base != 10 || ext != 59 || got != 50 {
		t.Errorf("after a restart: base %d, highest %d, received %d; want 10, 59, 50", base, ext, got)
	}
}
