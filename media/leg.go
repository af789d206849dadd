package media

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// LegOptions configure the receive path of one call leg.
type LegOptions struct {
	// PayloadTypes maps RTP payload types to SDP codec names (from the
	// negotiated SDP). Required.
	PayloadTypes map[uint8]string `yaml:"-"`
	// DTMFPayloadType is the telephone-event payload type; -1 for none.
	DTMFPayloadType int `yaml:"-"`
	// DTMFClockRate is the telephone-event's clock; 0: the codec's.
	DTMFClockRate int `yaml:"-"`
	// Sink receives the leg's 16 kHz audio as it is decoded. Required.
	Sink Sink `yaml:"-"`
	// ReorderMs is how long a missing packet is waited for before it is
	// declared lost; default 60.
	ReorderMs int `yaml:"reorder_ms"`
	// MaxGapMs is the longest gap of the RTP clock (loss, DTX) written as
	// silence; default 5000. Across a longer one the timeline follows the
	// packets' arrival instead (see Sink).
	MaxGapMs int `yaml:"-"`
	// Filter resamples to 16 kHz; default FilterKaldi (what the speech
	// model expects of narrowband audio, see docs/recognition.md).
	Filter *Filter `yaml:"-"`
	// OnDTMF receives each RFC 4733 event once, on the packet path; it must
	// not block.
	OnDTMF func(DTMF) `yaml:"-"`
	// SRTP, if set, authenticates and decrypts every packet (RFC 3711);
	// a packet that fails is dropped and counted Unauthenticated.
	SRTP *SRTP `yaml:"-"`
}

// DTMF is one telephone-event (RFC 4733).
type DTMF struct {
	Digit      byte  // '0'-'9', '*', '#', 'A'-'D'
	StartMs    int64 // on the leg's timeline, or the call's clock when OnCall
	DurationMs int64
	// OnCall says StartMs is ms since the call started (a digit signalled
	// outside the media, SIP INFO) rather than on the leg's timeline.
	OnCall bool
}

// LegStats are a leg's packet counters.
type LegStats struct {
	Packets, Bytes  int64
	Malformed       int64 // not RTP: too short, bad version, CSRC or padding past the end
	UnknownPT       int64
	Late            int64 // older than the playout point, duplicates, or strays (a jump the next packet did not confirm)
	Lost            int64 // declared lost after the reorder window
	Discontinuities int64 // the RTP clock lost: SSRC changes, resynchronisations, timestamp jumps, paused clocks
	DTMF            int64
	SilenceSamples  int64 // 16 kHz samples of gap written for loss/DTX
	Ignored         int64 // from sources other than the latched one (filled by the receiver's owner)
	Panics          int64 // whose handling panicked, dropped (filled by the receiver's owner)
	Unauthenticated int64 // SRTP packets that failed authentication (or replays), dropped
	RTCP            int64 // RTCP packets received from the peer
	Reports         int64 // RTCP receiver reports sent
}

// Add adds o's counters to s (totals over legs).
func (s *LegStats) Add(o LegStats) {
	s.Packets += o.Packets
	s.Bytes += o.Bytes
	s.Malformed += o.Malformed
	s.UnknownPT += o.UnknownPT
	s.Late += o.Late
	s.Lost += o.Lost
	s.Discontinuities += o.Discontinuities
	s.DTMF += o.DTMF
	s.SilenceSamples += o.SilenceSamples
	s.Ignored += o.Ignored
	s.Panics += o.Panics
	s.Unauthenticated += o.Unauthenticated
	s.RTCP += o.RTCP
	s.Reports += o.Reports
}

