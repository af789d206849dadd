// Package gateway wires calls to recognition and publishing: each call's
// legs feed streams of the shared asr.Batcher, and their results become
// transcript events. It owns no protocol details.
package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/webrtc"
)

// Publisher is where events go (transcript.Publisher).
type Publisher interface {
	Publish(ev transcript.Event)
}

// Calls is the registry of live calls; it is the Handler of the SIP server
// and of the WHIP endpoint.
type Calls struct {
	asr *asr.Batcher
	pub Publisher
	log *slog.Logger
	// FinalTimeout bounds the wait for a hung-up call's last final.
	FinalTimeout time.Duration
	// OnLatency, if set, learns for each partial and final how long after
	// the audio of its last word arrived it was emitted. Set before calls.
	OnLatency func(kind asr.ResultKind, d time.Duration)

	mu    sync.Mutex
	calls map[any][]*call // a call's legs, by *sip.Call or *webrtc.Session
	stats Stats
}

// Stats are counters over ended calls.
type Stats struct {
	Started, Ended                 int64
	Packets, Lost, Late, Malformed int64 // RTP
	DroppedSamples                 int64 // ring overflows
	DTMF                           int64
	EndedBy                        map[string]int64 // by reason
	StartedBy                      map[string]int64 // by source: sip, webrtc
}

// Stats returns a copy of the counters.
func (g *Calls) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.EndedBy, s.StartedBy = maps.Clone(g.stats.EndedBy), maps.Clone(g.stats.StartedBy)
	return s
}

// NewCalls returns a registry feeding b and publishing to pub.
func NewCalls(b *asr.Batcher, pub Publisher, log *slog.Logger) *Calls {
	if log == nil {
		log = slog.Default()
	}
	return &Calls{asr: b, pub: pub, log: log, FinalTimeout: 10 * time.Second, calls: map[any][]*call{}}
}

// call is the recognition of one leg of a call: its ring read into an asr
// stream.
type call struct {
	id     string
	leg    string
	media  *media.Leg
	stream *asr.Stream
	stop   chan struct{}
	fed    chan struct{}

	mu      sync.Mutex
	fedMs   int64         // audio given to the stream so far
	arrived [256]feedMark // when the audio up to a point was given, a ring
	next    int
}

// feedMark says that the audio up to ms was given at t.
type feedMark struct {
	ms int64
	t  time.Time
}

func (cs *call) accept(x []float32) {
	cs.stream.Accept(x)
	cs.mu.Lock()
	cs.fedMs += int64(len(x) / 16)
	cs.arrived[cs.next%len(cs.arrived)] = feedMark{cs.fedMs, time.Now()}
	cs.next++
	cs.mu.Unlock()
}

// arrivedAt is when the audio at ms was given to the recognizer.
func (cs *call) arrivedAt(ms int64) (time.Time, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var best feedMark
	found := false
	for i := 1; i <= min(cs.next, len(cs.arrived)); i++ {
		m := cs.arrived[(cs.next-i)%len(cs.arrived)]
		if m.ms < ms {
			break
		}
		best, found = m, true
	}
	return best.t, found
}

// Active is the number of calls in progress.
func (g *Calls) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// legSpec is a leg to recognize: its name and its audio.
type legSpec struct {
	name string
	leg  *media.Leg
}

// CallStarted publishes call.start and starts recognizing every leg (one
// for a plain call; one per participant for a SIPREC recording).
func (g *Calls) CallStarted(c *sip.Call) {
	fields := map[string]string{"source": "sip", "from": c.From, "to": c.To, "sip_call_id": c.SIPCallID, "codec": c.Codec}
	for k, v := range c.Headers {
		fields["hdr:"+k] = v
	}
	legs := make([]legSpec, len(c.Legs))
	senders := map[string]sip.Participant{}
	for i, l := range c.Legs {
		legs[i] = legSpec{l.Name, l.Leg}
		if l.Sender != (sip.Participant{}) {
			senders[l.Name] = l.Sender
		}
	}
	if c.Recording {
		fields["recording"] = "siprec"
	}
	if len(senders) > 0 {
		b, _ := json.Marshal(senders)
		fields["participants"] = string(b)
	}
	g.start(c, c.SIPCallID, legs, fields)
}

// SessionStarted does the same for a browser call (source webrtc).
func (g *Calls) SessionStarted(s *webrtc.Session) {
	g.start(s, s.ID, []legSpec{{"browser", s.Leg}}, map[string]string{"source": "webrtc", "codec": s.Codec})
}

