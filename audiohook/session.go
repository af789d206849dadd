package audiohook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript"
)

// A session's state, as the protocol's server sees it.
type state int

const (
	opening       state = iota // waiting for open
	active                     // opened: audio flows
	paused                     // the client paused the audio
	closing                    // close came: the last finals go out, then closed
	disconnecting              // disconnect went out: waiting for the client's close
	closed                     // closed went out: waiting for the client to hang up
)

var stateNames = [...]string{"opening", "active", "paused", "closing", "disconnecting", "closed"}

func (s state) String() string { return stateNames[s] }

// closeGrace is how long the client has to answer disconnect with close
// (its finals go out meanwhile), and to hang up once closed went out.
const closeGrace = 10 * time.Second

// session is one WebSocket connection. The handler's goroutine reads it
// (run); a watchdog ends it on its timers; a forwarder sends the call's
// finals back. Each is waited for before run returns.
type session struct {
	srv     *Server
	conn    *websocket.Conn
	id      string
	peer    netip.Addr
	authErr error
	orgID   string // Audiohook-Organization-Id
	log     *slog.Logger

	ctx    context.Context // ends the connection
	cancel context.CancelFunc
	wg     sync.WaitGroup

	wmu sync.Mutex // a message's seq and its write, in order
	seq int64      // the last server seq sent

	clientseq atomic.Int64 // the last client seq read
	last      atomic.Int64 // unix ns of the client's last message or audio

	mu         sync.Mutex
	state      state
	since      time.Time // when the state was entered (opening: the connection)
	opened     time.Time
	ticket     ingest.Ticket // nil: no call (a probe, a refusal, before open)
	probe      bool
	started    time.Time // call.start
	audio      *audio
	legs       []string // the legs' names, in channel order
	lang       string
	splits     []int64 // positions where transcripts split: a language update, a pause
	pausedAt   time.Time
	finalsDone bool   // the call's last finals went out (call.end seen)
	reason     string // why the call ends (ingest's reasons)
}

// newSession prepares a connection's session; its context is made here,
// before the server lists the session, so that Close (shutdown) finds it.
func newSession(parent context.Context, srv *Server, conn *websocket.Conn, id, orgID string, peer netip.Addr, authErr error) *session {
	now := time.Now()
	s := &session{srv: srv, conn: conn, id: id, peer: peer, authErr: authErr, orgID: orgID, since: now,
		log: srv.cfg.Logger.With("session", id)}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(parent))
	s.last.Store(now.UnixNano())
	return s
}

// run reads the connection until it closes, then ends the call and waits
// for the session's goroutines.
func (s *session) run() {
	defer s.conn.CloseNow()
	s.wg.Add(1)
	go s.watch()
	s.read()
	s.cancel()
	s.mu.Lock()
	s.endCall("error") // the connection went without a close: the peer vanished
	s.mu.Unlock()
	s.wg.Wait()
}

// read handles the client's messages; a panic ends only this session.
func (s *session) read() {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("audiohook: session panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	for {
		typ, data, err := s.conn.Read(s.ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st == -1 && s.ctx.Err() == nil {
				s.log.Debug("audiohook: connection lost", "err", err)
			}
			return
		}
		s.last.Store(time.Now().UnixNano())
		if typ == websocket.MessageBinary {
			s.onAudio(data)
			continue
		}
		if len(data) > s.srv.cfg.MaxMessageBytes {
			s.protocolError(fmt.Errorf("%w: text message of %d bytes (at most %d)", ErrBadMessage, len(data), s.srv.cfg.MaxMessageBytes))
			continue
		}
		m, err := ParseClientMessage(data)
		if err != nil {
			s.protocolError(err)
			continue
		}
		if err := s.checkEnvelope(m); err != nil {
			s.protocolError(err)
			continue
		}
		s.clientseq.Store(m.Seq)
		s.onMessage(m)
	}
}

// checkEnvelope checks a message's numbering and id against the session.
func (s *session) checkEnvelope(m *ClientMessage) error {
	switch {
	case m.ID != s.id:
		return fmt.Errorf("%w: id %s is not the session's", ErrBadMessage, m.ID)
	case m.Seq != s.clientseq.Load()+1:
		return fmt.Errorf("%w: seq %d: want %d", ErrBadMessage, m.Seq, s.clientseq.Load()+1)
	}
	s.wmu.Lock()
	seq := s.seq
	s.wmu.Unlock()
	if m.ServerSeq > seq {
		return fmt.Errorf("%w: serverseq %d: the server sent %d", ErrBadMessage, m.ServerSeq, seq)
	}
	return nil
}