// Sink receives a leg's 16 kHz audio on the leg's packet goroutine. at is
// the timeline index of samples[0]: 16 kHz samples since the start of the
// leg's first audio (or of a digit keyed before any), a clock that follows
// the packets' arrival. Blocks arrive in timeline order and never overlap:
// at is never before the previous block's end.
//
// Short gaps of the RTP clock (loss, DTX: up to LegOptions.MaxGapMs) arrive
// as blocks of silence, so the audio stays contiguous. Across a longer gap
// — a timestamp jump over MaxGapMs, an RTP resynchronisation, a new SSRC, a
// codec clock change, or packets resuming after an arrival pause that the
// RTP clock does not account for (a sender whose timestamps did not
// advance over a hold) — nothing is written for the gap: at jumps ahead so
// that the timeline follows the arrival clock. The first block after the
// gap ends where its packet's arrival puts it (a packet arrives once its
// audio was spoken): at = previous end + the arrival time elapsed since the
// previous packet × 16 per ms − the block's own length, never less than
// the previous end; the elapsed time is read on a clock anchored on the
// packets that came soonest, so that network delay does not push the
// timeline ahead. The sink bridges the jump. No silence block longer than
// MaxGapMs is ever written.
//
// WriteAudio must not block and must not keep samples after it returns.
type Sink interface {
	WriteAudio(at int64, samples []float32)
}

// Leg turns one leg's RTP packets into 16 kHz audio for its Sink. HandleRTP
// is called by one goroutine (the leg's socket reader) and allocates
// nothing per packet.
type Leg struct {
	opts    LegOptions
	sink    Sink
	pos     int64 // timeline index of the next sample
	zeros   []float32
	decs    map[uint8]*legCodec
	next    atomic.Pointer[codecSet] // a renegotiated set, taken by the packet path
	keys    atomic.Pointer[SRTP]     // nil: plain RTP
	reorder reorder
	rx      reception // for RTCP receiver reports
	rxPub   receptionPub

	cur      *legCodec // codec of the last audio packet
	ssrc     uint32
	haveSSRC bool
	haveTS   bool
	nextTS   uint32 // RTP timestamp where the timeline ends
	lastDTMF uint32 // timestamp of the last reported telephone-event
	haveDTMF bool
	clock    arrivalClock

	// Packets on probation (RFC 3550 A.1): one that jumped far from the
	// stream's sequence numbers, one whose timestamp left the stream's
	// base. Each waits for the next packet to confirm the jump or to show
	// it a stray.
	seqProbe slot
	tsProbe  slot

	pkt   rtp.Packet
	plain []byte // a decrypted SRTP packet
	pcm   []float32
	out   []float32
	stats LegStats
}

type legCodec struct {
	codec Codec
	dec   Decoder
	rs    *Resampler
}

// DefaultReorderMs is LegOptions.ReorderMs's default.
const DefaultReorderMs = 60

// ErrNoCodec is returned when a leg has no payload type to decode.
var ErrNoCodec = errors.New("media: leg has no codec")

// ErrNoSink is returned when a leg has nowhere to send its audio.
var ErrNoSink = errors.New("media: leg has no sink")

// NewLeg prepares a leg's receive path.
func NewLeg(o LegOptions) (*Leg, error) {
	if len(o.PayloadTypes) == 0 {
		return nil, ErrNoCodec
	}
	if o.Sink == nil {
		return nil, ErrNoSink
	}
	if o.ReorderMs <= 0 {
		o.ReorderMs = DefaultReorderMs
	}
	if o.MaxGapMs <= 0 {
		o.MaxGapMs = 5000
	}
	if o.Filter == nil {
		o.Filter = &FilterKaldi
	}
	l := &Leg{opts: o, sink: o.Sink, zeros: make([]float32, 320), plain: make([]byte, 0, 1500),
		pcm: make([]float32, 0, 4096), out: make([]float32, 0, 8192)}
	if o.SRTP != nil {
		l.keys.Store(o.SRTP)
	}
	set, err := l.codecSet(o.PayloadTypes, o.DTMFPayloadType)
	if err != nil {
		return nil, err
	}
	l.decs = set.decs
	l.reorder.init(32, 512)
	l.seqProbe.payload = make([]byte, 0, 512)
	l.tsProbe.payload = make([]byte, 0, 512)
	return l, nil
}

