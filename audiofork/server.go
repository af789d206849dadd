// Package audiofork takes calls whose platform streams their audio over a
// WebSocket: the audio forks (FreeSWITCH mod_audio_fork and
// mod_audio_stream, jambonz listen, Vonage's WebSocket endpoint: a first
// text frame of JSON metadata, then binary L16 frames, mono, mixed or
// stereo interleaved, and text frames for DTMF and control), and jambonz's
// custom speech-to-text API (a start message, binary L16, stop; the
// call's transcriptions sent back, and the server closes the socket).
// Calls are admitted by an ingest.Admitter once their first message has
// said what they are; the audio goes to the admission's sinks. It holds no
// recognition: the gateway hands it each jambonz call's results
// (Transcripts).
package audiofork

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// The call sources, as admission, call.start and the metrics name them.
const (
	SourceStream  = "stream"
	SourceJambonz = "jambonz"
)

// Subprotocols are the WebSocket subprotocols a fork may ask for:
// mod_audio_fork's and jambonz listen's. A fork that asks for none
// (mod_audio_stream, Vonage) is taken too.
var Subprotocols = []string{"audio.drachtio.org", "audio.jambonz.org"}

// Result is one of a call's recognition results as the gateway published
// it, sent back to jambonz.
type Result struct {
	// Leg is the leg's name.
	Leg string
	// Final: a final (else a partial).
	Final bool
	// Text is what was said: a final's display text, a partial's words.
	Text string
	// Confidence is a final's mean word confidence, 0..1.
	Confidence float64
}

// Transcripts follows one call's results from before it starts: the
// channel closes after the call's last result (its call.end) or once stop
// is called; stop returns when nothing more will be sent.
type Transcripts func(callID string) (results <-chan Result, stop func())

// finalWait bounds how long a jambonz call that was stopped waits for its
// last finals before the socket is closed.
const finalWait = 40 * time.Second

// Server serves both endpoints; it is an http.Handler for Config.Path and
// Config.JambonzPath.
type Server struct {
	cfg   Config
	adm   ingest.Admitter
	tr    Transcripts
	gate  *ingest.Gate
	token atomic.Pointer[string]

	ctx    context.Context // cancelled by Close: every session ends
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	active int
	wg     sync.WaitGroup // the sessions in progress
}

// NewServer prepares the endpoints; adm admits their calls, tr (nil: none)
// gives jambonz calls their results.
func NewServer(cfg Config, adm ingest.Admitter, tr Transcripts) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, errors.New("audiofork: config: " + err.Error())
	}
	s := &Server{cfg: cfg, adm: adm, tr: tr, gate: ingest.NewGate(cfg.ConnLimits)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.token.Store(&cfg.Token)
	return s, nil
}

// Paths are the fork's and jambonz's paths, to route to the server.
func (s *Server) Paths() []string { return []string{s.cfg.Path, s.cfg.JambonzPath} }

// SetToken replaces the token (empty: none); calls in progress go on.
func (s *Server) SetToken(token string) { s.token.Store(&token) }

// Active is the number of connections being served.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// authorized tells whether r carries the token: Bearer, Basic with it as
// the password, or the query parameter token.
func (s *Server) authorized(r *http.Request) bool {
	tok := *s.token.Load()
	if tok == "" {
		return true
	}
	got := r.Header.Get("Authorization")
	if _, pass, ok := r.BasicAuth(); ok {
		got = "Bearer " + pass
	} else if q := r.URL.Query().Get("token"); got == "" && q != "" { // forks that set no header (Vonage, mod_audio_stream)
		got = "Bearer " + q
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+tok)) == 1
}

// refuse answers a connection before its upgrade, counted.
func (s *Server) refuse(w http.ResponseWriter, source string, r *ingest.Refusal) {
	s.adm.Refused(source, r)
	r.WriteHTTP(w)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var source string
	switch r.URL.Path {
	case s.cfg.Path:
		source = SourceStream
	case s.cfg.JambonzPath:
		source = SourceJambonz
	default:
		http.NotFound(w, r)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callscribe"`)
		s.refuse(w, source, &ingest.Refusal{Reason: "unauthorized", HTTP: http.StatusUnauthorized, Detail: "a bearer token is required"})
		return
	}
	peer := ingest.PeerOf(r.RemoteAddr)
	if why := s.gate.Enter(peer); why != nil {
		s.refuse(w, source, why)
		return
	}
	defer s.gate.Leave(peer)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.refuse(w, source, ingest.ErrDraining)
		return
	}
	s.active++
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		s.wg.Done()
	}()
	if why := s.adm.Full(source); why != nil { // a 503 before the upgrade costs the platform least
		s.refuse(w, source, why)
		return
	}
	opts := &websocket.AcceptOptions{}
	if source == SourceStream {
		opts.Subprotocols = Subprotocols
	}
	conn, err := websocket.Accept(w, r, opts) // answers a request that is no upgrade itself
	if err != nil {
		s.adm.Refused(source, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: err.Error()})
		return
	}
	conn.SetReadLimit(int64(s.cfg.MaxMessageBytes))
	ss := &session{s: s, conn: conn, source: source, peer: peer, req: r, done: make(chan struct{})}
	ss.last.Store(time.Now().UnixNano())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		ss.watch()
	}()
	defer func() {
		if v := recover(); v != nil { // whatever the peer sends, a panic ends only this call
			s.cfg.Logger.Error("audiofork: session panicked", "source", source, "panic", v, "stack", string(debug.Stack()))
			ss.end("error")
			conn.Close(websocket.StatusInternalError, "internal error")
		}
		close(ss.done)
		<-watched
		conn.CloseNow()
	}()
	if source == SourceStream {
		ss.fork()
	} else {
		ss.jambonz()
	}
}

