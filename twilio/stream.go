package twilio

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// Stream is one started Media Stream: a call whose legs are its tracks.
type Stream struct {
	ID, CallSid, AccountSid string
	Codec                   string
	// Tracks are the legs' names, in order (inbound, outbound).
	Tracks []string
	// Legs decode each track; read their counters only once Done.
	Legs   []*media.Leg
	Params map[string]string

	done   chan struct{}
	reason string
}

// Done is closed when the stream has ended.
func (st *Stream) Done() <-chan struct{} { return st.done }

// Reason is why the stream ended (bye, timeout, error, shutdown); empty
// before.
func (st *Stream) Reason() string {
	select {
	case <-st.done:
		return st.reason
	default:
		return ""
	}
}

// The refusals of a stream that never starts, after the upgrade.
var (
	errStartTimeout = &ingest.Refusal{Reason: "timeout", HTTP: http.StatusRequestTimeout, Detail: "no start message in time"}
	errNoStart      = &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: "the start message must come first"}
)

// serve runs a connection until its stream ends: the messages before start,
// admission, then the call.
func (s *Server) serve(c *conn) {
	var m Message
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for {
		wait := min(time.Until(deadline), s.cfg.IdleTimeout)
		if wait <= 0 {
			s.adm.Refused(Source, errStartTimeout)
			c.ws.Close(websocket.StatusPolicyViolation, errStartTimeout.Detail)
			return
		}
		typ, b, err := read(context.Background(), c.ws, wait)
		if err != nil {
			if errors.Is(err, errVanished) {
				s.adm.Refused(Source, errStartTimeout)
			}
			c.ws.CloseNow()
			return
		}
		if r, code := s.parse(typ, b, &m); r != nil {
			s.adm.Refused(Source, r)
			c.ws.Close(code, reason(r.Detail))
			return
		}
		switch m.Event {
		case EventStart:
			s.start(c, &m)
			return
		case EventMedia, EventDTMF:
			s.adm.Refused(Source, errNoStart)
			c.ws.Close(websocket.StatusPolicyViolation, errNoStart.Detail)
			return
		case EventStop:
			c.ws.Close(websocket.StatusNormalClosure, "")
			return
		}
		// connected, mark, or a platform's own event: nothing to do
	}
}

// parse reads a message, or says why it cannot be taken and how the
// connection is closed for it.
func (s *Server) parse(typ websocket.MessageType, b []byte, m *Message) (*ingest.Refusal, websocket.StatusCode) {
	if typ != websocket.MessageText {
		return &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: "binary message: Media Streams are JSON text"}, websocket.StatusUnsupportedData
	}
	switch err := Parse(b, m); {
	case errors.Is(err, ErrCodec):
		return &ingest.Refusal{Reason: "codec", HTTP: http.StatusUnsupportedMediaType, Detail: err.Error()}, websocket.StatusUnsupportedData
	case err != nil:
		return &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: err.Error()}, websocket.StatusInvalidFramePayloadData
	}
	return nil, 0
}

// track is one leg's receive state: its media messages made RTP packets
// for its media.Leg.
type track struct {
	leg     *media.Leg
	sink    *offsetSink
	started bool
	seq     uint16 // the next sequence number, where messages have no chunk
	ts      uint32 // the next timestamp, where messages have none
}

// offsetSink places a track's timeline on the stream's: the leg's starts
// at its first audio, the stream's at the stream's start.
type offsetSink struct {
	media.Sink
	off int64
}

func (o *offsetSink) WriteAudio(at int64, x []float32) { o.Sink.WriteAudio(at+o.off, x) }

// call is a started stream on its connection's goroutine.
type call struct {
	s        *Server
	c        *conn
	st       *Stream
	ticket   ingest.Ticket
	tracks   []*track
	pt       uint8
	base     int64 // unix ns of the start message: the stream's 0 ms
	anchored bool  // every leg's timeline is placed
	lastMs   int64 // where the stream's audio has reached, ms
	ignored  int64 // media of a track the start did not name
	pkt      []byte
}

// start admits a stream by its start message and runs it.
func (s *Server) start(c *conn, m *Message) {
	sm := m.Start
	legs := sm.Tracks
	if len(legs) == 0 {
		legs = []string{"inbound"}
	}
	offer := ingest.Offer{ID: sm.StreamSid, Source: Source, Peer: c.peer, Legs: legs,
		Hotwords: sm.Params["callscribe.hotwords"], Keywords: sm.Params["callscribe.keywords"], Redact: sm.Params["callscribe.redact"]}
	ticket, err := s.adm.Admit(offer)
	if err != nil {
		r := ingest.AsRefusal(err)
		c.ws.Close(closeCode(r), reason(r.Reason+": "+r.Detail))
		return
	}
	st := &Stream{ID: sm.StreamSid, CallSid: sm.CallSid, AccountSid: sm.AccountSid, Codec: sm.Codec, Tracks: legs,
		Params: sm.Params, done: make(chan struct{})}
	k := &call{s: s, c: c, st: st, ticket: ticket, pt: 0, base: time.Now().UnixNano(), pkt: make([]byte, 0, 12+1024)}
	if sm.Codec == "PCMA" {
		k.pt = 8
	}
	for i := range legs {
		o := s.cfg.Leg
		o.PayloadTypes = map[uint8]string{k.pt: sm.Codec}
		o.DTMFPayloadType = -1
		t := &track{sink: &offsetSink{Sink: ticket.Sink(i)}}
		o.Sink = t.sink
		if t.leg, err = media.NewLeg(o); err != nil { // a codec Parse named: not expected
			ticket.End("error", nil)
			c.ws.Close(websocket.StatusInternalError, "cannot decode the media")
			return
		}
		k.tracks = append(k.tracks, t)
		st.Legs = append(st.Legs, t.leg)
	}
	s.mu.Lock()
	dup := s.calls[st.ID] != nil // admission refuses a live id; one that ended here may linger
	if !dup {
		s.calls[st.ID] = st
	}
	s.mu.Unlock()
	defer func() {
		if !dup {
			s.mu.Lock()
			delete(s.calls, st.ID)
			s.mu.Unlock()
		}
	}()
	fields := map[string]string{"codec": sm.Codec, "stream_sid": sm.StreamSid, "call_sid": sm.CallSid,
		"account_sid": sm.AccountSid, "tracks": strings.Join(legs, ","), "from": sm.From, "to": sm.To}
	for name, v := range sm.Params {
		fields["param:"+name] = v
	}
	for name, v := range fields {
		if v == "" {
			delete(fields, name)
		}
	}
	ticket.Start(fields)
	why := k.run()
	stats := make([]media.LegStats, len(k.tracks))
	for i, t := range k.tracks {
		stats[i] = t.leg.Stats()
	}
	stats[0].Ignored += k.ignored
	st.reason = why
	close(st.done)
	ticket.End(why, stats)
}