// codecSet is the payload types a leg decodes.
type codecSet struct {
	decs map[uint8]*legCodec
	dtmf int
}

// codecSet builds decoders for pts.
func (l *Leg) codecSet(pts map[uint8]string, dtmf int) (*codecSet, error) {
	set := &codecSet{decs: map[uint8]*legCodec{}, dtmf: dtmf}
	for pt, name := range pts {
		c, err := LookupCodec(name)
		if err != nil {
			return nil, fmt.Errorf("media: payload type %d: %q: %w", pt, name, err)
		}
		dec, err := c.NewDecoder()
		if err != nil {
			return nil, err
		}
		rs, err := NewResamplerFilter(dec.SampleRate(), 16000, *l.opts.Filter)
		if err != nil {
			return nil, err
		}
		set.decs[pt] = &legCodec{codec: c, dec: dec, rs: rs}
	}
	return set, nil
}

// Renegotiate changes the payload types the leg decodes (a re-INVITE
// changed the codec). It may be called from any goroutine; the packet path
// takes the new set before its next packet.
func (l *Leg) Renegotiate(pts map[uint8]string, dtmf int) error {
	if len(pts) == 0 {
		return ErrNoCodec
	}
	// Fresh decoders only: the packet path, installing the set, keeps its
	// own for payload types whose codec did not change.
	set, err := l.codecSet(pts, dtmf)
	if err != nil {
		return err
	}
	l.next.Store(set)
	return nil
}

// Rekey replaces the leg's SRTP keys (a re-INVITE offered new ones); nil
// turns SRTP off. Any goroutine; the next packet uses them.
func (l *Leg) Rekey(k *SRTP) { l.keys.Store(k) }

// SRTP is the leg's keys now, nil for plain RTP.
func (l *Leg) SRTP() *SRTP { return l.keys.Load() }

// Sink is where the leg's 16 kHz audio goes.
func (l *Leg) Sink() Sink { return l.sink }

// Stats returns the counters. Safe only from the packet goroutine, or after
// it stopped.
func (l *Leg) Stats() LegStats { return l.stats }

// write hands audio to the sink at the end of the timeline.
func (l *Leg) write(x []float32) {
	l.sink.WriteAudio(l.pos, x)
	l.pos += int64(len(x))
}

// silence writes n samples of gap.
func (l *Leg) silence(n int) {
	for n > 0 {
		k := min(n, len(l.zeros))
		l.write(l.zeros[:k])
		n -= k
	}
}

// HandleRTP takes one datagram. Bad packets are dropped and counted.
func (l *Leg) HandleRTP(buf []byte) { l.HandleRTPAt(buf, time.Now().UnixNano()) }

// HandleRTPAt takes one datagram that arrived at now (unix nanoseconds).
// It tells whether the packet was RTP of the peer: well formed and, on an
// SRTP leg, authenticated (what may latch the leg's receiver).
func (l *Leg) HandleRTPAt(buf []byte, now int64) bool {
	if set := l.next.Swap(nil); set != nil {
		for pt, c := range set.decs {
			if o, ok := l.decs[pt]; ok && o.codec.Name == c.codec.Name {
				set.decs[pt] = o // same codec: keep its decoder state
			}
		}
		l.decs, l.opts.DTMFPayloadType = set.decs, set.dtmf
	}
	l.stats.Packets++
	l.stats.Bytes += int64(len(buf))
	if len(buf) < 12 || buf[0]>>6 != 2 {
		l.stats.Malformed++
		return false
	}
	if k := l.keys.Load(); k != nil {
		plain, err := k.in.DecryptRTP(l.plain[:0], buf, &l.pkt.Header)
		if err != nil {
			l.stats.Unauthenticated++
			return false
		}
		buf = plain
	}
	if err := l.pkt.Unmarshal(buf); err != nil {
		l.stats.Malformed++
		return false
	}
	h := &l.pkt.Header
	pt := h.PayloadType
	if _, ok := l.decs[pt]; !ok && int(pt) != l.opts.DTMFPayloadType {
		l.stats.UnknownPT++
		return true
	}
	if !l.haveSSRC || h.SSRC != l.ssrc {
		if l.haveSSRC { // a new source: its sequence and clock start over
			l.flush()
			l.dropProbe(&l.seqProbe)
			l.dropProbe(&l.tsProbe)
			l.stats.Discontinuities++
			l.haveTS = false
		}
		l.ssrc, l.haveSSRC = h.SSRC, true
		l.reorder.reset()
	}
	switch l.reorder.put(h.SequenceNumber, h.Timestamp, pt, now, l.pkt.Payload) {
	case putLate:
		l.received(h.SequenceNumber, h.Timestamp, pt, now)
		l.stats.Late++
		return true
	case putFar:
		if !l.confirmSeq(now) {
			return true // on probation: reception counts it once confirmed
		}
	default: // the stream goes on where it was: a probe was a stray
		l.dropProbe(&l.seqProbe)
	}
	l.received(h.SequenceNumber, h.Timestamp, pt, now)
	l.drain(false)
	return true
}