// Close ends every call (reason shutdown) and refuses new connections; it
// returns once their handlers are done. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// session is one connection, served on its handler's goroutine; its
// watcher ends it when it idles, outlasts its limit or the server closes.
type session struct {
	s      *Server
	conn   *websocket.Conn
	source string
	peer   netip.Addr
	req    *http.Request

	last    atomic.Int64 // unix nanos of the last message
	started atomic.Int64 // unix nanos of the admission; 0 before
	reason  atomic.Pointer[string]
	ticket  ingest.Ticket // set once admitted, before started
	endOnce sync.Once
	done    chan struct{}
}

// watch closes the connection when the first message is late, no message
// has come for the idle timeout, the call is over its length, or the
// server closes.
func (ss *session) watch() {
	cfg := &ss.s.cfg
	tick := time.NewTicker(min(200*time.Millisecond, cfg.StartTimeout/4, cfg.IdleTimeout/4))
	defer tick.Stop()
	for {
		select {
		case <-ss.done:
			return
		case <-ss.s.ctx.Done():
			ss.stop("shutdown", websocket.StatusGoingAway, "the gateway is shutting down")
			return
		case now := <-tick.C:
			idle := now.Sub(time.Unix(0, ss.last.Load()))
			switch start := ss.started.Load(); {
			case start == 0 && idle > cfg.StartTimeout:
				ss.stop("timeout", websocket.StatusPolicyViolation, "no first message in "+cfg.StartTimeout.String())
				return
			case start != 0 && idle > cfg.IdleTimeout:
				ss.stop("timeout", websocket.StatusPolicyViolation, "no message in "+cfg.IdleTimeout.String())
				return
			case start != 0 && now.Sub(time.Unix(0, start)) > cfg.MaxDuration:
				ss.stop("timeout", websocket.StatusPolicyViolation, "the call is longer than "+cfg.MaxDuration.String())
				return
			}
		}
	}
}

// stop ends the connection from the watcher: the reason first, for the
// reader to find when its read fails.
func (ss *session) stop(reason string, code websocket.StatusCode, text string) {
	if ss.reason.CompareAndSwap(nil, &reason) {
		ss.conn.Close(code, text)
	}
}

// endReason is why the call ended when a read failed with err.
func (ss *session) endReason(err error) string {
	if r := ss.reason.Load(); r != nil {
		return *r
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return "bye"
	}
	return "error" // a peer that vanished, a message over max_message_bytes
}

// end ends the admitted call once.
func (ss *session) end(reason string, stats ...media.LegStats) {
	if ss.ticket == nil {
		return
	}
	ss.endOnce.Do(func() { ss.ticket.End(reason, stats) })
}

// refused answers a connection admission or its first message refused:
// jambonz gets an error message first; the close code says whether to try
// again (1013), that the message was unreadable (1007) or neither (1008).
func (ss *session) refused(r *ingest.Refusal, counted bool) {
	if !counted {
		ss.s.adm.Refused(ss.source, r)
	}
	code := websocket.StatusPolicyViolation
	switch r.HTTP {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		code = websocket.StatusTryAgainLater
	case http.StatusBadRequest:
		code = websocket.StatusInvalidFramePayloadData
	}
	detail := r.Detail
	if detail == "" {
		detail = r.Reason
	}
	ss.reply(detail)
	ss.conn.Close(code, closeText(detail))
}

// reply sends an error message in the protocol's form (jambonz's, or
// mod_audio_fork's event with data), bounded in time.
func (ss *session) reply(detail string) {
	var msg any = map[string]any{"type": "error", "data": map[string]string{"error": detail}}
	if ss.source == SourceJambonz {
		msg = map[string]string{"type": "error", "error": detail}
	}
	ss.send(msg)
}

