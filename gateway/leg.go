package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/transcript"
)

// leg is one audio stream of a call: a media.Sink feeding its recognition
// stream on the packet goroutine (this file), and the pipeline that turns
// the stream's results into events (text.go).
//
// Times: the stream counts the samples it was given; events count ms since
// the call started. The leg's first audio is placed on the call's clock
// when it arrives, and a jump of the media timeline (a long gap: hold,
// silence suppression, a resynchronised source) is bridged with at most
// bridgeMs of silence, the rest kept as an offset, so a held call costs the
// recognizer nothing while no audio comes and its words stay on the clock.
type leg struct {
	c      *call
	i      int
	name   string
	stream *asr.Stream

	// The packet goroutine's: where the media timeline and the stream stand.
	next     int64 // media timeline index where the last block ended
	started  bool
	anchored bool  // mediaOffMs is set
	fed      int64 // samples given to the stream
	zeros    []float32

	mediaOffMs atomic.Int64 // call ms = media timeline ms + this (set by anchor)
	lastFed    atomic.Int64 // when audio was last given (unix ns), for the hold-back
	fedMs      atomic.Int64 // audio given so far (stream ms), for the hold-back

	mu      sync.Mutex
	clock   []clockMark   // stream time → call time, in stream order
	arrived [256]feedMark // when the audio up to a point was given, a ring
	marks   int

	// With a second pass (leg_pass.go): the audio kept, from stream sample
	// audioBase, and from where it must be (openFrom, -1: the open
	// utterance has no words yet).
	audioMu   sync.Mutex
	audio     []float32
	audioBase int64
	openFrom  atomic.Int64

	// The result side, under c.mu.
	text     *textStage
	holding  bool          // text holds finals back; the registry knows
	pass     []*passFinal  // finals waiting for their second pass, in order
	passIdle chan struct{} // closed when pass empties
	passFrom int64         // stream ms where the last final's audio ended
}

// bridgeMs is the most silence a jump of the media timeline gives the
// stream: longer than the endpoint rules' 1.2 s of trailing silence and a
// chunk, so the utterance before the gap ends before the audio after it.
const bridgeMs = 2000

// clockMark says that from stream sample at on, call sample = stream
// sample + off.
type clockMark struct{ at, off int64 }

// maxClockMarks bounds the marks a leg keeps; results are about the last
// few seconds, so the oldest go.
const maxClockMarks = 64

// feedMark says that the audio up to ms was given at t.
type feedMark struct {
	ms int64
	t  time.Time
}

// WriteAudio gives the leg's audio to its stream: the first block is
// placed on the call's clock, a jump ahead is bridged (bridgeMs of silence
// at most, the rest an offset), an overlap cut. While the call is paused
// the audio is replaced by silence.
func (l *leg) WriteAudio(at int64, x []float32) {
	if !l.c.open.Load() {
		return
	}
	if !l.started {
		l.started, l.next = true, at
		l.anchor(at + int64(len(x)))
		l.mark(0, at+l.mediaOffMs.Load()*16)
	}
	if gap := at - l.next; gap > 0 {
		bridge := min(gap, bridgeMs*16)
		l.silence(bridge)
		if gap > bridge {
			l.mark(l.fed, l.offsetAt(l.fed)+gap-bridge)
		}
	} else if gap < 0 {
		if -gap >= int64(len(x)) {
			return
		}
		x = x[-gap:]
		at -= gap
	}
	if l.c.paused.Load() { // paused: the timeline goes on, in silence
		l.silence(int64(len(x)))
	} else {
		l.accept(x)
	}
	l.next = at + int64(len(x))
	l.fedMs.Store(l.fed / 16)
	l.lastFed.Store(l.c.g.now().UnixNano())
}

// SkipAudio moves the leg's timeline on to at without giving the stream
// anything for the gap: audio lost on the way (an AudioHook client's
// discarded span) is not silence, so speech that goes on across it stays
// one utterance, and the words after it keep their times on the call's
// clock. Before the first audio it does nothing: that audio is placed
// where it belongs. The packet goroutine's, as WriteAudio.
func (l *leg) SkipAudio(at int64) {
	if !l.c.open.Load() || !l.started {
		return
	}
	if gap := at - l.next; gap > 0 {
		l.mark(l.fed, l.offsetAt(l.fed)+gap)
		l.next = at
	}
}