// protocolError answers a message that breaks the protocol: disconnect
// (error) and the call ends (error). Once the session is ending, it is
// only logged.
func (s *session) protocolError(err error) {
	s.log.Info("audiohook: protocol error", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state >= closing {
		return
	}
	if s.state == opening {
		s.srv.adm.Refused(Source, &ingest.Refusal{Reason: "bad_request", HTTP: 400, Detail: err.Error()})
	}
	s.disconnect("error", err.Error(), "error")
}

// disconnect sends disconnect and ends the call with reason; the client
// answers with close. s.mu held.
func (s *session) disconnect(reason, info, callReason string) {
	if s.state >= disconnecting {
		return
	}
	s.setState(disconnecting)
	s.send("disconnect", map[string]any{"reason": reason, "info": info})
	s.endCall(callReason)
}

// endCall ends the call once, for reason. s.mu held.
func (s *session) endCall(reason string) {
	if s.ticket == nil || s.reason != "" {
		return
	}
	s.reason = reason
	s.ticket.End(reason, nil)
}

func (s *session) setState(st state) {
	s.state, s.since = st, time.Now()
}

// send writes a server message with the next seq. Any goroutine.
func (s *session) send(typ string, params any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	s.seq++
	b, err := json.Marshal(struct {
		Version    string `json:"version"`
		ID         string `json:"id"`
		Type       string `json:"type"`
		Seq        int64  `json:"seq"`
		ClientSeq  int64  `json:"clientseq"`
		Parameters any    `json:"parameters"`
	}{"2", s.id, typ, s.seq, s.clientseq.Load(), params})
	if err != nil {
		s.log.Error("audiohook: message not written", "type", typ, "err", err)
		return
	}
	ctx, cancel := ctxWrite(s.ctx)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.log.Debug("audiohook: write failed", "type", typ, "err", err)
		s.cancel()
	}
}

// onAudio takes a binary message.
func (s *session) onAudio(b []byte) {
	s.mu.Lock()
	st, a := s.state, s.audio
	if st != active && st != paused {
		s.mu.Unlock()
		if st == opening {
			s.protocolError(fmt.Errorf("%w: audio before open", ErrBadMessage))
		}
		return // the session is ending: audio in flight is dropped
	}
	if a == nil { // a probe's
		s.mu.Unlock()
		return
	}
	if len(b) > s.srv.cfg.MaxFrameBytes {
		s.mu.Unlock()
		s.protocolError(fmt.Errorf("%w: audio frame of %d bytes (at most %d)", ErrBadMessage, len(b), s.srv.cfg.MaxFrameBytes))
		return
	}
	now := time.Now()
	if st == paused {
		// Audio comes after paused (the connection keeps the client's
		// order): the client streams again without saying resumed. The
		// stream goes on where it paused, as after resumed with nothing
		// discarded.
		s.log.Info("audiohook: audio while paused, taken as resumed")
		s.resume(0, now)
	}
	err := a.frame(b, s.started, now)
	s.mu.Unlock()
	if err != nil {
		s.protocolError(err)
	}
}

// onMessage handles a checked text message.
func (s *session) onMessage(m *ClientMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Type {
	case TypeOpen:
		if s.state != opening {
			s.log.Info("audiohook: open ignored", "state", s.state)
			return
		}
		s.open(m.Open)
	case TypePing:
		s.send("pong", struct{}{})
	case TypeClose:
		s.onClose()
	case TypeUpdate:
		if s.state == active || s.state == paused {
			s.lang = m.Language
			s.split()
		}
	case TypePaused:
		if s.state != active {
			return
		}
		s.setState(paused)
		s.pausedAt = time.Now()
		s.split()
		if s.ticket != nil {
			s.ticket.Pause(true, Source)
		}
	case TypeResumed:
		if s.state != paused {
			return
		}
		var advance int64
		if s.audio != nil {
			advance = s.advance(m)
		}
		s.resume(advance, time.Now())
	case TypeDiscarded:
		if s.audio != nil && (s.state == active || s.state == paused) {
			// Lost audio is not silence: the timeline moves past it, the
			// recognizer hears the audio on either side joined.
			if advance := s.advance(m); advance > 0 {
				s.audio.skip(advance, s.started, time.Now())
			}
		}
	case TypeError:
		s.log.Info("audiohook: the client reports an error", "code", m.Code, "message", m.Text)
	case TypeDTMF:
		if s.ticket != nil && s.audio != nil && s.state == active {
			at := s.audio.timeline.at(s.audio.pos)
			s.ticket.DTMF(0, media.DTMF{Digit: m.Digit, StartMs: at / 16})
		}
	}
}

