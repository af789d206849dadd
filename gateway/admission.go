package gateway

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/redact"
)

// Admission: a call is checked against the limits and the recognizer's
// capacity and its slot reserved in one step under Calls.mu, before any
// answer goes out; its legs get their recognition streams and text stages.

// Limits are the admission limits of CallsOptions, which a configuration
// reload may change (SetLimits).
type Limits struct {
	MaxCalls, MaxPerPeer map[string]int
	MaxStreams           int
	MaxLag               time.Duration
}

// SetLimits replaces the admission limits (a configuration reload): they
// apply from the next admission on; calls admitted stay. MaxLag 0 takes
// the default. Any goroutine.
func (g *Calls) SetLimits(l Limits) {
	if l.MaxLag == 0 {
		l.MaxLag = DefaultMaxLag
	}
	g.limits.Store(&l)
}

// configured is the hotwords, keywords and redaction every call gets.
type configured struct {
	hotwords, keywords []asr.Phrase
	score              float32
	redact             redact.Policy
}

// SetConfigured replaces the configured hotwords, keywords, their default
// score and the redaction (a configuration reload): calls admitted from
// now on get them, calls in progress keep theirs. Any goroutine.
func (g *Calls) SetConfigured(hotwords, keywords []asr.Phrase, score float32, policy redact.Policy) {
	if score <= 0 {
		score = asr.DefaultHotwordsScore
	}
	g.configured.Store(&configured{hotwords: hotwords, keywords: keywords, score: score, redact: policy})
}

// DefaultMaxLag is CallsOptions.MaxLag's default.
const DefaultMaxLag = 500 * time.Millisecond

// Full tells whether a one-leg call of source would be refused now, and
// why: what a load balancer's health check asks.
func (g *Calls) Full(source string) *ingest.Refusal {
	lagging := g.lagging()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusal(source, netip.Addr{}, 1, lagging)
}

// MaxStreams is the bound on streams admission applies now; 0: none.
func (g *Calls) MaxStreams() int {
	switch n := g.limits.Load().MaxStreams; {
	case n > 0:
		return n
	case n < 0:
		return 0
	}
	return g.capacity()
}

// capacity is the streams served in real time: the recognizer's measured
// capacity at the current mix of talking and silent streams, less what the
// second pass takes. A stream costs its first pass f1 = its cost per chunk
// / chunk period and the second pass's cost per second of audio f2 times
// the share of chunks encoded (talk), on the same cores, so the cores serve
// capacity × f1 / (f1 + f2) streams; and no more than the second pass's
// own recognizers serve (each on a core: capacity × f1 / workers per core,
// over f2).
func (g *Calls) capacity() int {
	c := g.asr.Capacity()
	p := g.opts.SecondPass
	if p == nil || c == 0 {
		return c
	}
	f1 := g.asr.StreamCost().Seconds() / g.asr.ChunkPeriod().Seconds()
	f2 := p.Cost().Seconds() * g.asr.Talking()
	if f2 <= 0 {
		return c
	}
	all := float64(c) * f1 / (f1 + f2)
	own := float64(c) * f1 / float64(g.asr.Workers()) * float64(p.Workers()) / f2
	return max(1, int(min(all, own))) // 0 would mean no bound
}

// Streams is the number of recognition streams the calls holding a slot
// take.
func (g *Calls) Streams() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.streams
}

// Saturated tells whether the recognizer is full: its lag is over budget,
// or the calls take every stream it serves in real time.
func (g *Calls) Saturated() bool {
	if g.lagging() {
		return true
	}
	n := g.MaxStreams()
	return n > 0 && g.Streams() >= n
}

// lagging tells whether the recognizer is behind by more than MaxLag.
func (g *Calls) lagging() bool {
	l := g.limits.Load().MaxLag
	return l > 0 && g.asr.Lag() > l
}

// refusal is why a call of source from peer with legs legs cannot be
// admitted now. g.mu held.
func (g *Calls) refusal(source string, peer netip.Addr, legs int, lagging bool) *ingest.Refusal {
	if g.draining {
		return ingest.ErrDraining
	}
	if lagging {
		return ingest.ErrCapacity
	}
	if n := g.MaxStreams(); n > 0 && g.streams+legs > n {
		return ingest.ErrCapacity
	}
	l := g.limits.Load()
	if n := l.MaxCalls[source]; n > 0 && g.bySource[source] >= n {
		return ingest.ErrLimit
	}
	if n := l.MaxPerPeer[source]; n > 0 && peer.IsValid() && g.byPeer[peerKey{source, peer}] >= n {
		return ingest.ErrLimit
	}
	return nil
}

