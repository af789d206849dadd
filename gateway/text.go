package gateway

import (
	"strings"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/itn"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/word"
)

// textStage is a leg's text pipeline: each recognition result, on the
// call's clock, is redacted (finals held back while their digits may go
// on, holdback.go), formatted for people (finals) and published with its
// keyword alerts. Whatever makes the results — the streaming recognizer, a
// second pass over finals — and whatever brought the audio, the text goes
// through here. Its methods run under the call's mu.
type textStage struct {
	call, leg string
	policy    redact.Policy
	keywords  []keyword
	emit      func(transcript.Event)
	now       func() time.Time
	onHold    func(time.Duration) // CallsOptions.OnHold, or nil

	// context is the end of the leg's published finals as recognized (upper
	// case, never published): the cues and digits the next ones follow.
	context []string
	held    []heldFinal
	// pending are the words (upper case) of the finals waiting for their
	// second pass, in order: context for the partials meanwhile.
	pending [][]string
	// later is the latest utterance partials brought words of: its index,
	// its first word's stream time and its words (upper case).
	later struct {
		utt   int
		start int64
		words []string
	}
	// nextStart is the stream time of the first word of an utterance after
	// the held ones (-1: none heard yet).
	nextStart int64
	// Keyword occurrences reported in the open utterance.
	kwUtt  int
	kwSeen []int
}

// newTextStage returns the stage of leg of call, publishing through emit.
func newTextStage(call, leg string, p redact.Policy, keywords []keyword, emit func(transcript.Event), now func() time.Time,
	onHold func(time.Duration)) *textStage {
	s := &textStage{call: call, leg: leg, policy: p, keywords: keywords, emit: emit, now: now, onHold: onHold,
		nextStart: -1, kwUtt: -1}
	s.later.utt = -1
	return s
}

// partial publishes a partial, masked with the held finals as context.
// One of a later utterance that does not go on with the held digits
// releases them first. streamEnd is its end on the stream's clock.
func (s *textStage) partial(r asr.Result, streamEnd int64) {
	if len(r.Words) > 0 {
		if r.Utt != s.later.utt {
			s.later.utt, s.later.start = r.Utt, streamEnd-(r.EndMs-r.Words[0].StartMs)
		}
		s.later.words = upper(r.Words)
	}
	if n := len(s.held); n > 0 && len(s.pending) == 0 && r.Utt > s.held[n-1].r.Utt && len(r.Words) > 0 {
		if s.nextStart < 0 {
			s.nextStart = s.later.start
		}
		if len(r.Words) >= 2 && !redact.Continues(s.later.words) {
			s.release(len(s.held))
		}
	}
	u := transcript.Utterance{Leg: s.leg, Utt: r.Utt, Text: r.Text, StartMs: r.StartMs, EndMs: r.EndMs, GapMs: r.GapMs}
	heard := r.Words // what keyword alerts may report now
	if s.policy.On() {
		ctx, up := s.redactContext(), upper(r.Words)
		if from, pending := redact.Pending(ctx, up, s.policy); pending {
			heard = heard[:from] // digits that may go on wait for the final
		}
		if spans := redact.FindAfter(ctx, up, s.policy, true); len(spans) > 0 {
			r.Words, u.Redacted = redact.Apply(r.Words, spans)
			u.Text = word.Join(r.Words)
			heard = nil
		}
	}
	s.emit(transcript.NewPartial(s.call, u))
	if r.Utt != s.kwUtt {
		s.kwUtt, s.kwSeen = r.Utt, nil
	}
	if heard != nil {
		s.kwSeen = s.keywordHits(r.Utt, heard, s.kwSeen)
	}
}

// final publishes a final, or holds it back while its digits may go on.
// display, if not nil, are its display tokens, one per word (a second
// pass's); otherwise they are formatted from the words.
func (s *textStage) final(r asr.Result, display []word.Token, streamEnd int64) {
	s.finalSeen(r, display, "", streamEnd, s.seen(r.Utt))
}

// seen takes the keyword occurrences utt's partials reported, for its
// final.
func (s *textStage) seen(utt int) []int {
	var seen []int
	if s.kwUtt == utt {
		seen, s.kwSeen = s.kwSeen, nil
	}
	return seen
}