// received counts a packet of the source for RTCP receiver reports.
func (l *Leg) received(seq uint16, ts uint32, pt uint8, arrival int64) {
	clock := 0 // telephone-events take no part in the jitter
	if c := l.decs[pt]; c != nil {
		clock = c.codec.ClockRate
	}
	l.rx.update(&l.rxPub, l.ssrc, seq, ts, clock, arrival)
}

// maxDropout is the furthest a sequence number may jump ahead and still be
// the same stream after an outage (RFC 3550 A.1's MAX_DROPOUT: a minute of
// 20 ms packets).
const maxDropout = 3000

// confirmSeq is RFC 3550 A.1's probation of the packet in l.pkt, whose
// sequence number is far from the stream's (ahead of the reorder window,
// or more than maxMisorder behind): it is held, and only if the next
// packet follows it in order does the stream go on from there — one stray
// (a replayed old packet, a wild one) is dropped and counted late instead
// of restarting the leg. Unlike A.1 the held packet is not dropped but
// played once confirmed: a restart loses no audio, for one packet time of
// delay at the jump. It tells whether the packet was put in the reorder.
func (l *Leg) confirmSeq(now int64) bool {
	h := &l.pkt.Header
	p := &l.seqProbe
	if !p.valid || h.SequenceNumber != p.seq+1 {
		l.dropProbe(p)
		p.set(h.SequenceNumber, h.Timestamp, h.PayloadType, now, l.pkt.Payload)
		return false
	}
	l.flush()
	if gap := p.seq - l.reorder.next; gap < maxDropout && l.fits(p.ts, l.decs[p.pt], p.arrival) {
		// An outage whose timestamps agree: loss, the stream unbroken.
		l.stats.Lost += int64(gap)
	} else {
		// The source restarted (a B2BUA after hold, a sender's reset): its
		// timestamps keep their base only if they still fit it.
		l.stats.Discontinuities++
		l.haveTS = l.fits(p.ts, l.decs[p.pt], p.arrival)
		l.dropProbe(&l.tsProbe)
		// A.1's init_seq: reports count the stream anew from here, as
		// for a new source.
		l.rx.started = false
	}
	l.received(p.seq, p.ts, p.pt, p.arrival)
	l.reorder.reset()
	p.valid = false
	l.reorder.put(p.seq, p.ts, p.pt, p.arrival, p.payload)
	l.reorder.put(h.SequenceNumber, h.Timestamp, h.PayloadType, now, l.pkt.Payload)
	return true
}

// dropProbe drops a packet held on probation, if any: a stray.
func (l *Leg) dropProbe(p *slot) {
	if p.valid {
		p.valid = false
		l.stats.Late++
	}
}

