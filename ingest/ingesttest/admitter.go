// Package ingesttest is an ingest.Admitter for the tests of call sources:
// it admits calls, keeps each leg's audio in a ring and records what the
// source reports. It holds no source, no recognition and no publishing.
package ingesttest

import (
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// RingSamples is the audio each leg's ring keeps: 60 s at 16 kHz, more
// than a test call says.
const RingSamples = 60 * 16000

// Admitter admits every call while it is not draining and fewer than its
// limit are live. C is the source's own call (*sip.Call, *webrtc.Session),
// found by Lookup when the call starts. Safe for concurrent use.
type Admitter[C any] struct {
	// Lookup finds the source's call by its id when the call starts; set
	// it before the first call (nil leaves the zero C).
	Lookup func(id string) C
	// Started receives each call as it starts; Start blocks while it
	// holds 1,024 calls nobody received.
	Started chan C

	mu       sync.Mutex
	max      int // 0: no limit
	draining bool
	live     int
	digits   []byte
	pauses   []bool
	started  []C
	ended    []C
}

// New returns an Admitter without a limit.
func New[C any]() *Admitter[C] { return &Admitter[C]{Started: make(chan C, 1024)} }

// SetMax makes admission refuse (ingest.ErrLimit) while n calls are live;
// 0 lifts the limit.
func (a *Admitter[C]) SetMax(n int) {
	a.mu.Lock()
	a.max = n
	a.mu.Unlock()
}

// SetDraining makes admission refuse every call (ingest.ErrDraining).
func (a *Admitter[C]) SetDraining(draining bool) {
	a.mu.Lock()
	a.draining = draining
	a.mu.Unlock()
}

// Full tells why a call would be refused now.
func (a *Admitter[C]) Full(string) *ingest.Refusal {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.full()
}

func (a *Admitter[C]) full() *ingest.Refusal {
	if a.draining {
		return ingest.ErrDraining
	}
	if a.max > 0 && a.live >= a.max {
		return ingest.ErrLimit
	}
	return nil
}

// Refused ignores the refusals a source makes by itself.
func (a *Admitter[C]) Refused(string, *ingest.Refusal) {}

// Admit takes the call unless Full says why not.
func (a *Admitter[C]) Admit(o ingest.Offer) (ingest.Ticket, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if why := a.full(); why != nil {
		return nil, why
	}
	a.live++
	t := &Ticket[C]{a: a, id: o.ID, done: make(chan struct{})}
	for range o.Legs {
		t.rings = append(t.rings, media.NewRing(RingSamples))
	}
	return t, nil
}

// Digits are the DTMF digits of every call, in the order they came.
func (a *Admitter[C]) Digits() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return string(a.digits)
}

// Pauses are the Pause calls of every call (true: paused), in order.
func (a *Admitter[C]) Pauses() []bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]bool(nil), a.pauses...)
}

// StartedCalls are the calls that started, in order.
func (a *Admitter[C]) StartedCalls() []C {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]C(nil), a.started...)
}

// EndedCalls are the started calls that ended, in order.
func (a *Admitter[C]) EndedCalls() []C {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]C(nil), a.ended...)
}

// WaitEnded waits up to 10 s until n started calls have ended and returns
// every one that has, in order; it fails the test if fewer end.
func (a *Admitter[C]) WaitEnded(t testing.TB, n int) []C {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ended := a.EndedCalls(); len(ended) >= n {
			return ended
		}
	}
	t.Fatalf("fewer than %d calls ended", n)
	return nil
}

// Ticket is one admitted call: each leg's audio goes into a ring.
type Ticket[C any] struct {
	a       *Admitter[C]
	id      string
	rings   []*media.Ring
	call    C
	started bool
	once    sync.Once
	done    chan struct{}
}

// Sink is leg i's ring.
func (t *Ticket[C]) Sink(i int) media.Sink { return t.rings[i] }

// Done is closed by End.
func (t *Ticket[C]) Done() <-chan struct{} { return t.done }

// DTMF records the digit.
func (t *Ticket[C]) DTMF(_ int, d media.DTMF) {
	t.a.mu.Lock()
	t.a.digits = append(t.a.digits, d.Digit)
	t.a.mu.Unlock()
}

// Pause records the change.
func (t *Ticket[C]) Pause(paused bool, _ string) {
	t.a.mu.Lock()
	t.a.pauses = append(t.a.pauses, paused)
	t.a.mu.Unlock()
}

// Start looks the call up and hands it to Started.
func (t *Ticket[C]) Start(map[string]string) {
	var c C
	if t.a.Lookup != nil {
		c = t.a.Lookup(t.id)
	}
	t.a.mu.Lock()
	t.call, t.started = c, true
	t.a.started = append(t.a.started, c)
	t.a.mu.Unlock()
	t.a.Started <- c
}

// End frees the call's slot, once.
func (t *Ticket[C]) End(string, []media.LegStats) {
	t.once.Do(func() {
		t.a.mu.Lock()
		t.a.live--
		if t.started {
			t.a.ended = append(t.a.ended, t.call)
		}
		t.a.mu.Unlock()
		close(t.done)
	})
}
