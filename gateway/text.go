package gateway

import (
	"strings"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/itn"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript"
)

// The leg's text pipeline: a result of the recognizer, on the call's
// clock, is redacted, formatted (finals) and published with its keyword
// events.
//
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

// text is a leg's result-side state, under the call's mu.
type text struct {
	// context is the end of the leg's published finals as recognized (upper
	// case, never published): the cues and digits the next ones follow.
	context []string
	held    []heldFinal
	// nextStart is the stream time of the first word of an utterance after
	// the held ones (-1: none heard yet).
	nextStart int64
	// Keyword occurrences reported in the open utterance.
	kwUtt  int
	kwSeen []int
}

// heldFinal is a final held back while its digit run may go on.
type heldFinal struct {
	r         asr.Result // on the call's clock, not redacted
	up        []string   // its words, upper case
	streamEnd int64      // its end on the stream's clock
	kwSeen    []int      // keyword occurrences its partials reported
	at        time.Time  // when it came
	waited    bool       // held past the result that brought it
}

// contextWords is how many words of the published finals redaction keeps
// as context (cues like "card number" a few words back).
const contextWords = 30

// result publishes a recognition result, unless call.end is out.
func (l *leg) result(r asr.Result) {
	c := l.c
	if f := c.g.opts.OnLatency; f != nil && r.Text != "" && (r.Kind == asr.Partial || r.Kind == asr.Final) {
		if t, ok := l.arrivedAt(r.EndMs); ok {
			f(r.Kind, time.Since(t))
		}
	}
	streamEnd := r.EndMs
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
		l.partial(r, streamEnd)
	case asr.Final:
		l.final(r, streamEnd)
	}
}

// partial publishes a partial, masked with the held finals as context.
// One of a later utterance that does not go on with the held digits
// releases them first.
func (l *leg) partial(r asr.Result, streamEnd int64) {
	c := l.c
	if n := len(l.held); n > 0 && r.Utt > l.held[n-1].r.Utt && len(r.Words) > 0 {
		if l.nextStart < 0 {
			l.nextStart = streamEnd - (r.EndMs - r.Words[0].StartMs)
		}
		if len(r.Words) >= 2 && !redact.Continues(upper(r.Words)) {
			l.release(len(l.held))
		}
	}
	u := transcript.Utterance{Leg: l.name, Utt: r.Utt, Text: r.Text, StartMs: r.StartMs, EndMs: r.EndMs, GapMs: r.GapMs}
	heard := r.Words // what keyword alerts may report now
	if c.redact.On() {
		ctx, up := l.redactContext(), upper(r.Words)
		if from, pending := redact.Pending(ctx, up, c.redact); pending {
			heard = heard[:from] // digits that may go on wait for the final
		}
		if spans := redact.FindAfter(ctx, up, c.redact, true); len(spans) > 0 {
			r.Words, u.Redacted = redactWords(r.Words, spans)
			u.Text = joinWords(r.Words)
			heard = nil
		}
	}
	c.g.pub.Publish(transcript.NewPartial(c.id, u))
	if r.Utt != l.kwUtt {
		l.kwUtt, l.kwSeen = r.Utt, nil
	}
	if heard != nil {
		l.kwSeen = l.keywordHits(r.Utt, heard, l.kwSeen)
	}
}

// final publishes a final, or holds it back while its digits may go on.
func (l *leg) final(r asr.Result, streamEnd int64) {
	var seen []int
	if l.kwUtt == r.Utt {
		seen, l.kwSeen = l.kwSeen, nil
	}
	if !l.c.redact.On() {
		l.publishFinal(r, nil, "", seen)
		return
	}
	l.held = append(l.held, heldFinal{r: r, up: upper(r.Words), streamEnd: streamEnd, kwSeen: seen, at: l.c.g.now()})
	l.nextStart = -1
	l.decide()
}

// decide publishes the held finals that are decided: all of them unless
// they end in a digit run that may go on, then those before the run.
func (l *leg) decide() {
	var block []string
	for _, h := range l.held {
		block = append(block, h.up...)
	}
	from, pending := redact.Pending(l.context, block, l.c.redact)
	if !pending {
		l.release(len(l.held))
		return
	}
	n, words := 0, 0
	for n < len(l.held) && words+len(l.held[n].up) <= from {
		words += len(l.held[n].up)
		n++
	}
	l.release(n)
	for i := range l.held {
		l.held[i].waited = true
	}
	if len(l.held) > 0 {
		l.c.g.holding(l, true)
	}
}

// release publishes the first n held finals, redacted as one stream with
// all the held words after them (spans may cross utterances).
func (l *leg) release(n int) {
	if n == 0 {
		return
	}
	var block []string
	for _, h := range l.held {
		block = append(block, h.up...)
	}
	spans := redact.FindAfter(l.context, block, l.c.redact, false)
	off := 0
	for _, h := range l.held[:n] {
		var own []redact.Span
		for _, sp := range spans {
			from, to := max(sp.From, off), min(sp.To, off+len(h.up))
			if from < to {
				sp.From, sp.To = from-off, to-off
				own = append(own, sp)
			}
		}
		words, kinds := h.r.Words, ""
		if len(own) > 0 {
			words, kinds = redactWords(words, own)
		}
		l.publishFinal(h.r, words, kinds, h.kwSeen)
		if f := l.c.g.opts.OnHold; f != nil {
			d := time.Duration(0)
			if h.waited {
				d = l.c.g.now().Sub(h.at)
			}
			f(d)
		}
		off += len(h.up)
	}
	l.context = append(l.context, block[:off]...)
	l.context = l.context[max(0, len(l.context)-contextWords):]
	l.held = append(l.held[:0], l.held[n:]...)
	if len(l.held) == 0 {
		l.c.g.holding(l, false)
	}
}