// send writes one JSON text message, waiting up to 5 s.
func (ss *session) send(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ss.s.ctx, 5*time.Second)
	defer cancel()
	return ss.conn.Write(ctx, websocket.MessageText, b)
}

// closeText fits a close frame's reason (123 bytes).
func closeText(s string) string {
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// first reads the first message.
func (ss *session) first() (websocket.MessageType, []byte, bool) {
	typ, b, err := ss.conn.Read(context.Background())
	if err != nil {
		reason := ss.endReason(err)
		if reason == "bye" {
			reason = "cancel"
		}
		ss.s.adm.Refused(ss.source, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: "no first message: " + reason})
		return 0, nil, false
	}
	ss.last.Store(time.Now().UnixNano())
	return typ, b, true
}

// admit asks admission for the call the first message described.
func (ss *session) admit(f Format) bool {
	t, err := ss.s.adm.Admit(ingest.Offer{ID: f.CallID, Source: ss.source, Peer: ss.peer, Legs: f.Legs,
		Hotwords: f.Hotwords, Keywords: f.Keywords, Redact: f.Redact})
	if err != nil {
		ss.refused(ingest.AsRefusal(err), true)
		return false
	}
	ss.ticket = t
	ss.started.Store(time.Now().UnixNano())
	return true
}

// startFields are call.start's fields of a call of format f.
func (ss *session) startFields(f Format) map[string]string {
	fields := map[string]string{"codec": "L16/" + strconv.Itoa(f.Rate), "mix": f.Mix}
	if p := ss.conn.Subprotocol(); p != "" {
		fields["subprotocol"] = p
	}
	for k, v := range f.Fields {
		fields[k] = v
	}
	return fields
}

// fork serves an audio fork: metadata (or the query alone when audio
// comes first), admission, then audio and control until either side ends.
func (ss *session) fork() {
	typ, b, ok := ss.first()
	if !ok {
		return
	}
	var f Format
	var err error
	if typ == websocket.MessageText {
		f, err = ParseMetadata(ss.req.URL.Query(), b)
		b = nil
	} else {
		f, err = ParseMetadata(ss.req.URL.Query(), nil)
	}
	if err != nil {
		ss.refused(&ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: err.Error()}, false)
		return
	}
	if reason, _ := ss.serve(f, b); reason == "bye" {
		ss.conn.Close(websocket.StatusNormalClosure, "")
	}
}

// serve runs an admitted call of format f whose first audio may be
// pending; it returns once the call has ended.
func (ss *session) serve(f Format, pending []byte) (reason string, p *pcm) {
	if !ss.admit(f) {
		return "", nil
	}
	sinks := make([]media.Sink, len(f.Legs))
	for i := range sinks {
		sinks[i] = ss.ticket.Sink(i)
	}
	p, err := newPCM(f.Rate, f.Channels, sinks)
	if err != nil { // a rate that parsed always resamples
		ss.end("error")
		ss.refused(&ingest.Refusal{Reason: "error", HTTP: http.StatusInternalServerError, Detail: err.Error()}, false)
		return "error", nil
	}
	ss.ticket.Start(ss.startFields(f))
	reason = ss.loop(p, pending)
	ss.end(reason, p.stats...)
	return reason, p
}

// loop reads the call's messages until it ends and says why: audio into
// the legs, DTMF, pause and resume, stop. A frame that is not whole
// samples ends the call (1007); a control message that cannot be read is
// answered with an error message and the call goes on.
func (ss *session) loop(p *pcm, pending []byte) string {
	if pending != nil {
		if err := p.write(pending, time.Now().UnixNano()); err != nil {
			ss.conn.Close(websocket.StatusInvalidFramePayloadData, closeText(err.Error()))
			return "error"
		}
	}
	for {
		typ, b, err := ss.conn.Read(context.Background())
		if err != nil {
			return ss.endReason(err)
		}
		now := time.Now().UnixNano()
		ss.last.Store(now)
		if typ == websocket.MessageBinary {
			if err := p.write(b, now); err != nil {
				ss.conn.Close(websocket.StatusInvalidFramePayloadData, closeText(err.Error()))
				return "error"
			}
			continue
		}
		c, err := ParseControl(b)
		if err != nil {
			ss.reply(err.Error())
			continue
		}
		switch c.Kind {
		case "dtmf":
			ss.ticket.DTMF(0, media.DTMF{Digit: c.Digit, StartMs: p.atMs(0), DurationMs: c.DurationMs})
		case "pause", "resume":
			ss.ticket.Pause(c.Kind == "pause", ss.source)
		case "stop":
			return "bye"
		}
	}
}