// start publishes call.start and feeds each leg to a recognition stream.
func (g *Calls) start(key any, id string, legs []legSpec, fields map[string]string) {
	names := make([]string, len(legs))
	for i, l := range legs {
		names[i] = l.name
	}
	fields["legs"] = strings.Join(names, ",")
	g.pub.Publish(transcript.Event{Type: transcript.CallStart, CallID: id, Fields: fields})
	var all []*call
	for _, l := range legs {
		cs := &call{id: id, leg: l.name, media: l.leg, stop: make(chan struct{}), fed: make(chan struct{})}
		s, err := g.asr.NewStream(id+"/"+l.name, func(r asr.Result) { g.result(cs, r) })
		if err != nil {
			g.log.Error("gateway: no recognition for call", "call_id", id, "leg", l.name, "err", err)
			close(cs.fed)
		} else {
			cs.stream = s
			go cs.feed(l.leg.Ring())
		}
		all = append(all, cs)
	}
	g.mu.Lock()
	g.calls[key] = all
	g.stats.Started++
	if g.stats.StartedBy == nil {
		g.stats.StartedBy = map[string]int64{}
	}
	g.stats.StartedBy[fields["source"]]++
	g.mu.Unlock()
}

// feed moves the leg's audio into the recognizer every 20 ms; at stop it
// takes what is left.
func (cs *call) feed(ring *media.Ring) {
	defer close(cs.fed)
	buf := make([]float32, 16000)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-cs.stop:
			for n, _ := ring.Read(buf); n > 0; n, _ = ring.Read(buf) {
				cs.accept(buf[:n])
			}
			return
		}
		if n, _ := ring.Read(buf); n > 0 {
			cs.accept(buf[:n])
		}
	}
}

func (g *Calls) result(cs *call, r asr.Result) {
	if g.OnLatency != nil && r.Text != "" {
		if t, ok := cs.arrivedAt(r.EndMs); ok {
			g.OnLatency(r.Kind, time.Since(t))
		}
	}
	f := map[string]string{"leg": cs.leg, "utt": strconv.Itoa(r.Utt), "text": r.Text,
		"start_ms": strconv.FormatInt(r.StartMs, 10), "end_ms": strconv.FormatInt(r.EndMs, 10)}
	typ := transcript.Partial
	if r.Kind == asr.Final {
		typ = transcript.Final
		words, _ := json.Marshal(r.Words)
		f["words"] = string(words)
		f["conf"] = strconv.FormatFloat(float64(r.Conf), 'f', 3, 32)
	}
	g.pub.Publish(transcript.Event{Type: typ, CallID: cs.id, Fields: f})
}

// CallDTMF publishes a digit.
func (g *Calls) CallDTMF(c *sip.Call, l *sip.CallLeg, d media.DTMF) {
	g.pub.Publish(transcript.Event{Type: transcript.DTMF, CallID: c.SIPCallID, Fields: map[string]string{
		"leg": l.Name, "digit": string(d.Digit), "start_ms": strconv.FormatInt(d.StartMs, 10),
		"duration_ms": strconv.FormatInt(d.DurationMs, 10)}})
}

// CallEnded finalizes each leg's last utterance, then publishes call.end.
func (g *Calls) CallEnded(c *sip.Call) { g.finish(c, c.Reason(), c.Started) }

// SessionEnded does the same for a browser call.
func (g *Calls) SessionEnded(s *webrtc.Session) { g.finish(s, s.Reason(), s.Started) }

func (g *Calls) finish(key any, reason string, started time.Time) {
	g.mu.Lock()
	legs := g.calls[key]
	g.mu.Unlock()
	if len(legs) == 0 {
		return
	}
	defer func() { // the call counts as live until call.end is out
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
	}()
	for _, cs := range legs {
		close(cs.stop)
	}
	deadline := time.After(g.FinalTimeout)
	for _, cs := range legs {
		<-cs.fed
		if cs.stream == nil {
			continue
		}
		cs.stream.Finish()
	}
	for _, cs := range legs {
		if cs.stream == nil {
			continue
		}
		select {
		case <-cs.stream.Done():
		case <-deadline:
			g.log.Error("gateway: last final not ready in time", "call_id", cs.id, "leg", cs.leg)
		}
	}
	perLeg := map[string]map[string]int64{}
	g.mu.Lock()
	g.stats.Ended++
	for _, cs := range legs {
		st := cs.media.Stats() // final: the leg's reader has stopped
		g.stats.Packets += st.Packets
		g.stats.Lost += st.Lost
		g.stats.Late += st.Late
		g.stats.Malformed += st.Malformed
		g.stats.DroppedSamples += st.DroppedSamples
		g.stats.DTMF += st.DTMF
		perLeg[cs.leg] = map[string]int64{"packets": st.Packets, "lost": st.Lost, "late": st.Late,
			"malformed": st.Malformed, "dropped_samples": st.DroppedSamples, "dtmf": st.DTMF}
	}
	if g.stats.EndedBy == nil {
		g.stats.EndedBy = map[string]int64{}
	}
	g.stats.EndedBy[reason]++
	g.mu.Unlock()
	stats, _ := json.Marshal(perLeg)
	g.pub.Publish(transcript.Event{Type: transcript.CallEnd, CallID: legs[0].id, Fields: map[string]string{
		"reason": reason, "duration_ms": strconv.FormatInt(time.Since(started).Milliseconds(), 10),
		"stats": string(stats)}})
}

// Drain waits until no call is left or ctx ends.
func (g *Calls) Drain(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for g.Active() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