// finalSeen is final with the keyword occurrences its partials reported
// and what its second pass did (the final's second_pass field).
func (s *textStage) finalSeen(r asr.Result, display []word.Token, pass string, streamEnd int64, seen []int) {
	if !s.policy.On() {
		s.publishFinal(r, display, pass, nil, seen)
		return
	}
	s.held = append(s.held, heldFinal{r: r, display: display, pass: pass, up: upper(r.Words), streamEnd: streamEnd, kwSeen: seen, at: s.now()})
	s.nextStart = -1
	if l := s.later; l.utt > r.Utt && len(s.pending) == 0 && len(l.words) > 0 {
		// A second pass brought the final after partials of a later
		// utterance: they are what follows it.
		s.nextStart = l.start
		if len(l.words) >= 2 && !redact.Continues(l.words) {
			s.release(len(s.held))
			return
		}
	}
	s.decide()
}

// publishFinal publishes final r redacted by spans (over its words, and
// its display tokens one for one when it has them) and its keyword events
// beyond seen.
func (s *textStage) publishFinal(r asr.Result, display []word.Token, pass string, spans []redact.Span, seen []int) {
	words, kinds := redact.Apply(r.Words, spans)
	u := transcript.Utterance{Leg: s.leg, Utt: r.Utt, Text: r.Text, StartMs: r.StartMs, EndMs: r.EndMs, GapMs: r.GapMs,
		Redacted: kinds, Words: words, Conf: r.Conf, SecondPass: pass}
	if kinds != "" {
		u.Text = word.Join(words)
	}
	if display != nil {
		u.DisplayWords = redactTokens(display, spans)
	} else {
		u.DisplayWords = itn.Format(words)
	}
	u.Display = itn.Text(u.DisplayWords)
	s.emit(transcript.NewFinal(s.call, u))
	s.keywordHits(r.Utt, words, seen)
}

// redactTokens is display tokens, one per word, with each span of words
// replaced by its marker.
func redactTokens(display []word.Token, spans []redact.Span) []word.Token {
	if len(spans) == 0 {
		return display
	}
	as := make([]word.Word, len(display))
	for i, t := range display {
		as[i] = word.Word{Text: t.Text, StartMs: t.StartMs, EndMs: t.EndMs}
	}
	as, _ = redact.Apply(as, spans)
	out := make([]word.Token, len(as))
	for i, w := range as {
		out[i] = word.Token{Text: w.Text, StartMs: w.StartMs, EndMs: w.EndMs, From: i, To: i + 1}
	}
	return out
}

// redactContext is what the next words follow: the published finals' end
// and the held ones.
func (s *textStage) redactContext() []string {
	if len(s.held) == 0 && len(s.pending) == 0 {
		return s.context
	}
	ctx := s.heldWords(append([]string{}, s.context...))
	for _, p := range s.pending {
		ctx = append(ctx, p...)
	}
	return ctx
}

// upper is words' text in upper case, as redaction reads it.
func upper(words []word.Word) []string {
	up := make([]string, len(words))
	for i, w := range words {
		up[i] = strings.ToUpper(w.Text)
	}
	return up
}

// keyword is a phrase whose hearing is an event.
type keyword struct {
	phrase string
	words  []string // upper case
}

// keywordHits publishes a keyword event for each occurrence of a keyword
// in the words of utterance utt beyond seen (per keyword, the occurrences
// reported before: an utterance's partials repeat what they hold) and
// returns the counts.
func (s *textStage) keywordHits(utt int, words []word.Word, seen []int) []int {
	if len(s.keywords) == 0 || len(words) == 0 {
		return seen
	}
	if seen == nil {
		seen = make([]int, len(s.keywords))
	}
	for k, kw := range s.keywords {
		at := asr.PhraseAt(words, kw.words)
		n := len(at)
		for _, i := range at[min(seen[k], n):] {
			hit := transcript.KeywordHit{Leg: s.leg, Utt: utt, Phrase: kw.phrase,
				StartMs: words[i].StartMs, EndMs: words[i+len(kw.words)-1].EndMs}
			var text []string
			for _, w := range words[i : i+len(kw.words)] {
				text = append(text, w.Text)
				hit.Conf += w.Conf
			}
			hit.Text, hit.Conf = strings.Join(text, " "), hit.Conf/float32(len(kw.words))
			s.emit(transcript.NewKeyword(s.call, hit))
		}
		seen[k] = max(seen[k], n)
	}
	return seen
}
