package audiosocket

import (
	"encoding/binary"
	"fmt"

	"github.com/callscribe/callscribe/media"
)

// format is what an audio kind's payload holds.
type format struct {
	name        string // Asterisk's name of the format: call.start's codec
	rate        int
	sampleBytes int
	g711        string // PCMU or PCMA: decoded by media's G.711 tables
}

// codecOf is the format kind 0x10 carries under Config.Kind10's name.
func codecOf(name string) (format, error) {
	switch name {
	case "slin":
		return format{name: "slin", rate: 8000, sampleBytes: 2}, nil
	case "ulaw":
		return format{name: "ulaw", rate: 8000, sampleBytes: 1, g711: "PCMU"}, nil
	case "alaw":
		return format{name: "alaw", rate: 8000, sampleBytes: 1, g711: "PCMA"}, nil
	}
	return format{}, fmt.Errorf("audiosocket: unknown codec %q", name)
}

// formats maps every audio kind to its format under a configuration.
func formats(c *Config) (map[Kind]format, error) {
	k10, err := codecOf(c.Kind10)
	if err != nil {
		return nil, err
	}
	m := map[Kind]format{KindSlin: k10}
	for k := KindSlin12; k <= KindSlin192; k++ {
		m[k] = format{name: fmt.Sprintf("slin%d", k.rate()/1000), rate: k.rate(), sampleBytes: 2}
	}
	if c.Kind11 == "slin16" {
		m[KindSlin12] = m[KindSlin16]
	}
	f := m[KindSlin44] // 44.1 kHz
	f.name = "slin44"
	m[KindSlin44] = f
	return m, nil
}

// nsPerSample is one sample of the 16 kHz timeline.
const nsPerSample = 62_500

// pausedMs is how far the arrival of audio may run ahead of the audio
// received before the timeline follows the arrival: the same bound as an
// RTP leg's (media's pausedClockMs). Over TCP nothing is lost, so the
// audio's own length is the clock (as an RTP timestamp is), exact where
// arrival times wobble; a sender that stopped sending (a hold, a channel
// with nothing to forward) resumes with audio that arrives later than its
// length explains, and past this bound the timeline jumps to where the
// arrival puts it (nothing is written for the gap: the sink bridges it).
const pausedMs = 1000

// leg turns one connection's audio messages into 16 kHz audio on the
// leg's timeline for its sink. Used by the connection's goroutine only.
type leg struct {
	sink    media.Sink
	formats map[Kind]format

	cur      format
	dec      media.Decoder // G.711, when cur is
	rs       *media.Resampler
	segStart int64 // timeline index where the current run of audio began
	segIn    int64 // input samples of the current run
	pos      int64 // timeline index after the last sample written

	started bool
	origin  int64 // unix ns of timeline index 0 on the arrival clock

	in, out []float32
	stats   media.LegStats
}

func newLeg(sink media.Sink, formats map[Kind]format) *leg {
	return &leg{sink: sink, formats: formats}
}

// end16 is the timeline length of n input samples of the current run.
func (l *leg) end16(n int64) int64 {
	r := int64(l.cur.rate)
	return (n*16000 + r - 1) / r
}

// check tells the format of an audio message of kind k, or why it is
// malformed.
func (l *leg) check(k Kind, p []byte) (format, error) {
	f, ok := l.formats[k]
	if !ok {
		return f, fmt.Errorf("%w: %s is not audio", ErrMalformed, k)
	}
	if len(p) == 0 || len(p)%f.sampleBytes != 0 {
		return f, fmt.Errorf("%w: %s audio of %d bytes", ErrMalformed, f.name, len(p))
	}
	return f, nil
}

// audio takes one audio message of kind k that arrived at now (unix ns).
func (l *leg) audio(k Kind, p []byte, now int64) error {
	f, err := l.check(k, p)
	if err != nil {
		l.stats.Malformed++
		return err
	}
	l.stats.Packets++
	l.stats.Bytes += int64(len(p))
	if f != l.cur {
		if err := l.switchTo(f); err != nil {
			return err
		}
	}
	n := int64(len(p) / f.sampleBytes)
	end := l.segStart + l.end16(l.segIn+n)
	arrived := (now - l.origin) / nsPerSample
	switch {
	case !l.started: // a message is sent once its audio was spoken
		l.started, l.origin = true, now-end*nsPerSample
	case arrived-end > pausedMs*16: // the sender paused: follow the arrival
		l.flush()
		l.segStart, l.segIn = arrived-l.end16(n), 0
		l.pos = l.segStart
		l.stats.Discontinuities++
	case arrived < end: // ride the least delayed messages
		l.origin = now - end*nsPerSample
	}
	l.in = l.decode(l.in[:0], p)
	l.segIn += n
	l.out = l.rs.Process(l.out[:0], l.in)
	l.write(l.out)
	return nil
}

// decode appends the payload's samples in [-1, 1].
func (l *leg) decode(dst []float32, p []byte) []float32 {
	if l.dec != nil {
		dst, _ = l.dec.Decode(dst, p) // G.711 takes any byte
		return dst
	}
	for i := 0; i+1 < len(p); i += 2 {
		dst = append(dst, float32(int16(binary.LittleEndian.Uint16(p[i:])))/32768)
	}
	return dst
}

// switchTo starts a run of audio in format f where the previous one ends.
func (l *leg) switchTo(f format) error {
	if l.rs != nil {
		l.flush()
		l.stats.Discontinuities++
	}
	rs, err := media.NewResamplerFilter(f.rate, 16000, media.FilterKaldi)
	if err != nil {
		return err
	}
	l.dec = nil
	if f.g711 != "" {
		c, err := media.LookupCodec(f.g711)
		if err != nil {
			return err
		}
		if l.dec, err = c.NewDecoder(); err != nil {
			return err
		}
	}
	l.cur, l.rs = f, rs
	l.segStart, l.segIn = l.pos, 0
	return nil
}

// flush writes what the resampler holds of the current run (as if
// silence followed).
func (l *leg) flush() {
	if l.rs == nil {
		return
	}
	l.out = l.rs.Flush(l.out[:0])
	l.write(l.out)
}

func (l *leg) write(x []float32) {
	if len(x) == 0 {
		return
	}
	l.sink.WriteAudio(l.pos, x)
	l.pos += int64(len(x))
}

// dtmfAt is where a digit reported now goes on the timeline, in ms: at
// the end of the audio received (Asterisk forwards a digit as the key is
// released, between the frames around it).
func (l *leg) dtmfAt() int64 {
	if l.cur.rate == 0 {
		return l.pos / 16
	}
	return (l.segStart + l.end16(l.segIn)) / 16
}
