// Package gateway owns calls end to end: admission, each leg's audio into
// the shared recognizer, the call's events on Redis from call.start to
// call.end, drain and stop, and the HTTP side (health, readiness, metrics,
// events, WHIP, the page). Protocols live in sip and webrtc.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/asr"
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
	// SecondPass, if set, recognizes every final's audio again before it
	// is published (secondpass.go); its words replace the first pass's.
	SecondPass *SecondPass
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
