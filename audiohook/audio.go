package audiohook

import (
	"fmt"
	"time"

	"github.com/callscribe/callscribe/media"
)

// channel is one channel of the session's audio on its way into a leg:
// decoded, resampled to 16 kHz and placed on the leg's timeline. Used by
// the session's reading goroutine only, but for firstMs (under the
// session's lock).
type channel struct {
	sink    media.Sink
	dec     media.Decoder // PCMU; nil for L16
	rs      *media.Resampler
	raw     []byte
	pcm     []float32
	out     []float32
	at      int64 // 16 kHz timeline index of the next sample written
	started bool
	// firstMs estimates the call-clock ms of the timeline's sample 0 as
	// the gateway places it (the leg's first block, heard when written).
	firstMs int64
}

// audio is the session's media: its format, its channels, where the
// stream's position stands and how it maps onto the legs' timelines.
type audio struct {
	format   string // PCMU or L16
	width    int    // bytes per sample of one channel
	chans    []*channel
	pos      int64 // the stream position: 8 kHz samples sent or discarded
	timeline timeline
}

func newAudio(m Media, sinks []media.Sink) (*audio, error) {
	a := &audio{format: m.Format, width: 1}
	if m.Format == "L16" {
		a.width = 2
	}
	for _, s := range sinks {
		rs, err := media.NewResamplerFilter(8000, 16000, media.FilterKaldi)
		if err != nil {
			return nil, err
		}
		c := &channel{sink: s, rs: rs}
		if m.Format == "PCMU" {
			codec, err := media.LookupCodec("PCMU")
			if err != nil {
				return nil, err
			}
			if c.dec, err = codec.NewDecoder(); err != nil {
				return nil, err
			}
		}
		a.chans = append(a.chans, c)
	}
	return a, nil
}

// frame takes one binary message: the channels' samples interleaved.
// start is when the call started (call.start), now when the frame came.
func (a *audio) frame(b []byte, start, now time.Time) error {
	step := a.width * len(a.chans)
	if len(b) == 0 || len(b)%step != 0 {
		return fmt.Errorf("%w: audio frame of %d bytes: want a multiple of %d (%s, %d channels)",
			ErrBadMessage, len(b), step, a.format, len(a.chans))
	}
	n := len(b) / step
	for ci, c := range a.chans {
		c.raw = c.raw[:0]
		for i := 0; i < n; i++ {
			o := i*step + ci*a.width
			c.raw = append(c.raw, b[o:o+a.width]...)
		}
		c.pcm = c.decode(c.pcm[:0])
		c.out = c.rs.Process(c.out[:0], c.pcm)
		c.write(c.out, start, now)
	}
	a.pos += int64(n)
	return nil
}

// decode turns the channel's raw samples into PCM.
func (c *channel) decode(dst []float32) []float32 {
	if c.dec != nil {
		dst, _ = c.dec.Decode(dst, c.raw) // G.711 never fails
		return dst
	}
	for i := 0; i+1 < len(c.raw); i += 2 { // L16, little-endian as the client's platform writes it
		dst = append(dst, float32(int16(uint16(c.raw[i])|uint16(c.raw[i+1])<<8))/32768)
	}
	return dst
}

// write hands 16 kHz samples to the leg at the end of its timeline.
func (c *channel) write(x []float32, start, now time.Time) {
	if len(x) == 0 {
		return
	}
	if !c.started {
		// The gateway places the leg's first block so that it ends now.
		c.started = true
		c.firstMs = now.Sub(start).Milliseconds() - (c.at+int64(len(x)))/16
	}
	c.sink.WriteAudio(c.at, x)
	c.at += int64(len(x))
}

// gap moves every channel's timeline ahead by d (audio the client
// discarded, or the time a pause took): what the resampler holds is
// written first, then the timeline jumps; the gateway bridges the jump.
// The stream position moves by advance (8 kHz samples).
func (a *audio) gap(d time.Duration, advance int64, start, now time.Time) {
	for _, c := range a.chans {
		c.out = c.rs.Flush(c.out[:0])
		c.write(c.out, start, now)
		c.rs.Reset()
		c.at += int64(d / (time.Second / 16000))
	}
	a.pos += advance
	if len(a.chans) > 0 {
		a.timeline.mark(a.pos, a.chans[0].at)
	}
}

// skipper is a sink that can move its timeline past audio that was lost
// without hearing it as silence (the gateway's legs).
type skipper interface {
	SkipAudio(at int64)
}

// skip moves every channel's timeline, and the stream's position, ahead by
// advance (8 kHz samples) of audio the client discarded: what the
// resampler holds is written first; a sink that can skip is told that the
// span was lost, not silent (speech going on across it stays one
// utterance), others bridge the jump at the next frame.
func (a *audio) skip(advance int64, start, now time.Time) {
	for _, c := range a.chans {
		c.out = c.rs.Flush(c.out[:0])
		c.write(c.out, start, now)
		c.rs.Reset()
		c.at += advance * 2
		if s, ok := c.sink.(skipper); ok {
			s.SkipAudio(c.at)
		}
	}
	a.pos += advance
	if len(a.chans) > 0 {
		a.timeline.mark(a.pos, a.chans[0].at)
	}
}

// timeline maps the stream's positions (8 kHz) onto the legs' timelines
// (16 kHz), which every channel shares: a mark at each jump. Before the
// first mark kept, base holds: the start (position 0 at sample 0), or the
// last mark dropped.
type timeline struct {
	marks []posMark
	base  posMark
}

type posMark struct{ pos, at int64 }

// maxMarks bounds the marks kept; a session with more jumps than this maps
// its oldest times by the last mark dropped.
const maxMarks = 256

func (t *timeline) mark(pos, at int64) {
	if len(t.marks) == maxMarks {
		t.base = t.marks[0]
		t.marks = append(t.marks[:0], t.marks[1:]...)
	}
	t.marks = append(t.marks, posMark{pos, at})
}

// position is the stream position (8 kHz samples) of timeline sample at.
// A time inside a jump of the timeline (a pause: no audio was there) is
// at the position where the stream went on after it.
func (t *timeline) position(at int64) int64 {
	m, next := t.base, int64(-1)
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].at <= at {
			m = t.marks[i]
			break
		}
		next = t.marks[i].pos
	}
	p := m.pos + (at-m.at)/2
	if next >= 0 {
		p = min(p, next)
	}
	return max(p, 0)
}

// at is the timeline sample of stream position pos.
func (t *timeline) at(pos int64) int64 {
	m := t.base
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].pos <= pos {
			m = t.marks[i]
			break
		}
	}
	return m.at + (pos-m.pos)*2
}
