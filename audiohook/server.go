// Package audiohook takes Genesys Cloud AudioHook sessions (protocol
// version 2): a WebSocket whose text messages run the session (open,
// ping, pause, close) and whose binary messages carry the audio, one or
// two channels of PCMU or L16 at 8 kHz, into the legs of an admitted call;
// finals go back to the client as Transcription Connector events. It holds
// no recognition and no Redis: admission and transcripts come from the
// gateway through ingest and a feed of the call's events.
package audiohook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/transcript"
)

// Source is the call.start source of AudioHook sessions, and the label of
// their admission limits and metrics.
const Source = "audiohook"

// Feed subscribes to the events published for a call (the gateway's
// transcript.Publisher.Subscribe): the door sends its finals back to the
// client. stop ends the subscription; events is closed then or when the
// publisher closes.
type Feed func(callID string) (events <-chan transcript.Event, stop func())

// Server is the AudioHook endpoint; it is an http.Handler.
type Server struct {
	cfg    Config
	adm    ingest.Admitter
	feed   Feed
	verify *verifier
	gate   *ingest.Gate

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// NewServer prepares the endpoint: adm admits its calls, feed gives their
// events (nil: no transcripts are sent back).
func NewServer(cfg Config, adm ingest.Admitter, feed Feed) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("audiohook: config: %w", err)
	}
	secret, _ := cfg.secret()
	return &Server{cfg: cfg, adm: adm, feed: feed, verify: newVerifier(cfg.APIKey, secret, cfg.MaxSignatureAge),
		gate: ingest.NewGate(cfg.ConnLimits), sessions: map[*session]struct{}{}}, nil
}

// Active is the number of connections open (sessions, probes and those
// being refused).
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// refuseHTTP answers a request before the upgrade.
func (s *Server) refuseHTTP(w http.ResponseWriter, r *ingest.Refusal) {
	s.adm.Refused(Source, r)
	r.WriteHTTP(w)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.cfg.Path {
		http.NotFound(w, r)
		return
	}
	peer := ingest.PeerOf(r.RemoteAddr)
	if why := s.gate.Enter(peer); why != nil {
		s.refuseHTTP(w, why)
		return
	}
	defer s.gate.Leave(peer)
	// The session id is the call's id: a UUID in a header the signature
	// covers, and the id of every message.
	id, _ := header(r, "Audiohook-Session-Id")
	if !IsUUID(id) {
		s.refuseHTTP(w, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest,
			Detail: "Audiohook-Session-Id: want a UUID"})
		return
	}
	authErr := s.verify.verify(r, time.Now())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.refuseHTTP(w, ingest.ErrDraining)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the request
	}
	conn.SetReadLimit(int64(max(s.cfg.MaxMessageBytes, s.cfg.MaxFrameBytes)) + 1)
	org, _ := header(r, "Audiohook-Organization-Id")
	sess := newSession(r.Context(), s, conn, id, org, peer, authErr)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.cancel()
		conn.Close(websocket.StatusTryAgainLater, "shutting down")
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Close refuses new connections and ends every session (disconnect, call
// end reason shutdown): their last finals are sent back, then the
// connections close. It returns once every connection's goroutines are
// done. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*session, 0, len(s.sessions))
	for v := range s.sessions {
		all = append(all, v)
	}
	s.mu.Unlock()
	for _, v := range all {
		v.shutdown()
	}
	s.wg.Wait()
	return nil
}

// ctxWrite bounds a write to a client that does not read.
func ctxWrite(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, 5*time.Second)
}
