package gateway

import (
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/word"
)

// Redaction judges a leg's digits as one stream, not one utterance at a
// time: people read a card number in groups, and each pause may end an
// utterance. A final that ends in a digit run the call's policy does not
// redact yet but would if the run went on is held back, unpublished, until
// the run is decided: a later final that does not continue it, a partial
// of a later utterance whose first words do not, holdSilence of decoded
// audio without words after it, holdSilence without audio at all, or the
// call's end. The held finals are then published, in order, with the
// markers the whole run earned. Partials are masked as they come (package
// redact's open tail), with the held words as their context.

// holdSilence is how long a held final waits for its digit run to go on.
// People pause between the groups of a card number for a second or two.
const holdSilence = 4 * time.Second

// holdMargin is decoded audio waited for beyond holdSilence: a word is
// emitted some frames after its audio, and the last step's results may be
// on their way.
const holdMargin = time.Second

// contextWords is how many words of the published finals redaction keeps
// as context (cues like "card number" a few words back).
const contextWords = 30

// heldFinal is a final held back while its digit run may go on.
type heldFinal struct {
	r         asr.Result   // on the call's clock, not redacted
	display   []word.Token // its display tokens (a second pass's), or nil
	pass      string       // its second_pass field
	up        []string     // its words, upper case
	streamEnd int64        // its end on the stream's clock
	kwSeen    []int        // keyword occurrences its partials reported
	at        time.Time    // when it came
	waited    bool         // held past the result that brought it
}

// heldWords appends the held finals' words (upper case) to dst.
func (s *textStage) heldWords(dst []string) []string {
	for _, h := range s.held {
		dst = append(dst, h.up...)
	}
	return dst
}

// holding tells whether finals are held back.
func (s *textStage) holding() bool { return len(s.held) > 0 }

// decide publishes the held finals that are decided: all of them unless
// they end in a digit run that may go on, then those before the run.
func (s *textStage) decide() {
	from, pending := redact.Pending(s.context, s.heldWords(nil), s.policy)
	if !pending {
		s.release(len(s.held))
		return
	}
	n, words := 0, 0
	for n < len(s.held) && words+len(s.held[n].up) <= from {
		words += len(s.held[n].up)
		n++
	}
	s.release(n)
	for i := range s.held {
		s.held[i].waited = true
	}
}

// release publishes the first n held finals, redacted as one stream with
// all the held words after them (spans may cross utterances).
func (s *textStage) release(n int) {
	if n == 0 {
		return
	}
	block := s.heldWords(nil)
	spans := redact.FindAfter(s.context, block, s.policy, false)
	off := 0
	for _, h := range s.held[:n] {
		var own []redact.Span
		for _, sp := range spans {
			from, to := max(sp.From, off), min(sp.To, off+len(h.up))
			if from < to {
				sp.From, sp.To = from-off, to-off
				own = append(own, sp)
			}
		}
		s.publishFinal(h.r, h.display, h.pass, own, h.kwSeen)
		if s.onHold != nil {
			d := time.Duration(0)
			if h.waited {
				d = s.now().Sub(h.at)
			}
			s.onHold(d)
		}
		off += len(h.up)
	}
	s.context = append(s.context, block[:off]...)
	s.context = s.context[max(0, len(s.context)-contextWords):]
	s.held = append(s.held[:0], s.held[n:]...)
}

// flush publishes every held final: the call has ended.
func (s *textStage) flush() { s.release(len(s.held)) }

// sweep releases the held finals once no word followed them for
// holdSilence of decoded audio (decoded: the stream's DecodedMs), or the
// leg has been idle: no audio for holdSilence and all of it decoded.
func (s *textStage) sweep(decoded int64, idle bool) {
	n := len(s.held)
	if n == 0 || len(s.pending) > 0 { // a later final, on its way, decides
		return
	}
	limit := s.held[n-1].streamEnd + holdSilence.Milliseconds()
	quiet := decoded >= limit+holdMargin.Milliseconds() && (s.nextStart < 0 || s.nextStart > limit)
	if quiet || idle {
		s.flush()
	}
}

// idle tells whether the leg had no audio for holdSilence and the
// recognizer has decoded every chunk of what came (the rest, less than a
// chunk, waits for more).
func (l *leg) idle(now time.Time, decoded int64) bool {
	return now.Sub(time.Unix(0, l.lastFed.Load())) >= holdSilence &&
		decoded+int64(10*l.c.g.asr.Info().ChunkFrames) >= l.fedMs.Load()
}

// holdChanged tells the registry when the leg starts or stops holding
// finals back. c.mu held.
func (l *leg) holdChanged() {
	if h := l.text.holding(); h != l.holding {
		l.holding = h
		l.c.g.holding(l, h)
	}
}

// holding adds l to (or removes it from) the legs holding finals back; the
// first starts the sweep. l.c.mu held.
func (g *Calls) holding(l *leg, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !on {
		delete(g.held, l)
		return
	}
	g.held[l] = true
	if !g.sweeping {
		g.sweeping = true
		g.wg.Add(1)
		go g.sweep()
	}
}

// sweepEvery is how often held finals are looked at.
const sweepEvery = 200 * time.Millisecond

// sweep releases held finals whose digit run was left (textStage.sweep)
// until no leg holds any.
func (g *Calls) sweep() {
	defer g.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	var legs []*leg
	for range t.C {
		g.mu.Lock()
		if len(g.held) == 0 {
			g.sweeping = false
			g.mu.Unlock()
			return
		}
		legs = legs[:0]
		for l := range g.held {
			legs = append(legs, l)
		}
		g.mu.Unlock()
		for _, l := range legs {
			decoded := l.stream.DecodedMs()
			l.c.mu.Lock()
			if l.c.state == live || l.c.state == ending {
				l.text.sweep(decoded, l.idle(g.now(), decoded))
				l.holdChanged()
			}
			l.c.mu.Unlock()
		}
	}
}