// fits tells whether an audio packet continues the stream's timestamps: at
// most MaxGapMs past where the timeline ends, and not more than
// pausedClockMs later on the RTP clock than its arrival allows (a packet
// cannot arrive before it was spoken: its timestamps jumped ahead).
func (l *Leg) fits(ts uint32, c *legCodec, arrival int64) bool {
	if !l.haveTS || c == nil || l.cur == nil || c.codec.ClockRate != l.cur.codec.ClockRate {
		return false
	}
	rate := int64(c.codec.ClockRate)
	gap := int64(int32(ts - l.nextTS))
	if gap < 0 || gap*1000 > int64(l.opts.MaxGapMs)*rate {
		return false
	}
	return !l.clock.started || l.clock.at(arrival)-(l.pos+gap*16000/rate) >= -pausedClockMs*16
}

// flush plays out everything held, gaps included.
func (l *Leg) flush() { l.drain(true) }

func (l *Leg) drain(all bool) {
	for {
		s, ok := l.reorder.pop()
		if !ok {
			if !l.reorder.waiting() || !all && l.worthWaiting() {
				return
			}
			l.reorder.skip()
			l.stats.Lost++
			continue
		}
		l.play(s)
	}
}

// worthWaiting tells whether the missing next packet may still come: the
// newest held packet is less than the reorder window ahead of the stream's
// timestamps, or of a new base on probation. One far behind them (a
// timestamp jump) gains nothing from waiting.
func (l *Leg) worthWaiting() bool {
	if !l.haveTS {
		return true
	}
	window, maxGap := int32(l.clockUnits(l.opts.ReorderMs)), int32(l.clockUnits(l.opts.MaxGapMs))
	if d := int32(l.reorder.newestTS - l.nextTS); d < window && d > -maxGap {
		return true
	}
	d := int32(l.reorder.newestTS - l.tsProbe.ts)
	return l.tsProbe.valid && d >= 0 && d < window
}

// clockUnits converts ms to the current codec's clock.
func (l *Leg) clockUnits(ms int) int64 {
	rate := int64(8000)
	if l.cur != nil {
		rate = int64(l.cur.codec.ClockRate)
	}
	return int64(ms) * rate / 1000
}

// play takes the next packet in sequence order. An audio packet whose
// timestamp does not fit the stream's is held on probation: if the next
// one fits the stream, it was a stray and is dropped; if the next one
// follows it instead, the two agree on a new timestamp base, which the
// stream takes from then on (RFC 3550 A.1's probation, for timestamps).
func (l *Leg) play(s *slot) {
	if int(s.pt) == l.opts.DTMFPayloadType {
		l.dtmf(s)
		return
	}
	c := l.decs[s.pt]
	if c == nil { // held from before a renegotiation that dropped it
		l.stats.UnknownPT++
		return
	}
	if p := &l.tsProbe; p.valid {
		switch d := int64(int32(s.ts - p.ts)); {
		case l.fits(s.ts, c, s.arrival):
			l.dropProbe(p)
		case d > 0 && d*1000 <= int64(l.opts.MaxGapMs)*int64(c.codec.ClockRate):
			p.valid = false
			l.stats.Discontinuities++
			l.haveTS = false // the probe is placed by its arrival
			l.playAudio(p, l.decs[p.pt])
		default: // neither: this one may start a new base
			l.dropProbe(p)
			p.set(s.seq, s.ts, s.pt, s.arrival, s.payload)
			return
		}
	} else if l.haveTS && l.cur != nil && c.codec.ClockRate == l.cur.codec.ClockRate && !l.fits(s.ts, c, s.arrival) {
		p.set(s.seq, s.ts, s.pt, s.arrival, s.payload)
		return
	}
	l.playAudio(s, c)
}