// Refused counts a call a source refused.
func (g *Calls) Refused(source string, r *ingest.Refusal) {
	g.mu.Lock()
	g.stats.Rejected[source+"/"+r.Reason]++
	g.mu.Unlock()
}

// Admit reserves a slot for a call: the check and the reservation are one
// step under one lock, so a burst cannot overshoot a limit, and a second
// call with a live call's id is refused.
func (g *Calls) Admit(o ingest.Offer) (ingest.Ticket, error) {
	if len(o.Legs) == 0 {
		r := &ingest.Refusal{Reason: "bad_request", SIP: 488, HTTP: 400, Detail: "no audio stream"}
		g.Refused(o.Source, r)
		return nil, r
	}
	conf := g.configured.Load()
	so, keywords, err := g.phrases(o, conf)
	var policy redact.Policy
	if err == nil {
		policy, err = redact.Parse(o.Redact)
	}
	if err != nil {
		r := &ingest.Refusal{Reason: "bad_request", SIP: 400, HTTP: 400, Detail: err.Error()}
		g.Refused(o.Source, r)
		return nil, r
	}
	c := &call{g: g, id: o.ID, source: o.Source, peer: o.Peer.Unmap(), done: make(chan struct{}), keywords: keywords,
		redact: conf.redact.Merge(policy)}
	lagging := g.lagging() // outside g.mu: it walks the recognizer's streams
	g.mu.Lock()
	r := g.refusal(o.Source, c.peer, len(o.Legs), lagging)
	if _, dup := g.calls[o.ID]; dup {
		r = ingest.ErrDuplicate
	}
	if r != nil {
		g.stats.Rejected[o.Source+"/"+r.Reason]++
		g.mu.Unlock()
		return nil, r
	}
	g.calls[o.ID] = c
	g.streams += len(o.Legs)
	c.reserved = len(o.Legs)
	g.bySource[o.Source]++
	if c.peer.IsValid() {
		g.byPeer[peerKey{o.Source, c.peer}]++
	}
	g.mu.Unlock()
	for i, name := range o.Legs {
		l := &leg{c: c, i: i, name: name}
		l.openFrom.Store(-1)
		l.text = newTextStage(o.ID, name, c.redact, keywords, g.pub.Publish, g.now, g.opts.OnHold)
		s, err := g.asr.NewStreamWith(o.ID+"/"+name, l.result, so)
		if err != nil {
			c.release()
			r := &ingest.Refusal{Reason: "error", SIP: 503, HTTP: 503, RetryAfter: 5 * time.Second, Detail: "recognizer unavailable"}
			g.Refused(o.Source, r)
			g.log.Error("gateway: no recognition stream", "call_id", o.ID, "err", err)
			return nil, r
		}
		l.stream = s
		c.legs = append(c.legs, l)
	}
	return c, nil
}

// phrases reads a call's own hotwords and keywords, adds the configured
// ones, and builds the hotwords' context graph for its streams. Hotwords
// on a greedy recognizer are read (a bad list is still refused) and not
// used.
func (g *Calls) phrases(o ingest.Offer, conf *configured) (asr.StreamOptions, []keyword, error) {
	var so asr.StreamOptions
	hot, err := asr.ParsePhrases(o.Hotwords)
	if err != nil {
		return so, nil, fmt.Errorf("hotwords: %w", err)
	}
	kw, err := asr.ParsePhrases(o.Keywords)
	if err != nil {
		return so, nil, fmt.Errorf("keywords: %w", err)
	}
	hot = append(append([]asr.Phrase{}, conf.hotwords...), hot...)
	if len(hot) > asr.MaxPhrases {
		return so, nil, fmt.Errorf("hotwords: more than %d with the configured ones", asr.MaxPhrases)
	}
	if len(hot) > 0 && g.asr.Decoding() == asr.ModifiedBeamSearch {
		if so.Hotwords, err = asr.NewContextGraph(g.tok, hot, conf.score); err != nil {
			return so, nil, fmt.Errorf("hotwords: %w", err)
		}
	}
	var keywords []keyword
	for _, p := range append(append([]asr.Phrase{}, conf.keywords...), kw...) {
		keywords = append(keywords, keyword{phrase: p.Text, words: strings.Fields(strings.ToUpper(p.Text))})
	}
	if len(keywords) > asr.MaxPhrases {
		return so, nil, fmt.Errorf("keywords: more than %d with the configured ones", asr.MaxPhrases)
	}
	return so, keywords, nil
}