// resume ends a pause: the legs' timelines keep the time the pause took;
// the stream's position moves by advance (8 kHz samples), the audio
// discarded meanwhile. s.mu held.
func (s *session) resume(advance int64, now time.Time) {
	s.setState(active)
	if s.ticket != nil {
		s.ticket.Pause(false, Source)
	}
	if s.audio != nil {
		s.audio.gap(now.Sub(s.pausedAt), advance, s.started, now)
	}
}

// advance is how far (8 kHz samples) a discarded or resumed message moves
// the stream's position past the audio received: to the message's
// position, where the stream stands once the span it reports was
// discarded (every client message carries it, and it comes after the
// audio before it on the one connection). A client whose span ends
// elsewhere contradicts itself; the position it gives is taken, the span's
// end only when the message has no position. s.mu held.
func (s *session) advance(m *ClientMessage) int64 {
	to, end := m.Position.Samples(), m.Start.Samples()+m.Discarded.Samples()
	if to == 0 {
		to = end
	} else if to != end {
		s.log.Info("audiohook: the span discarded does not end at the message's position; the stream goes on at the position",
			"type", m.Type, "position", m.Position, "start", m.Start, "discarded", m.Discarded)
	}
	return max(to-s.audio.pos, 0)
}

// split marks the position where transcripts split. s.mu held.
func (s *session) split() {
	if s.audio == nil || len(s.splits) >= maxMarks {
		return
	}
	s.splits = append(s.splits, s.audio.pos)
}

// onClose answers the client's close: closed, once the call's last
// finals went out. s.mu held.
func (s *session) onClose() {
	if s.state == closing || s.state == closed {
		return
	}
	s.setState(closing)
	s.endCall("bye")
	if s.ticket == nil || s.finalsDone {
		s.sendClosed()
	}
}

// sendClosed ends the close transaction. s.mu held.
func (s *session) sendClosed() {
	s.send("closed", struct{}{})
	s.setState(closed)
}

// refuse answers open with disconnect for a refusal (counted unless
// admission counted it). s.mu held.
func (s *session) refuse(r *ingest.Refusal, counted bool, reason string) {
	if !counted {
		s.srv.adm.Refused(Source, r)
	}
	info := r.Detail
	if r.RetryAfter > 0 {
		info = fmt.Sprintf("%s (retry after %s)", info, r.RetryAfter)
	}
	s.log.Info("audiohook: session refused", "reason", r.Reason, "detail", r.Detail)
	s.disconnect(reason, info, "")
}

// open answers open: a probe is opened without a call; a session is
// authenticated, its media chosen and its call admitted and started.
// s.mu held.
func (s *session) open(p *OpenParameters) {
	if s.authErr != nil {
		s.refuse(&ingest.Refusal{Reason: "unauthorized", HTTP: 401, Detail: "unauthorized"}, false, "unauthorized")
		s.log.Info("audiohook: not authenticated", "err", s.authErr)
		return
	}
	if org, ok := s.orgHeader(); ok && org != p.OrganizationID {
		s.refuse(&ingest.Refusal{Reason: "unauthorized", HTTP: 401,
			Detail: "organizationId is not the Audiohook-Organization-Id header's"}, false, "unauthorized")
		return
	}
	m, ok := Select(p.Media)
	opened := map[string]any{"media": []Media{}, "startPaused": false}
	if ok {
		opened["media"] = []Media{m}
	}
	if p.SupportedLanguages {
		opened["supportedLanguages"] = s.srv.cfg.Languages
	}
	if p.Probe() {
		s.probe, s.opened = true, time.Now()
		s.setState(active)
		s.send("opened", opened)
		return
	}
	if !ok {
		s.refuse(&ingest.Refusal{Reason: "codec", HTTP: 415, Detail: "no media offered that the server takes (PCMU or L16, 8 kHz, external and/or internal)"}, false, "error")
		return
	}
	offer := ingest.Offer{ID: s.id, Source: Source, Peer: s.peer}
	for _, ch := range m.Channels {
		offer.Legs = append(offer.Legs, LegName(ch))
	}
	fields := map[string]string{"codec": m.Format, "conversation_id": p.ConversationID, "organization_id": p.OrganizationID,
		"participant_id": p.Participant.ID, "ani": p.Participant.ANI, "ani_name": p.Participant.ANIName,
		"dnis": p.Participant.DNIS, "language": p.Language, "channels": joinChannels(m.Channels)}
	if len(p.CustomConfig) > 0 && string(p.CustomConfig) != "null" {
		fields["custom_config"] = string(p.CustomConfig)
		var cc map[string]any
		if json.Unmarshal(p.CustomConfig, &cc) == nil {
			// The integration's own phrase lists and redaction for its calls.
			for k, to := range map[string]*string{"hotwords": &offer.Hotwords, "keywords": &offer.Keywords, "redact": &offer.Redact} {
				if v, ok := cc[k].(string); ok {
					*to = v
				}
			}
		}
	}
	for k, v := range fields {
		if v == "" {
			delete(fields, k)
		}
	}
	ticket, err := s.srv.adm.Admit(offer)
	if err != nil {
		s.refuse(ingest.AsRefusal(err), true, "error")
		return
	}
	sinks := make([]media.Sink, len(m.Channels))
	for i := range sinks {
		sinks[i] = ticket.Sink(i)
	}
	a, err := newAudio(m, sinks)
	if err != nil {
		ticket.End("error", nil)
		s.refuse(&ingest.Refusal{Reason: "error", HTTP: 500, Detail: "cannot take the media"}, false, "error")
		return
	}
	var events <-chan transcript.Event
	stop := func() {}
	if s.srv.feed != nil {
		events, stop = s.srv.feed(s.id) // before call.start: nothing is missed
	}
	s.ticket, s.audio, s.legs, s.lang = ticket, a, offer.Legs, p.Language
	s.started, s.opened = time.Now(), time.Now()
	ticket.Start(fields)
	s.setState(active)
	s.send("opened", opened)
	s.wg.Add(1)
	go s.forward(events, stop)
}

