package audiosocket

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// Source is the calls' source: the metrics' label and call.start's
// source.
const Source = "audiosocket"

// LegName names a connection's one leg: AudioSocket carries the audio
// Asterisk reads from the channel, one direction, mono.
const LegName = "caller"

// Connections that have not yet said which call they are hold no slot,
// only a goroutine and a socket for up to StartTimeout: bounded apart.
const (
	maxPending        = 256
	maxPendingPerPeer = 16
)

// writeTimeout bounds the one message we send, before we close: a peer
// that does not read cannot hold a connection open.
const writeTimeout = time.Second

// The refusals the door makes itself (admission makes the rest).
var (
	errForbidden = &ingest.Refusal{Reason: "forbidden", SIP: 403, HTTP: 403, Detail: "address not in audiosocket.allow_cidrs"}
	errBusy      = &ingest.Refusal{Reason: "limit", SIP: 503, HTTP: 503, Detail: "too many connections waiting for their UUID"}
	errNoHello   = &ingest.Refusal{Reason: "timeout", SIP: 408, HTTP: 408, Detail: "no UUID message in time"}
)

// Server takes AudioSocket connections on its listener.
type Server struct {
	cfg     Config
	adm     ingest.Admitter
	gate    *ingest.Gate
	formats map[Kind]format
	ln      net.Listener

	mu        sync.Mutex
	conns     map[*conn]struct{}
	byID      map[string]*conn // the calls admitted
	pending   int
	pendingBy map[netip.Addr]int
	closed    bool
	wg        sync.WaitGroup
	panics    atomic.Int64
}

// NewServer prepares the door; adm admits its calls. Listen opens it.
func NewServer(cfg Config, adm ingest.Admitter) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("audiosocket: config: %w", err)
	}
	fm, err := formats(&cfg)
	if err != nil {
		return nil, fmt.Errorf("audiosocket: config: %w", err)
	}
	return &Server{cfg: cfg, adm: adm, gate: ingest.NewGate(cfg.ConnLimits), formats: fm,
		conns: map[*conn]struct{}{}, byID: map[string]*conn{}, pendingBy: map[netip.Addr]int{}}, nil
}

// Listen binds the configured address and takes connections on a
// goroutine of its own until Close.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("audiosocket: listen %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("audiosocket: closed")
	}
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go s.accept(ln)
	return nil
}

// Addr is the bound address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Active is the number of open connections, calls and those waiting for
// their UUID.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Panics counts the connections whose handling panicked (ended, reason
// error): a bug, which the tests require to be 0.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Close stops taking connections and ends every call (reason shutdown,
// a hangup message to Asterisk); it returns once every connection's
// goroutine is done. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: wait, as net/http does.
			s.cfg.Logger.Warn("audiosocket: accept", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.take(nc)
	}
}