// run reads the stream's messages until it ends, and says why it ended.
func (k *call) run() string {
	s, ws := k.s, k.c.ws
	deadline := time.Now().Add(s.cfg.MaxDuration)
	var m Message
	for {
		wait := min(time.Until(deadline), s.cfg.IdleTimeout)
		if wait <= 0 {
			ws.Close(websocket.StatusNormalClosure, "the call reached max_duration")
			return "timeout"
		}
		typ, b, err := read(context.Background(), ws, wait)
		switch {
		case err == nil:
		case k.c.stopping():
			return "shutdown"
		case errors.Is(err, errVanished):
			ws.CloseNow()
			return "timeout"
		case websocket.CloseStatus(err) == websocket.StatusNormalClosure || websocket.CloseStatus(err) == websocket.StatusGoingAway:
			return "bye" // closed without a stop: the call is over all the same
		default: // a broken connection, a message over the limit (closed 1009)
			ws.CloseNow()
			return "error"
		}
		if r, code := s.parse(typ, b, &m); r != nil {
			s.cfg.Logger.Warn("twilio: bad message", "call_id", k.st.ID, "err", r.Detail)
			ws.Close(code, reason(r.Detail))
			return "error"
		}
		switch m.Event {
		case EventMedia:
			k.media(&m.Media)
		case EventDTMF:
			k.dtmf(&m.DTMF)
		case EventStop:
			ws.Close(websocket.StatusNormalClosure, "")
			return "bye"
		case EventStart:
			ws.Close(websocket.StatusPolicyViolation, "a second start message")
			return "error"
		}
	}
}

// leg is the index of a track's leg, or -1.
func (k *call) leg(name string) int {
	for i, t := range k.st.Tracks {
		if t == name {
			return i
		}
	}
	return -1
}

// anchor places every leg's timeline on the call's clock at once, at the
// stream's ms: a track whose first audio comes later (the outbound track,
// often) stays aligned with the others by its timestamps, not by when its
// messages arrived. An empty block at index at does it.
func (k *call) anchor(ms int64) {
	if k.anchored {
		return
	}
	k.anchored = true
	for i := range k.tracks {
		k.ticket.Sink(i).WriteAudio(ms*16, nil)
	}
}

// media hands one message's audio to its track's leg as an RTP packet:
// the chunk its sequence number, the timestamp (ms) its RTP timestamp and
// its arrival, so that the leg fills gaps and reorders as it does for RTP
// and the timeline follows the stream's own clock.
func (k *call) media(md *Media) {
	i := k.leg(md.Track)
	if i < 0 {
		k.ignored++
		return
	}
	if len(md.Payload) == 0 {
		return
	}
	t := k.tracks[i]
	n := int64(len(md.Payload)) // 8 kHz: one byte a sample
	ms, arrival := md.Timestamp, int64(0)
	if ms >= 0 {
		arrival = k.base + (ms*8+n)*125_000 // the audio ends then
	} else { // no timestamp: the stream's clock is the arrival
		arrival = time.Now().UnixNano()
		ms = max(0, (arrival-k.base)/1e6-n/8)
	}
	if !t.started {
		t.started = true
		t.sink.off = ms * 16
		k.anchor(ms)
	}
	seq, ts := t.seq, t.ts
	if md.Chunk >= 0 {
		seq = uint16(md.Chunk)
	}
	if md.Timestamp >= 0 {
		ts = uint32(md.Timestamp * 8)
	}
	t.seq, t.ts = seq+1, ts+uint32(n)
	k.pkt = append(k.pkt[:0], 0x80, k.pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
	binary.BigEndian.PutUint16(k.pkt[2:], seq)
	binary.BigEndian.PutUint32(k.pkt[4:], ts)
	k.pkt = append(k.pkt, md.Payload...)
	t.leg.HandleRTPAt(k.pkt, arrival)
	k.lastMs = max(k.lastMs, ms+n/8)
}

// dtmf reports a digit where the stream's audio has reached (a dtmf
// message has no timestamp of its own).
func (k *call) dtmf(d *DTMF) {
	i := max(k.leg(d.Track), 0)
	if !k.anchored { // a digit before any audio
		k.lastMs = max(0, (time.Now().UnixNano()-k.base)/1e6)
		k.anchor(k.lastMs)
	}
	k.ticket.DTMF(i, media.DTMF{Digit: d.Digit, StartMs: k.lastMs, DurationMs: d.DurationMs})
}