// anchor places the media timeline on the call's clock, once: its sample
// end was heard now (the first audio, or a digit keyed before any). Packet
// goroutine.
func (l *leg) anchor(end int64) {
	if !l.anchored {
		l.anchored = true
		l.mediaOffMs.Store(l.c.sinceStart() - end/16)
	}
}

// mark records that from stream sample at on, call sample = at + off.
func (l *leg) mark(at, off int64) {
	l.mu.Lock()
	if len(l.clock) == maxClockMarks {
		l.clock = append(l.clock[:0], l.clock[1:]...)
	}
	l.clock = append(l.clock, clockMark{at, off})
	l.mu.Unlock()
}

// offsetAt is the call-clock offset of stream sample at.
func (l *leg) offsetAt(at int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offsetLocked(at)
}

func (l *leg) offsetLocked(at int64) int64 {
	for i := len(l.clock) - 1; i >= 0; i-- {
		if l.clock[i].at <= at {
			return l.clock[i].off
		}
	}
	if len(l.clock) > 0 {
		return l.clock[0].off
	}
	return 0
}

// onCall moves a result's times from the stream's to the call's clock.
func (l *leg) onCall(r asr.Result) asr.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := func(t int64) int64 { return t + l.offsetLocked(t*16)/16 }
	r.StartMs, r.EndMs = ms(r.StartMs), ms(r.EndMs)
	if len(r.Words) > 0 {
		words := make([]asr.Word, len(r.Words))
		for i, w := range r.Words {
			w.StartMs, w.EndMs = ms(w.StartMs), ms(w.EndMs)
			words[i] = w
		}
		r.Words = words
	}
	return r
}

// silence gives the stream n samples of silence.
func (l *leg) silence(n int64) {
	if l.zeros == nil {
		l.zeros = make([]float32, 320)
	}
	for n > 0 {
		k := min(n, int64(len(l.zeros)))
		l.accept(l.zeros[:k])
		n -= k
	}
}

func (l *leg) accept(x []float32) {
	l.stream.Accept(x)
	if l.c.g.opts.SecondPass != nil {
		l.keepAudio(x)
	}
	l.fed += int64(len(x))
	if l.c.g.opts.OnLatency == nil {
		return
	}
	l.mu.Lock()
	l.arrived[l.marks%len(l.arrived)] = feedMark{l.fed / 16, time.Now()}
	l.marks++
	l.mu.Unlock()
}

// arrivedAt is when the audio at ms (stream time) was given to the
// recognizer.
func (l *leg) arrivedAt(ms int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best feedMark
	found := false
	for i := 1; i <= min(l.marks, len(l.arrived)); i++ {
		m := l.arrived[(l.marks-i)%len(l.arrived)]
		if m.ms < ms {
			break
		}
		best, found = m, true
	}
	return best.t, found
}

// result takes a recognition result of the leg's stream: on the call's
// clock, to the text stage, unless call.end is out.
func (l *leg) result(r asr.Result) {
	c := l.c
	if f := c.g.opts.OnLatency; f != nil && r.Text != "" && (r.Kind == asr.Partial || r.Kind == asr.Final) {
		if t, ok := l.arrivedAt(r.EndMs); ok {
			f(r.Kind, time.Since(t))
		}
	}
	streamStart, streamEnd, endpoint, firstWord := r.StartMs, r.EndMs, r.EndpointMs, int64(-1)
	if len(r.Words) > 0 {
		firstWord = r.Words[0].StartMs
	}
	r = l.onCall(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == ended || c.state == admitted {
		c.g.mu.Lock()
		c.g.stats.LateResults++
		c.g.mu.Unlock()
		return
	}
	switch r.Kind {
	case asr.SpeechStart, asr.SpeechEnd:
		c.g.pub.Publish(transcript.NewSpeech(c.id, l.name, r.Kind == asr.SpeechStart, r.StartMs))
	case asr.Partial:
		l.text.partial(r, streamEnd)
		if c.g.opts.SecondPass != nil {
			l.opened(firstWord)
		}
	case asr.Final:
		if c.g.opts.SecondPass != nil {
			l.passFinal(r, streamStart, streamEnd, endpoint)
		} else {
			l.text.final(r, nil, streamEnd)
		}
	}
	l.holdChanged() // a final may be held, a partial release the held
}
