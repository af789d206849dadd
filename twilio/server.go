// Package twilio ingests calls over Twilio Media Streams (and the platforms
// that copied it): a WebSocket whose JSON messages carry a call's tracks as
// base64 G.711, each track a leg decoded like RTP by media.Leg. Streams are
// checked (signature, rate, limits) before the upgrade and admitted by an
// ingest.Admitter at their start message; it holds no recognition.
package twilio

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
)

// Source is the call.start source of the door's calls.
const Source = "twilio"

// Server is the Media Streams endpoint; it is an http.Handler.
type Server struct {
	cfg  Config
	adm  ingest.Admitter
	gate *ingest.Gate

	mu     sync.Mutex
	conns  map[*conn]struct{} // every stream's connection, started or not
	calls  map[string]*Stream // started streams by id
	closed bool
	wg     sync.WaitGroup // the connections' handlers
}

// conn is one upgraded connection: its stream once started.
type conn struct {
	ws   *websocket.Conn
	peer netip.Addr

	mu       sync.Mutex
	shutdown bool // Close asked the stream to end
}

// NewServer prepares the endpoint; adm admits its streams.
func NewServer(cfg Config, adm ingest.Admitter) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("twilio: config: %w", err)
	}
	return &Server{cfg: cfg, adm: adm, gate: ingest.NewGate(cfg.ConnLimits),
		conns: map[*conn]struct{}{}, calls: map[string]*Stream{}}, nil
}

// Path is where the endpoint is served.
func (s *Server) Path() string { return s.cfg.Path }

// Active is the number of connections open, started or not.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Lookup is the started stream with this id, or nil.
func (s *Server) Lookup(id string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// The refusals the door makes before the upgrade.
var (
	errMethod    = &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusMethodNotAllowed, Detail: "a Media Stream is a WebSocket GET"}
	errBearer    = &ingest.Refusal{Reason: "unauthorized", HTTP: http.StatusUnauthorized, Detail: "a bearer token is required"}
	errSignature = &ingest.Refusal{Reason: "forbidden", HTTP: http.StatusForbidden, Detail: "X-Twilio-Signature is missing or does not sign this URL"}
	errUpgrade   = &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusUpgradeRequired, Detail: "not a WebSocket upgrade"}
)

// ServeHTTP checks an upgrade request (method, bearer token, signature,
// rate, limits and capacity), refusing it with an HTTP answer, and serves
// the stream on this goroutine once upgraded.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.cfg.Path {
		http.NotFound(w, r)
		return
	}
	peer := ingest.PeerOf(r.RemoteAddr)
	if why := s.check(r); why != nil {
		s.refuse(w, why)
		return
	}
	if why := s.gate.Enter(peer); why != nil {
		s.refuse(w, why)
		return
	}
	defer s.gate.Leave(peer)
	if why := s.adm.Full(Source); why != nil {
		s.refuse(w, why)
		return
	}
	c, why := s.reserve(peer)
	if why != nil {
		s.refuse(w, why)
		return
	}
	defer s.release(c)
	ws, err := websocket.Accept(w, r, nil) // answers a request that is no upgrade itself
	if err != nil {
		s.adm.Refused(Source, errUpgrade)
		return
	}
	ws.SetReadLimit(int64(s.cfg.MaxMessageBytes))
	c.mu.Lock()
	c.ws = ws
	shutdown := c.shutdown
	c.mu.Unlock()
	if shutdown { // Close came between the reservation and the upgrade
		ws.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	s.serve(c)
}

// check is why an upgrade request is refused before anything is counted,
// or nil.
func (s *Server) check(r *http.Request) *ingest.Refusal {
	if r.Method != http.MethodGet {
		return errMethod
	}
	if tok := s.cfg.BearerToken; tok != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+tok)) != 1 {
		return errBearer
	}
	if tok := s.cfg.AuthToken; tok != "" {
		sig, ok := r.Header.Get("X-Twilio-Signature"), false
		for _, u := range signedURLs(s.cfg.PublicURL, r) {
			ok = ValidSignature(tok, u, nil, sig) || ok
		}
		if !ok {
			return errSignature
		}
	}
	return nil
}

// reserve counts a connection from peer, or refuses it: the door is
// closed.
func (s *Server) reserve(peer netip.Addr) (*conn, *ingest.Refusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ingest.ErrDraining
	}
	c := &conn{peer: peer}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, nil
}

// release forgets a connection whose handler is done.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// refuse answers an upgrade request that is not taken, and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *ingest.Refusal) {
	s.adm.Refused(Source, r)
	if r == errBearer {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callscribe"`)
	}
	r.WriteHTTP(w)
}

// Close stops taking streams and ends those open (reason shutdown: a
// WebSocket close 1001 to each peer); it returns once their handlers are
// done. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var closing sync.WaitGroup
	for _, c := range conns {
		c.mu.Lock()
		c.shutdown = true
		ws := c.ws
		c.mu.Unlock()
		if ws != nil {
			closing.Go(func() { ws.Close(websocket.StatusGoingAway, "shutting down") })
		}
	}
	closing.Wait()
	s.wg.Wait()
	return nil
}

// stopping tells whether Close asked this connection's stream to end.
func (c *conn) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shutdown
}

// closeCode is the WebSocket close code of a refusal after the upgrade:
// 1013 (try again later) where an HTTP answer would have been 503.
func closeCode(r *ingest.Refusal) websocket.StatusCode {
	switch r.HTTP {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return websocket.StatusTryAgainLater
	case http.StatusInternalServerError:
		return websocket.StatusInternalError
	}
	return websocket.StatusPolicyViolation
}

// reason cuts a close reason to the 123 bytes a close frame has room for.
func reason(s string) string {
	if len(s) > 123 {
		s = s[:123]
	}
	return s
}

// errVanished says the peer stopped sending: no message for idle_timeout.
var errVanished = errors.New("twilio: no message from the peer")

// read reads the next message within d; a peer silent that long has
// vanished.
func read(ctx context.Context, ws *websocket.Conn, d time.Duration) (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return typ, b, errVanished
	}
	return typ, b, err
}
