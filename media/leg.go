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
	PayloadTypes map[uint8]string
	// DTMFPayloadType is the telephone-event payload type; -1 for none.
	DTMFPayloadType int
	// DTMFClockRate is the telephone-event's clock; 0: the codec's.
	DTMFClockRate int
	// Sink receives the leg's 16 kHz audio as it is decoded. Required.
	Sink Sink
	// ReorderMs is how long a missing packet is waited for before it is
	// declared lost; default 60.
	ReorderMs int
	// MaxGapMs caps the silence written for one timestamp jump (loss, DTX,
	// hold); default 5000. Longer jumps count as discontinuities.
	MaxGapMs int
	// Filter resamples to 16 kHz; default FilterKaldi (what the speech
	// model expects of narrowband audio, see README).
	Filter *Filter
	// OnDTMF receives each RFC 4733 event once, on the packet path; it must
	// not block.
	OnDTMF func(DTMF)
	// SRTP, if set, authenticates and decrypts every packet (RFC 3711);
	// a packet that fails is dropped and counted Unauthenticated.
	SRTP *SRTP
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
	Late            int64 // older than the playout point, or duplicates
	Lost            int64 // declared lost after the reorder window
	Discontinuities int64 // SSRC changes and timestamp jumps over MaxGapMs
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

// Sink receives a leg's 16 kHz audio in timeline order, on the leg's packet
// goroutine. at is the timeline index of samples[0] (16 kHz samples since
// the leg's first audio); each block starts where the previous one ended,
// because gaps (loss, DTX, hold) arrive as silence. WriteAudio must not
// block and must not keep samples after it returns.
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
		o.ReorderMs = 60
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
			l.stats.Discontinuities++
			l.haveTS = false
		}
		l.ssrc, l.haveSSRC = h.SSRC, true
		l.reorder.reset()
	}
	clock := 0 // telephone-events take no part in the jitter
	if c := l.decs[pt]; c != nil {
		clock = c.codec.ClockRate
	}
	l.rx.update(&l.rxPub, h.SSRC, h.SequenceNumber, h.Timestamp, clock, now)
	switch l.reorder.put(h.SequenceNumber, h.Timestamp, pt, l.pkt.Payload) {
	case putLate:
		l.stats.Late++
		return true
	case putFar: // a jump beyond the window: play what is held, then restart
		l.flush()
		l.reorder.reset()
		l.reorder.put(h.SequenceNumber, h.Timestamp, pt, l.pkt.Payload)
	}
	l.drain(false)
	return true
}

// flush plays out everything held, gaps included.
func (l *Leg) flush() { l.drain(true) }

func (l *Leg) drain(all bool) {
	window := uint32(l.opts.ReorderMs * 8) // in 8 kHz clock units; see below
	for {
		s, ok := l.reorder.pop()
		if !ok {
			if !l.reorder.waiting() {
				return
			}
			// The next packet is missing. Wait for it while the newest held
			// packet is less than the reorder window ahead.
			if !all && (!l.haveTS || int32(l.reorder.newestTS-l.nextTS) < int32(l.clockUnits(window))) {
				return
			}
			l.reorder.skip()
			l.stats.Lost++
			continue
		}
		l.play(s)
	}
}

// clockUnits converts 8 kHz units to the current codec's clock.
func (l *Leg) clockUnits(u uint32) uint32 {
	if l.cur != nil {
		return u * uint32(l.cur.codec.ClockRate) / 8000
	}
	return u
}

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
	if c != l.cur {
		if l.cur != nil && c.codec.ClockRate != l.cur.codec.ClockRate {
			l.haveTS = false // another clock: the timestamps do not compare
		}
		l.cur = c
	}
	if l.haveTS {
		if gap := int32(s.ts - l.nextTS); gap > 0 {
			ms := int64(gap) * 1000 / int64(c.codec.ClockRate)
			if ms > int64(l.opts.MaxGapMs) {
				l.stats.Discontinuities++
				ms = int64(l.opts.MaxGapMs)
			}
			l.silence(int(ms * 16))
			l.stats.SilenceSamples += ms * 16
		} else if gap < 0 {
			l.stats.Late++ // overlaps audio already played
			return
		}
	}
	var err error
	l.pcm, err = c.dec.Decode(l.pcm[:0], s.payload)
	if err != nil {
		l.stats.Malformed++
		return
	}
	l.out = c.rs.Process(l.out[:0], l.pcm)
	l.write(l.out)
	l.nextTS = s.ts + uint32(len(l.pcm)*c.codec.ClockRate/c.dec.SampleRate())
	l.haveTS = true
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
	start := l.pos / 16
	if l.haveTS && (l.opts.DTMFClockRate == 0 || int64(l.opts.DTMFClockRate) == rate) {
		start += int64(int32(s.ts-l.nextTS)) * 1000 / rate
	}
	if l.opts.DTMFClockRate > 0 { // its own clock: the offset to the audio is not known
		rate = int64(l.opts.DTMFClockRate)
	}
	dur := int64(uint16(p[2])<<8|uint16(p[3])) * 1000 / rate
	l.opts.OnDTMF(DTMF{Digit: dtmfDigits[p[0]], StartMs: start, DurationMs: dur})
}
