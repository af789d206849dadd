// Package gateway owns calls end to end: admission, each leg's audio into
// the shared recognizer, the call's events on Redis from call.start to
// call.end, drain and stop, and the HTTP side (health, readiness, metrics,
// events, WHIP, the page). Protocols live in sip and webrtc.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript"
)

// Publisher is where events go (transcript.Publisher).
type Publisher interface {
	Publish(ev transcript.Event)
}

// CallsOptions configure admission and the call lifecycle. Zero fields take
// the defaults named.
type CallsOptions struct {
	// MaxCalls bounds the live calls of each kind of source ("sip",
	// "webrtc"); a kind not named is not bounded.
	MaxCalls map[string]int
	// MaxPerPeer bounds the live calls from one address, by kind of source;
	// default none.
	MaxPerPeer map[string]int
	// MaxStreams bounds the recognition streams of the calls holding a slot
	// (one per leg): > 0 a fixed bound; 0 the recognizer's measured
	// capacity (asr.Batcher.Capacity; unbounded until measured); < 0 none.
	MaxStreams int
	// MaxLag: while the recognizer is further behind real time than this
	// (asr.Batcher.Lag), no call is admitted; default 500 ms; < 0: never
	// checked.
	MaxLag time.Duration
	// FinalTimeout bounds the wait for a call's last finals once it has
	// ended; default 30 s. A stream still decoding then is abandoned and
	// counted (Stats.Abandoned).
	FinalTimeout time.Duration
	// Hotwords (asr.decoding modified_beam_search) and Keywords are the
	// configured phrases; a call's own are added to them. HotwordsScore is
	// the bonus per token of a hotword without its own score.
	Hotwords      []asr.Phrase
	Keywords      []asr.Phrase
	HotwordsScore float32
	// Redact is the configured redaction; a call's own adds to it. What
	// it covers is replaced by markers in every partial and final (text,
	// words, display) before they are published, and DTMF digits are
	// masked.
	Redact redact.Policy
	// OnLatency, if set, learns for each partial and final how long after
	// the audio of its last word arrived it was emitted.
	OnLatency func(kind asr.ResultKind, d time.Duration)
	// OnHold, if set, learns for each final of a call with redaction on
	// how long it was held back while its digits might go on (0: not held).
	OnHold func(d time.Duration)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Calls is the registry of live calls: it admits them (ingest.Admitter),
// feeds their legs to the recognizer and publishes their events.
type Calls struct {
	asr  *asr.Batcher
	tok  *asr.Tokenizer // spells hotwords
	pub  Publisher
	opts CallsOptions
	log  *slog.Logger
	// configured is what every call gets besides its own: opts' phrases
	// and redaction, or what SetConfigured set since.
	configured atomic.Pointer[configured]
	// limits are opts' admission limits, or what SetLimits set since.
	limits atomic.Pointer[Limits]

	now func() time.Time // the clock of calls' events (tests set it)

	mu       sync.Mutex
	calls    map[string]*call
	streams  int // legs of the calls holding a slot
	bySource map[string]int
	byPeer   map[peerKey]int
	draining bool
	changed  chan struct{} // closed and replaced when a call leaves
	stats    Stats
	held     map[*leg]bool  // legs holding finals back (redaction)
	sweeping bool           // a sweep goroutine runs
	wg       sync.WaitGroup // finishing calls, the sweep
}

type peerKey struct {
	source string
	addr   netip.Addr
}

// Stats are counters of calls and of the legs of ended calls.
type Stats struct {
	Started     map[string]int64 // by source
	Ended       map[string]int64 // by reason
	Rejected    map[string]int64 // by source + "/" + reason
	Cancelled   int64            // admitted, never answered
	RTP         media.LegStats   // the packet counters of ended calls' legs, summed
	DroppedMs   int64            // audio dropped undecoded (recognizer overflow)
	LateResults int64            // results that came after call.end, not published
	Abandoned   int64            // legs whose last final was not ready by FinalTimeout
}

// NewCalls returns a registry feeding b and publishing to pub.
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

func NewCalls(b *asr.Batcher, pub Publisher, o CallsOptions) *Calls {
	if o.FinalTimeout <= 0 {
		o.FinalTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	g := &Calls{asr: b, tok: asr.NewTokenizer(b.Info()), pub: pub, opts: o, log: o.Logger, now: time.Now, calls: map[string]*call{},
		bySource: map[string]int{}, byPeer: map[peerKey]int{}, changed: make(chan struct{}), held: map[*leg]bool{},
		stats: Stats{Started: map[string]int64{}, Ended: map[string]int64{}, Rejected: map[string]int64{}}}
	g.SetConfigured(o.Hotwords, o.Keywords, o.HotwordsScore, o.Redact)
	g.SetLimits(Limits{MaxCalls: o.MaxCalls, MaxPerPeer: o.MaxPerPeer, MaxStreams: o.MaxStreams, MaxLag: o.MaxLag})
	return g
}

// Stats returns a copy of the counters.
func (g *Calls) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Started, s.Ended, s.Rejected = maps.Clone(s.Started), maps.Clone(s.Ended), maps.Clone(s.Rejected)
	return s
}

// Active is the number of calls holding a slot: admitted, live or ending.
func (g *Calls) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// SetDraining makes admission refuse every call (ingest.ErrDraining).
func (g *Calls) SetDraining() {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
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
	return g.asr.Capacity()
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
		l := &leg{c: c, i: i, name: name, text: text{nextStart: -1, kwUtt: -1}}
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

// Drain waits until no call holds a slot or ctx ends.
func (g *Calls) Drain(ctx context.Context) error {
	for {
		g.mu.Lock()
		n, ch := len(g.calls), g.changed
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Wait waits for every call being finished to be done (their goroutines).
func (g *Calls) Wait() { g.wg.Wait() }

// A call's state, in order.
const (
	admitted = iota // slot reserved, not answered
	live            // answered: call.start is out
	ending          // over: its last finals are awaited
	ended           // call.end is out
)

// call is one admitted call. Its events are published under mu, so none
// can follow call.end.
type call struct {
	g        *Calls
	id       string
	source   string
	peer     netip.Addr
	legs     []*leg
	reserved int         // streams counted for the call in Calls.streams
	open     atomic.Bool // audio is taken (live)
	paused   atomic.Bool // audio is replaced by silence (Pause)
	done     chan struct{}
	keywords []keyword     // configured and the call's own
	redact   redact.Policy // configured and the call's own

	mu      sync.Mutex
	state   int
	started time.Time
}

// Sink is where leg i's audio goes.
func (c *call) Sink(i int) media.Sink { return c.legs[i] }

// Done is closed once the slot is free.
func (c *call) Done() <-chan struct{} { return c.done }

// Start publishes call.start and opens the legs to audio.
func (c *call) Start(fields map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != admitted {
		return
	}
	f := maps.Clone(fields)
	if f == nil {
		f = map[string]string{}
	}
	names := make([]string, len(c.legs))
	for i, l := range c.legs {
		names[i] = l.name
	}
	f["source"], f["legs"] = c.source, strings.Join(names, ",")
	c.state, c.started = live, c.g.now()
	c.g.pub.Publish(transcript.NewCallStart(c.id, f))
	c.open.Store(true)
	c.g.mu.Lock()
	c.g.stats.Started[c.source]++
	c.g.mu.Unlock()
}

// DTMF publishes a digit of a live call, on the call's clock. With
// redaction on, or while the call is paused, the event says when a key was
// pressed, not which.
func (c *call) DTMF(i int, d media.DTMF) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != live {
		return
	}
	if !d.OnCall { // keyed in the media: on the leg's timeline
		l := c.legs[i]
		l.anchor((d.StartMs + d.DurationMs) * 16)
		d.StartMs = max(0, d.StartMs+l.mediaOffMs.Load())
	}
	if c.redact.On() || c.paused.Load() {
		c.g.pub.Publish(transcript.NewMaskedDTMF(c.id, c.legs[i].name, d.StartMs, d.DurationMs))
		return
	}
	c.g.pub.Publish(transcript.NewDTMF(c.id, c.legs[i].name, d.Digit, d.StartMs, d.DurationMs))
}

// sinceStart is the call's clock: ms since call.start. Only once live.
func (c *call) sinceStart() int64 { return c.g.now().Sub(c.started).Milliseconds() }

// Pause stops or restarts the call's transcription; a change is published
// (pause, resume) in the call's order.
func (c *call) Pause(paused bool, by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != live || c.paused.Load() == paused {
		return
	}
	c.paused.Store(paused)
	at := c.sinceStart()
	if paused {
		c.g.pub.Publish(transcript.NewPause(c.id, by, at))
	} else {
		c.g.pub.Publish(transcript.NewResume(c.id, by, at))
	}
}

// ErrNoCall is returned for a call id no live call has.
var ErrNoCall = errors.New("gateway: no such call")

// Pause stops (or restarts) the transcription of a live call.
func (g *Calls) Pause(id string, paused bool, by string) error {
	g.mu.Lock()
	c := g.calls[id]
	g.mu.Unlock()
	if c == nil {
		return ErrNoCall
	}
	c.mu.Lock()
	live := c.state == live
	c.mu.Unlock()
	if !live {
		return ErrNoCall
	}
	c.Pause(paused, by)
	return nil
}

// End ends the call: before Start it only frees the slot; after, the
// call's remaining audio is recognized and call.end published, on a
// goroutine of the registry's.
func (c *call) End(reason string, stats []media.LegStats) {
	c.mu.Lock()
	state := c.state
	if state == admitted || state == live {
		c.state = ending
		c.open.Store(false)
	}
	c.mu.Unlock()
	switch state {
	case admitted:
		c.g.mu.Lock()
		c.g.stats.Cancelled++
		c.g.mu.Unlock()
		c.release()
	case live:
		c.g.wg.Add(1)
		go c.finish(reason, stats)
	}
}

// finish waits for each leg's last final (bounded by FinalTimeout), then
// publishes call.end: the call's last event.
func (c *call) finish(reason string, stats []media.LegStats) {
	defer c.g.wg.Done()
	for _, l := range c.legs {
		l.stream.Finish()
	}
	deadline := time.NewTimer(c.g.opts.FinalTimeout)
	defer deadline.Stop()
	abandoned := 0
	for _, l := range c.legs {
		select {
		case <-l.stream.Done():
		case <-deadline.C:
			deadline.Reset(0) // the other legs get no more time
			abandoned++
			c.g.log.Error("gateway: last final not ready in time", "call_id", c.id, "leg", l.name, "final_timeout", c.g.opts.FinalTimeout)
		}
	}
	perLeg := map[string]map[string]int64{}
	var total media.LegStats
	var dropped int64
	for i, l := range c.legs {
		m := map[string]int64{"dropped_ms": l.stream.DroppedMs()}
		dropped += m["dropped_ms"]
		if i < len(stats) {
			st := stats[i]
			m["packets"], m["lost"], m["late"], m["malformed"], m["dtmf"] = st.Packets, st.Lost, st.Late, st.Malformed, st.DTMF
			m["ignored"] = st.Ignored
			m["unauthenticated"], m["rtcp"], m["reports"] = st.Unauthenticated, st.RTCP, st.Reports
			total.Add(st)
		}
		perLeg[l.name] = m
	}
	c.mu.Lock()
	for _, l := range c.legs {
		l.releaseAll() // the call's end decides every digit run
	}
	c.state = ended
	c.g.pub.Publish(transcript.NewCallEnd(c.id, reason, c.sinceStart(), perLeg))
	c.mu.Unlock()
	c.g.mu.Lock()
	s := &c.g.stats
	s.Ended[reason]++
	s.RTP.Add(total)
	s.DroppedMs += dropped
	s.Abandoned += int64(abandoned)
	c.g.mu.Unlock()
	c.release()
}

// release frees the call's slot and its streams (abandoning the ones still
// decoding; a no-op for those that finished).
func (c *call) release() {
	for _, l := range c.legs {
		l.stream.Close()
	}
	g := c.g
	g.mu.Lock()
	if g.calls[c.id] == c {
		delete(g.calls, c.id)
		g.streams -= c.reserved
		g.bySource[c.source]--
		if c.peer.IsValid() {
			k := peerKey{c.source, c.peer}
			if g.byPeer[k]--; g.byPeer[k] <= 0 {
				delete(g.byPeer, k)
			}
		}
		close(g.changed)
		g.changed = make(chan struct{})
	}
	g.mu.Unlock()
	close(c.done)
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

// sweep releases held finals whose digit run was left (leg.sweep) until no
// leg holds any.
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
			l.sweep(g.now(), decoded)
			l.c.mu.Unlock()
		}
	}
}