func joinChannels(chs []string) string {
	b, _ := json.Marshal(chs)
	return string(b)
}

// orgHeader is the Audiohook-Organization-Id the connection carried.
func (s *session) orgHeader() (string, bool) { return s.orgID, s.orgID != "" }

// forward sends the call's finals back as transcript events, asks the
// client to pause or resume when someone else paused or resumed the call,
// and answers a close that waits with closed once call.end is out.
func (s *session) forward(events <-chan transcript.Event, stop func()) {
	defer s.wg.Done()
	defer stop()
	done := s.ticket.Done()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if s.event(&e) {
				s.finals()
				return
			}
		case <-done:
		drain: // what was published before the slot was freed
			for {
				select {
				case e, ok := <-events:
					if !ok || s.event(&e) {
						break drain
					}
				default:
					break drain
				}
			}
			s.finals()
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// finals says the call's last finals went out: a close waiting gets its
// closed.
func (s *session) finals() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finalsDone = true
	if s.state == closing {
		s.sendClosed()
	}
}

// event handles one of the call's events; true at call.end.
func (s *session) event(e *transcript.Event) bool {
	switch e.Type {
	case transcript.CallEnd:
		return true
	case transcript.Pause, transcript.Resume:
		if e.Fields["by"] == Source {
			return false
		}
		s.mu.Lock()
		if s.state == active || s.state == paused {
			if e.Type == transcript.Pause {
				s.send("pause", struct{}{})
			} else {
				s.send("resume", struct{}{})
			}
		}
		s.mu.Unlock()
	case transcript.Final:
		s.mu.Lock()
		ch := -1
		for i, name := range s.legs {
			if e.Fields["leg"] == name {
				ch = i
			}
		}
		if ch < 0 {
			s.mu.Unlock()
			return false
		}
		first := s.audio.chans[ch].firstMs
		pos := func(ms int64) time.Duration {
			return time.Duration(s.audio.timeline.position((ms-first)*16)) * (time.Second / 8000)
		}
		ts, err := transcripts(e, ch, s.lang, s.splits, pos)
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("audiohook: final not sent", "err", err)
		}
		for _, t := range ts {
			s.send("event", map[string]any{"entities": []Entity{{Type: "transcript", Data: t}}})
		}
	}
	return false
}

// shutdown ends the session because the server closes.
func (s *session) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case opening:
		s.cancel()
	case active, paused:
		s.disconnect("completed", "the server is shutting down", "shutdown")
	}
}

// watch ends the session on its timers: open, idle, the longest session,
// and the grace of its close.
func (s *session) watch() {
	defer s.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	cfg := &s.srv.cfg
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			idle := now.Sub(time.Unix(0, s.last.Load()))
			switch {
			case s.state == opening && now.Sub(s.since) > cfg.StartTimeout:
				s.log.Info("audiohook: no open in time")
				s.cancel()
			case (s.state == active || s.state == paused) && idle > cfg.IdleTimeout:
				s.disconnect("error", "idle timeout: no audio or message", "timeout")
			case (s.state == active || s.state == paused) && now.Sub(s.opened) > cfg.MaxDuration:
				s.disconnect("completed", "the session's longest duration reached", "timeout")
			case s.state >= closing && now.Sub(s.since) > closeGrace:
				s.cancel()
			}
			s.mu.Unlock()
		}
	}
}
