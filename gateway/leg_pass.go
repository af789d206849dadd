package gateway

import (
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/word"
)

// A leg with a second pass keeps its recent audio, as given to its stream,
// so that each final's can be recognized again (secondpass.go), and
// publishes its finals in order as their second passes come back.

// passIdleKeep is the audio a leg keeps while no utterance is open: a word
// begins some time before the first partial that holds it.
const passIdleKeep = 3 * time.Second

// passMaxKeep bounds the audio a leg keeps: an utterance ends by 20 s
// (endpoint rule 3), plus the margins.
const passMaxKeep = 30 * time.Second

// passFinal is a final waiting for its second pass.
type passFinal struct {
	r         asr.Result // the first pass's, on the call's clock, then the second's
	streamEnd int64
	seen      []int // keyword occurrences its partials reported
	done      bool
	display   []word.Token // the second pass's, one per word
	note      string       // the final's second_pass field
	job       *passJob     // its job in the stage while it waits
}

// keepAudio keeps the audio just given to the stream (packet goroutine).
func (l *leg) keepAudio(x []float32) {
	l.audioMu.Lock()
	defer l.audioMu.Unlock()
	l.audio = append(l.audio, x...)
	end := l.audioBase + int64(len(l.audio))
	from := l.openFrom.Load()
	if from < 0 {
		from = l.stream.DecodedMs()*16 - passIdleKeep.Milliseconds()*16
	}
	from = max(from, end-passMaxKeep.Milliseconds()*16)
	if cut := from - l.audioBase; cut >= 16000 { // a second at a time
		rest := l.audio[cut:]
		if cap(l.audio) > 2*len(rest)+5*16000 { // a long utterance's room goes back
			l.audio = append(make([]float32, 0, 2*len(rest)+16000), rest...)
		} else {
			l.audio = l.audio[:copy(l.audio, rest)]
		}
		l.audioBase = from
	}
}

// audioSpan is a copy of the kept audio from stream ms lo to hi.
func (l *leg) audioSpan(lo, hi int64) []float32 {
	l.audioMu.Lock()
	defer l.audioMu.Unlock()
	a := min(max(lo*16-l.audioBase, 0), int64(len(l.audio)))
	b := min(max(hi*16-l.audioBase, a), int64(len(l.audio)))
	return append([]float32(nil), l.audio[a:b]...)
}

// opened notes where the open utterance's words begin (stream ms), so its
// audio is kept (-1: no words yet). c.mu held.
func (l *leg) opened(firstWordMs int64) {
	if firstWordMs >= 0 && l.openFrom.Load() < 0 {
		l.openFrom.Store(max(firstWordMs-passMargin.Milliseconds(), l.passFrom) * 16)
	}
}

// passFinal takes a final (times on the call's clock; streamStart and
// streamEnd its words' span on the stream's, endpoint where its utterance
// ended): it asks for its second pass, or, without one, queues it done
// behind those waiting. c.mu held.
func (l *leg) passFinal(r asr.Result, streamStart, streamEnd, endpoint int64) {
	p := l.c.g.opts.SecondPass
	f := &passFinal{r: r, streamEnd: streamEnd, seen: l.text.seen(r.Utt)}
	l.openFrom.Store(-1)
	lo, hi := PassSpan(streamStart, streamEnd, endpoint, l.passFrom)
	l.passFrom = hi
	if PassSkipped(r) {
		f.done, f.note = true, "skipped" // nothing was said: nothing to hear again
	}
	l.pass = append(l.pass, f)
	l.text.pending = append(l.text.pending, upper(r.Words))
	if f.done {
		l.drainPass()
		return
	}
	if l.passIdle == nil {
		l.passIdle = make(chan struct{})
	}
	audio := l.audioSpan(lo, hi)
	// (f.job is set below, before c.mu is released: the result, which
	// takes c.mu, cannot come first.)
	c := l.c
	var reason string
	f.job, reason = p.ask(audio, len(r.Words), func(words []moonshine.Word, reason string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.done {
			return // fell back at the call's end
		}
		f.done, f.note = true, "fallback:"+reason
		if reason == "" {
			f.r, f.display = HeardAgain(f.r, words)
			f.note = p.Name()
		}
		l.drainPass()
		l.holdChanged()
	})
	if reason != "" { // not queued: the first pass's, now
		f.done, f.note = true, "fallback:"+reason
		l.drainPass()
	}
}

// drainPass hands the finals whose second pass is done to the text stage,
// in order. c.mu held.
func (l *leg) drainPass() {
	for len(l.pass) > 0 && l.pass[0].done {
		f := l.pass[0]
		l.pass = l.pass[1:]
		l.text.pending = l.text.pending[1:]
		l.text.finalSeen(f.r, f.display, f.note, f.streamEnd, f.seen)
	}
	if len(l.pass) == 0 && l.passIdle != nil {
		close(l.passIdle)
		l.passIdle = nil
	}
}

// passDone is closed when no final of the leg waits for its second pass
// any more; nil: none waits. c.mu held.
func (l *leg) passDone() <-chan struct{} { return l.passIdle }

// passGiveUp publishes the finals still waiting from the first pass: the
// call is ending and their time is up. c.mu held.
func (l *leg) passGiveUp() {
	for _, f := range l.pass {
		if !f.done {
			f.done, f.note = true, "fallback:"+FallbackTimeout
			l.c.g.opts.SecondPass.abandon(f.job)
		}
	}
	l.drainPass()
}