// releaseAll publishes every held final: the call has ended, or the run
// was left long enough.
func (l *leg) releaseAll() { l.release(len(l.held)) }

// sweep releases the held finals once no word followed them for
// holdSilence of decoded audio, or no audio came for holdSilence.
// decoded is the stream's DecodedMs. c.mu held.
func (l *leg) sweep(now time.Time, decoded int64) {
	n := len(l.held)
	if n == 0 {
		return
	}
	limit := l.held[n-1].streamEnd + holdSilence.Milliseconds()
	quiet := decoded >= limit+holdMargin.Milliseconds() && (l.nextStart < 0 || l.nextStart > limit)
	// No audio (hold, a sender that stopped) and every chunk of what came
	// decoded: the rest, less than a chunk, waits for more.
	idle := now.Sub(time.Unix(0, l.lastFed.Load())) >= holdSilence &&
		decoded+int64(10*l.c.g.asr.Info().ChunkFrames) >= l.fedMs.Load()
	if quiet || idle {
		l.releaseAll()
	}
}

// redactContext is what the next words follow: the published finals' end
// and the held ones.
func (l *leg) redactContext() []string {
	if len(l.held) == 0 {
		return l.context
	}
	ctx := append([]string{}, l.context...)
	for _, h := range l.held {
		ctx = append(ctx, h.up...)
	}
	return ctx
}

// publishFinal publishes final r with words (its words redacted; nil: as
// recognized) and its keyword events beyond seen.
func (l *leg) publishFinal(r asr.Result, words []asr.Word, kinds string, seen []int) {
	c := l.c
	if words == nil {
		words = r.Words
	}
	u := transcript.Utterance{Leg: l.name, Utt: r.Utt, Text: r.Text, StartMs: r.StartMs, EndMs: r.EndMs, GapMs: r.GapMs,
		Redacted: kinds, Words: words, Conf: r.Conf}
	if kinds != "" {
		u.Text = joinWords(words)
	}
	u.Display, u.DisplayWords = display(words)
	c.g.pub.Publish(transcript.NewFinal(c.id, u))
	l.keywordHits(r.Utt, words, seen)
}

// upper is words' text in upper case, as redaction reads it.
func upper(words []asr.Word) []string {
	up := make([]string, len(words))
	for i, w := range words {
		up[i] = strings.ToUpper(w.Text)
	}
	return up
}

// redactWords replaces the spans of words with their markers; it returns
// the words and the kinds redacted.
func redactWords(words []asr.Word, spans []redact.Span) ([]asr.Word, string) {
	in := make([]redact.Word, len(words))
	for i, w := range words {
		in[i] = redact.Word{Text: w.Text, StartMs: w.StartMs, EndMs: w.EndMs, Conf: w.Conf}
	}
	red, kinds := redact.Apply(in, spans)
	out := make([]asr.Word, len(red))
	for i, w := range red {
		out[i] = asr.Word{Text: w.Text, StartMs: w.StartMs, EndMs: w.EndMs, Conf: w.Conf}
	}
	return out, kinds
}

func joinWords(words []asr.Word) string {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = w.Text
	}
	return strings.Join(parts, " ")
}

// displayWord is a formatted token of a final's display text.
type displayWord struct {
	Word    string `json:"word"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"`
}

// display formats a final's words for people (package itn).
func display(words []asr.Word) (string, []displayWord) {
	in := make([]itn.Word, len(words))
	for i, w := range words {
		in[i] = itn.Word{Text: w.Text, StartMs: w.StartMs, EndMs: w.EndMs}
	}
	toks := itn.Format(in)
	out := make([]displayWord, len(toks))
	for i, t := range toks {
		out[i] = displayWord{Word: t.Text, StartMs: t.StartMs, EndMs: t.EndMs}
	}
	return itn.Text(toks), out
}

// keyword is a phrase whose hearing is an event.
type keyword struct {
	phrase string
	words  []string // upper case
}

// keywordHits publishes a keyword event for each occurrence of a keyword
// in the words of utterance utt beyond seen (per keyword, the occurrences
// reported before: an utterance's partials repeat what they hold) and
// returns the counts. c.mu held.
func (l *leg) keywordHits(utt int, words []asr.Word, seen []int) []int {
	c := l.c
	if len(c.keywords) == 0 || len(words) == 0 {
		return seen
	}
	if seen == nil {
		seen = make([]int, len(c.keywords))
	}
	for k, kw := range c.keywords {
		at := asr.PhraseAt(words, kw.words)
		n := len(at)
		for _, i := range at[min(seen[k], n):] {
			hit := transcript.KeywordHit{Leg: l.name, Utt: utt, Phrase: kw.phrase,
				StartMs: words[i].StartMs, EndMs: words[i+len(kw.words)-1].EndMs}
			var text []string
			for _, w := range words[i : i+len(kw.words)] {
				text = append(text, w.Text)
				hit.Conf += w.Conf
			}
			hit.Text, hit.Conf = strings.Join(text, " "), hit.Conf/float32(len(kw.words))
			c.g.pub.Publish(transcript.NewKeyword(c.id, hit))
		}
		seen[k] = max(seen[k], n)
	}
	return seen
}