// playAudio decodes an audio packet onto the timeline.
func (l *Leg) playAudio(s *slot, c *legCodec) {
	if c == nil {
		l.stats.UnknownPT++
		return
	}
	if c != l.cur {
		if l.cur != nil && c.codec.ClockRate != l.cur.codec.ClockRate {
			l.haveTS = false // another clock: the timestamps do not compare
		}
		l.cur = c
	}
	var err error
	l.pcm, err = c.dec.Decode(l.pcm[:0], s.payload)
	if err != nil {
		l.stats.Malformed++
		return
	}
	l.out = c.rs.Process(l.out[:0], l.pcm)
	l.place(s, c, int64(len(l.out)))
	l.write(l.out)
	l.clock.observe(s.arrival, l.pos)
	l.nextTS = s.ts + uint32(len(l.pcm)*c.codec.ClockRate/c.dec.SampleRate())
	l.haveTS = true
}

// place moves the end of the timeline to where a block of n samples of s
// starts: after the RTP clock's gap, written as silence, while that clock
// keeps time with the arrival clock; where the arrival clock puts it
// otherwise (see Sink).
func (l *Leg) place(s *slot, c *legCodec, n int64) {
	if !l.clock.started {
		return // the leg's first audio: the timeline starts here
	}
	arrived := l.clock.at(s.arrival) - n
	if l.haveTS {
		rate := int64(c.codec.ClockRate)
		gap := int64(int32(s.ts - l.nextTS))
		gap = max(gap, 0) // a probe's follower overlapping it by a little
		k := gap * 16000 / rate
		if gap*1000 <= int64(l.opts.MaxGapMs)*rate && arrived-(l.pos+k) <= pausedClockMs*16 {
			l.silence(int(k))
			l.stats.SilenceSamples += k
			return
		}
		// Time went on and the RTP clock did not (a sender that stopped it
		// over a hold): the arrival clock tells how long the gap was.
		l.stats.Discontinuities++
	}
	l.pos = max(l.pos, arrived)
}

var dtmfDigits = [16]byte{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'}

// dtmf reports an event at its first end packet (the end packet is sent
// three times; the event's timestamp tells them apart).
func (l *Leg) dtmf(s *slot) {
	p := s.payload
	if len(p) < 4 || p[0] > 16 {
		l.stats.Malformed++
		return
	}
	if p[0] == 16 { // hook flash (fmtp 0-16): an event, not a digit
		return
	}
	if p[1]&0x80 == 0 || (l.haveDTMF && l.lastDTMF == s.ts) {
		return
	}
	l.lastDTMF, l.haveDTMF = s.ts, true
	l.stats.DTMF++
	if l.opts.OnDTMF == nil {
		return
	}
	rate := int64(8000)
	if l.cur != nil {
		rate = int64(l.cur.codec.ClockRate)
	}
	sameClock := l.opts.DTMFClockRate == 0 || int64(l.opts.DTMFClockRate) == rate
	if l.opts.DTMFClockRate > 0 {
		rate = int64(l.opts.DTMFClockRate)
	}
	dur := int64(uint16(p[2])<<8|uint16(p[3])) * 1000 / rate
	l.opts.OnDTMF(DTMF{Digit: dtmfDigits[p[0]], StartMs: l.dtmfStart(s, sameClock, rate, dur), DurationMs: dur})
}

// dtmfStart places an event of dur ms, reported by its end packet s, on
// the timeline in ms: by its timestamp's offset from the audio's while the
// two clocks agree, as audio is placed; by the end packet's arrival (it
// comes as the key is released) where they do not, or where the event's
// clock is its own and the offset to the audio is not known.
func (l *Leg) dtmfStart(s *slot, sameClock bool, rate, dur int64) int64 {
	if !l.clock.started { // a digit before any audio: the timeline starts with it
		l.clock.observe(s.arrival, dur*16)
	}
	arrived := l.clock.at(s.arrival)/16 - dur
	if l.haveTS && sameClock {
		start := l.pos/16 + int64(int32(s.ts-l.nextTS))*1000/rate
		if start-arrived <= pausedClockMs && arrived-start <= pausedClockMs {
			return max(start, 0)
		}
	}
	return max(arrived, 0)
}
