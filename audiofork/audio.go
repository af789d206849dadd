package audiofork

import (
	"github.com/callscribe/callscribe/media"
)

// nsPerSample is one 16 kHz sample of a leg's timeline.
const nsPerSample = 62_500

// pausedSamples is how far behind the arrival clock the audio may fall
// before the timeline jumps to where the arrival puts it (1 s, as an RTP
// leg's): a fork paused on the platform's side (uuid_audio_fork pause)
// sends nothing and resumes where the call is then. Below it the audio's
// own count rules: frames that a loaded network delivers in a burst do not
// move the timeline.
const pausedSamples = 16000

// pcm turns a call's L16 frames (little-endian, channels interleaved)
// into each leg's 16 kHz timeline. A WebSocket loses nothing, so the
// audio is contiguous: a leg's timeline index is the count of its samples,
// plus the jumps across the sender's pauses. One goroutine.
type pcm struct {
	rate, ch int
	sinks    []media.Sink
	rs       []*media.Resampler // nil at 16 kHz
	pos      []int64            // each leg's next timeline index
	end      int64              // where the audio ends by the input's count
	started  bool
	origin   int64 // unix nanoseconds of timeline index 0, riding the soonest frames
	in, out  []float32
	stats    []media.LegStats
}

func newPCM(rate, ch int, sinks []media.Sink) (*pcm, error) {
	p := &pcm{rate: rate, ch: ch, sinks: sinks, pos: make([]int64, ch), stats: make([]media.LegStats, ch)}
	if rate != 16000 {
		for range ch {
			rs, err := media.NewResamplerFilter(rate, 16000, media.FilterKaldi)
			if err != nil {
				return nil, err
			}
			p.rs = append(p.rs, rs)
		}
	}
	return p, nil
}

// write decodes one binary frame that arrived at arrival (unix
// nanoseconds) into the legs; a frame that is not whole samples of every
// channel is refused (counted malformed on the first leg).
func (p *pcm) write(frame []byte, arrival int64) error {
	if len(frame)%(2*p.ch) != 0 {
		p.stats[0].Malformed++
		return malformed("a binary frame of %d bytes is not whole 16-bit samples of %d channel(s)", len(frame), p.ch)
	}
	n := len(frame) / (2 * p.ch)
	e := p.end + int64(n)*16000/int64(p.rate)
	if p.started {
		if ahead := (arrival-p.origin)/nsPerSample - e; ahead > pausedSamples {
			for i := range p.pos {
				p.pos[i] += ahead
				p.stats[i].Discontinuities++
			}
			p.end += ahead
			e += ahead
		}
	}
	if !p.started || (arrival-p.origin)/nsPerSample < e {
		p.started, p.origin = true, arrival-e*nsPerSample
	}
	p.end = e
	for c := range p.ch {
		p.in = p.in[:0]
		for i := c * 2; i < len(frame); i += 2 * p.ch {
			p.in = append(p.in, float32(int16(uint16(frame[i])|uint16(frame[i+1])<<8))/32768)
		}
		x := p.in
		if p.rs != nil {
			p.out = p.rs[c].Process(p.out[:0], p.in)
			x = p.out
		}
		st := &p.stats[c]
		st.Packets++
		st.Bytes += int64(len(frame) / p.ch)
		if len(x) > 0 {
			p.sinks[c].WriteAudio(p.pos[c], x)
			p.pos[c] += int64(len(x))
		}
	}
	return nil
}

// atMs is leg i's timeline now, in ms (a digit's start).
func (p *pcm) atMs(i int) int64 { return p.pos[i] / 16 }