// take polices a new connection before a byte is read from it, and gives
// the ones it lets in a goroutine.
func (s *Server) take(nc net.Conn) {
	peer := ingest.PeerOf(nc.RemoteAddr().String())
	why := errForbidden
	if s.cfg.allowed(peer) {
		why = s.gate.Enter(peer)
	}
	entered := why == nil
	c := &conn{s: s, nc: nc, peer: peer, stopped: make(chan struct{})}
	s.mu.Lock()
	switch {
	case why != nil:
	case s.closed:
		why = ingest.ErrDraining
	case s.pending >= maxPending || s.pendingBy[peer] >= maxPendingPerPeer:
		why = errBusy
	default:
		s.pending++
		s.pendingBy[peer]++
		c.pending = true
		s.conns[c] = struct{}{}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if why != nil {
		if entered {
			s.gate.Leave(peer)
		}
		s.adm.Refused(Source, why)
		c.refuse(why)
		return
	}
	go c.serve()
}

// admitted moves c from the connections waiting for their UUID to the
// calls.
func (s *Server) admitted(c *conn) {
	s.mu.Lock()
	s.unpend(c)
	s.byID[c.id] = c
	s.mu.Unlock()
}

// call is the admitted call with this id, or nil.
func (s *Server) call(id string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// unpend forgets c as waiting. s.mu held.
func (s *Server) unpend(c *conn) {
	if !c.pending {
		return
	}
	c.pending = false
	s.pending--
	if s.pendingBy[c.peer]--; s.pendingBy[c.peer] <= 0 {
		delete(s.pendingBy, c.peer)
	}
}

func (s *Server) done(c *conn) {
	s.mu.Lock()
	s.unpend(c)
	delete(s.conns, c)
	if s.byID[c.id] == c {
		delete(s.byID, c.id)
	}
	s.mu.Unlock()
	s.gate.Leave(c.peer)
	s.wg.Done()
}

// conn is one connection: a call once its UUID is admitted.
type conn struct {
	s       *Server
	nc      net.Conn
	peer    netip.Addr
	pending bool // under s.mu

	stopOnce sync.Once
	stopped  chan struct{} // closed by stop: the door is closing
	id       string
	ticket   ingest.Ticket
	leg      *leg
	live     bool // Start was called
	began    time.Time
}

// stop makes the connection's reader return (reason shutdown). Any
// goroutine.
func (c *conn) stop() {
	c.stopOnce.Do(func() {
		close(c.stopped)
		c.nc.SetReadDeadline(time.Unix(1, 0))
	})
}

func (c *conn) stopping() bool {
	select {
	case <-c.stopped:
		return true
	default:
		return false
	}
}

// send writes one message and closes the connection; a peer that does not
// read gets writeTimeout.
func (c *conn) sendAndClose(k Kind, payload []byte) {
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.nc.Write(AppendMessage(nil, k, payload))
	c.nc.Close()
}

// refuse answers a connection that is not taken: an error message naming
// the reason and saying why ("limit: call limit reached"), then the close.
func (c *conn) refuse(r *ingest.Refusal) { c.sendAndClose(KindError, []byte(r.Reason+": "+r.Detail)) }

// serve is the connection's goroutine: the UUID, admission, then the
// call's messages until it ends.
func (c *conn) serve() {
	defer c.s.done(c)
	log := c.s.cfg.Logger.With("peer", c.peer)
	// Whatever the peer sends, a panic ends only this connection.
	defer func() {
		if v := recover(); v != nil {
			c.s.panics.Add(1)
			log.Error("audiosocket: connection panicked", "call_id", c.id, "panic", v, "stack", string(debug.Stack()))
			c.end("error", KindError, []byte("error"))
		}
	}()
	r := NewReader(bufio.NewReaderSize(c.nc, 4096))
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.StartTimeout))
	var m Message
	var err error
	if !c.stopping() { // stop's deadline may have come before ours
		m, err = r.Next()
	}
	switch {
	case c.stopping():
		c.sendAndClose(KindHangup, nil)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.s.adm.Refused(Source, errNoHello)
		c.refuse(errNoHello)
		return
	case err == io.EOF: // a probe that connected and left
		c.nc.Close()
		return
	case err == nil && m.Kind != KindUUID:
		err = fmt.Errorf("%w: %s before the UUID", ErrMalformed, m.Kind)
	}
	if err == nil {
		c.id, err = ParseUUID(m.Payload)
	}
	if err != nil {
		log.Info("audiosocket: connection refused", "err", err)
		r := &ingest.Refusal{Reason: "bad_request", SIP: 400, HTTP: 400, Detail: err.Error()}
		c.s.adm.Refused(Source, r)
		c.refuse(r)
		return
	}
	c.ticket, err = c.s.adm.Admit(ingest.Offer{ID: c.id, Source: Source, Peer: c.peer, Legs: []string{LegName}})
	if err != nil {
		r := ingest.AsRefusal(err) // admission counted it
		log.Info("audiosocket: call refused", "call_id", c.id, "reason", r.Reason)
		c.refuse(r)
		return
	}
	c.s.admitted(c)
	c.began = time.Now()
	c.leg = newLeg(c.ticket.Sink(0), c.s.formats)
	reason, reply, detail := c.run(r)
	if reason != "bye" && reason != "shutdown" {
		log.Info("audiosocket: call ended", "call_id", c.id, "reason", reason, "detail", detail)
	}
	c.end(reason, reply, []byte(detail))
}

