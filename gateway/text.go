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
	return &textStage{call: call, leg: leg, policy: p, keywords: keywords, emit: emit, now: now, onHold: onHold,
		nextStart: -1, kwUtt: -1}
}

// partial publishes a partial, masked with the held finals as context.
// One of a later utterance that does not go on with the held digits
// releases them first. streamEnd is its end on the stream's clock.
func (s *textStage) partial(r asr.Result, streamEnd int64) {
	if n := len(s.held); n > 0 && r.Utt > s.held[n-1].r.Utt && len(r.Words) > 0 {
		if s.nextStart < 0 {
			s.nextStart = streamEnd - (r.EndMs - r.Words[0].StartMs)
		}
		if len(r.Words) >= 2 && !redact.Continues(upper(r.Words)) {
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
func (s *textStage) final(r asr.Result, streamEnd int64) {
	var seen []int
	if s.kwUtt == r.Utt {
		seen, s.kwSeen = s.kwSeen, nil
	}
	if !s.policy.On() {
		s.publishFinal(r, nil, "", seen)
		return
	}
	s.held = append(s.held, heldFinal{r: r, up: upper(r.Words), streamEnd: streamEnd, kwSeen: seen, at: s.now()})
	s.nextStart = -1
	s.decide()
}

// publishFinal publishes final r with words (its words redacted; nil: as
// recognized) and its keyword events beyond seen.
func (s *textStage) publishFinal(r asr.Result, words []word.Word, kinds string, seen []int) {
	if words == nil {
		words = r.Words
	}
	u := transcript.Utterance{Leg: s.leg, Utt: r.Utt, Text: r.Text, StartMs: r.StartMs, EndMs: r.EndMs, GapMs: r.GapMs,
		Redacted: kinds, Words: words, Conf: r.Conf}
	if kinds != "" {
		u.Text = word.Join(words)
	}
	u.DisplayWords = itn.Format(words)
	u.Display = itn.Text(u.DisplayWords)
	s.emit(transcript.NewFinal(s.call, u))
	s.keywordHits(r.Utt, words, seen)
}

// redactContext is what the next words follow: the published finals' end
// and the held ones.
func (s *textStage) redactContext() []string {
	if len(s.held) == 0 {
		return s.context
	}
	return s.heldWords(append([]string{}, s.context...))
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
