package gateway

import (
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/transcript"
)

// The call's life: admitted, live (call.start out, audio taken), ending
// (its last finals awaited), ended (call.end out, the slot free). Its
// events are published under its mu, so none can follow call.end.

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
	for _, l := range c.legs { // the second passes of the last finals
		c.mu.Lock()
		wait := l.passDone()
		c.mu.Unlock()
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-deadline.C:
			deadline.Reset(0)
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
		l.passGiveUp() // the second passes not back in time: the first pass's
		l.text.flush() // the call's end decides every digit run
		l.holdChanged()
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