// end ends the call: the last audio to the sink, the message to the peer
// (none for KindHangup after the peer's own hangup), the slot.
func (c *conn) end(reason string, reply Kind, payload []byte) {
	if c.leg != nil {
		c.leg.flush()
	}
	if reply == KindHangup && reason == "bye" {
		c.nc.Close()
	} else {
		c.sendAndClose(reply, payload)
	}
	if c.ticket != nil {
		var stats []media.LegStats
		if c.leg != nil {
			stats = []media.LegStats{c.leg.stats}
		}
		c.ticket.End(reason, stats)
		c.ticket = nil
	}
}

// run reads the call's messages until it ends, and says why (call.end's
// reason), what to send the peer last, and a detail for the log (the
// payload of an error message).
func (c *conn) run(r *Reader) (reason string, reply Kind, detail string) {
	cfg := &c.s.cfg
	deadline := c.began.Add(cfg.MaxDuration)
	for {
		d := time.Now().Add(cfg.IdleTimeout)
		if deadline.Before(d) {
			d = deadline
		}
		c.nc.SetReadDeadline(d)
		if c.stopping() { // stop's deadline may have come before ours
			return "shutdown", KindHangup, ""
		}
		m, err := r.Next()
		if c.stopping() {
			return "shutdown", KindHangup, ""
		}
		switch {
		case err == io.EOF: // the channel hung up: Asterisk closes the socket
			return "bye", KindHangup, ""
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !time.Now().Before(deadline) {
				return "timeout", KindHangup, "max_duration"
			}
			return "timeout", KindError, "idle"
		case errors.Is(err, ErrMalformed):
			c.leg.stats.Malformed++
			return "error", KindError, err.Error()
		case err != nil: // reset, or closed inside a message
			return "error", KindError, err.Error()
		}
		switch {
		case m.Kind.IsAudio():
			if !c.live { // before the first audio reaches the sink, which drops audio before Start
				f, err := c.leg.check(m.Kind, m.Payload)
				if err != nil {
					c.leg.stats.Malformed++
					return "error", KindError, err.Error()
				}
				c.live = true
				c.ticket.Start(map[string]string{"codec": f.name})
			}
			if err := c.leg.audio(m.Kind, m.Payload, time.Now().UnixNano()); err != nil {
				return "error", KindError, err.Error()
			}
		case m.Kind == KindDTMF:
			d, err := ParseDTMF(m.Payload)
			if err != nil {
				c.leg.stats.Malformed++
				return "error", KindError, err.Error()
			}
			c.leg.stats.DTMF++
			if !c.live {
				c.live = true
				c.ticket.Start(nil)
			}
			c.ticket.DTMF(0, media.DTMF{Digit: d, StartMs: c.leg.dtmfAt()})
		case m.Kind == KindHangup:
			return "bye", KindHangup, ""
		case m.Kind == KindError:
			if len(m.Payload) == 1 && m.Payload[0]&ErrCodeHangup != 0 { // Asterisk: the caller hung up
				return "bye", KindHangup, ""
			}
			return "error", KindHangup, fmt.Sprintf("the peer's error %x", m.Payload)
		default: // a second UUID, or a kind the protocol does not have
			c.leg.stats.Malformed++
			return "error", KindError, fmt.Sprintf("%v: %s during the call", ErrMalformed, m.Kind)
		}
	}
}
