// Package sip answers calls from a SIP trunk on emiago/sipgo: INVITE with
// SDP offer/answer, ACK, BYE, CANCEL, OPTIONS, hold by re-INVITE, access
// control, media timeout, keepalive of calls without media. Calls are
// admitted by an ingest.Admitter before they are answered; each leg's audio
// goes to the sink the admission gave.
package sip

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// Server is the SIP user agent server. It listens (listener.go) and hands
// each request on: a new INVITE goes through the guard (guard.go: a
// refusal or nothing) and the planner (plan.go: the streams, the legs, the
// admission's offer) to admission, then to its Call, which answers it
// (inbound.go), runs until it ends (session.go) and takes the peer's
// requests in its dialog (dialog.go).
type Server struct {
	cfg     Config
	adm     ingest.Admitter
	guard   *guard
	planner *planner
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	dlgs    *sipgo.DialogServerCache
	ports   *media.Ports
	poll    *media.Poller // nil: a goroutine per leg

	mu      sync.Mutex
	calls   map[string]*Call
	closed  bool
	callWG  sync.WaitGroup // registered calls, until hung up
	wg      sync.WaitGroup // listeners and other helpers
	ctx     context.Context
	cancel  context.CancelFunc
	addrs   []net.Addr
	closers []io.Closer // listeners, closed by Close
	panics  atomic.Int64

	byeFailed, refreshFailed atomic.Int64
}

// NewServer prepares a server whose calls adm admits; Listen starts it.
func NewServer(cfg Config, adm ingest.Admitter) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sip: config: %w", err)
	}
	ports, err := media.NewPorts(cfg.RTPPorts.Lo, cfg.RTPPorts.Hi)
	if err != nil {
		return nil, fmt.Errorf("sip: config: rtp_ports: %w", err)
	}
	tlsClient, err := cfg.TLSClient.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("sip: config: %w", err)
	}
	liftUDPLimit()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callscribe"), sipgo.WithUserAgenTLSConfig(tlsClient))
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Logger))
	if err != nil {
		ua.Close()
		return nil, err
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(cfg.Logger))
	if err != nil {
		ua.Close()
		return nil, err
	}
	cli.TxRequester = requester{ua: ua, log: cfg.Logger} // large requests over TCP
	s := &Server{cfg: cfg, adm: adm, guard: newGuard(&cfg), planner: &planner{}, ua: ua, srv: srv, cli: cli, ports: ports, calls: map[string]*Call{}}
	s.planner.cfg = &s.cfg
	if cfg.RTPReadWorkers > 0 {
		if s.poll, err = media.NewPoller(cfg.RTPReadWorkers); err != nil {
			ua.Close()
			return nil, err
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv.OnInvite(s.safe(s.onInvite))
	srv.OnAck(s.safe(s.onAck))
	srv.OnBye(s.safe(s.onBye))
	srv.OnOptions(s.safe(s.onOptions))
	srv.OnUpdate(s.safe(s.onUpdate))
	srv.OnInfo(s.safe(s.onInfo))
	srv.OnNoRoute(s.safe(s.onOther))
	return s, nil
}

// Listen binds the configured addresses and serves them until Close. It
// returns once the sockets are bound (an error names the one that failed).
func (s *Server) Listen() error {
	var serve []func()
	for _, listen := range []func() (func(), error){s.listenUDP, s.listenTCP, s.listenTLS} {
		f, err := listen()
		if err != nil {
			for _, c := range s.closers {
				c.Close()
			}
			return err
		}
		if f != nil {
			serve = append(serve, f)
		}
	}
	// The Contact of our answers names the bound address; set it before
	// the first request can arrive.
	s.setContact()
	for _, f := range serve {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f()
		}()
	}
	return nil
}

// Addrs are the bound listen addresses (Network: udp, tcp or tls).
func (s *Server) Addrs() []net.Addr { return s.addrs }

// Close hangs up every call (reason shutdown, BYE sent) and stops the
// server. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.callWG.Wait() // every call hung up, its BYE sent
	err := s.srv.Close()
	for _, c := range s.closers {
		c.Close()
	}
	if s.poll != nil {
		s.poll.Close()
	}
	s.ua.Close()
	s.wg.Wait()
	return err
}

// ByeFailures counts our BYEs that got no 2xx (the peer gone, a TLS
// connection that could not be made or verified); each is logged.
func (s *Server) ByeFailures() int64 { return s.byeFailed.Load() }

// RefreshFailures counts our session refreshes (UPDATE) that got no 2xx.
func (s *Server) RefreshFailures() int64 { return s.refreshFailed.Load() }

// Panics is the number of requests whose handling panicked (and was
// contained).
func (s *Server) Panics() int64 { return s.panics.Load() }

// Call is the live call with this Call-ID, or nil.
func (s *Server) Call(sipCallID string) *Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[sipCallID]
}

// ActiveCalls is the number of calls in progress.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// SetAccess replaces the digest users and the allowed source CIDRs (a
// configuration reload): new requests meet them, calls in progress go on.
// Any goroutine.
func (s *Server) SetAccess(users map[string]string, allow []netip.Prefix) {
	s.guard.setAccess(users, allow)
}

// allowed are the methods we take.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"

// safe runs a request handler so that a panic on any input ends only that
// request: logged with its stack, counted (Panics), answered 500.
func (s *Server) safe(h func(*sipmsg.Request, sipmsg.ServerTransaction)) func(*sipmsg.Request, sipmsg.ServerTransaction) {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		defer func() {
			if v := recover(); v != nil {
				s.panics.Add(1)
				s.cfg.Logger.Error("sip: handler panicked", "method", req.Method, "source", req.Source(), "panic", v,
					"stack", string(debug.Stack()))
				if req.Method != sipmsg.ACK {
					respond(tx, req, 500, "Server Internal Error")
				}
			}
		}()
		h(req, tx)
	}
}

// onInvite takes an INVITE: a new call, or a re-INVITE in a call's dialog.
func (s *Server) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if r := malformed(req); r != nil {
		s.refuse(tx, req, r)
		return
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		s.inDialog(req, tx, (*Call).reinvite)
		return
	}
	s.newCall(req, tx)
}

// newCall takes a new INVITE through the guard, the planner and admission
// (the slot is reserved before anything is bound or answered), opens its
// legs and lets the call answer.
func (s *Server) newCall(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	log := s.cfg.Logger.With("call_id", callIDOf(req))
	r, done := s.guard.invite(req, log)
	if r != nil {
		s.refuse(tx, req, r)
		return
	}
	defer done()
	pl, r := s.planner.plan(req, log)
	if r != nil {
		s.refuse(tx, req, r)
		return
	}
	ticket, err := s.adm.Admit(pl.offer)
	if err != nil {
		r := ingest.AsRefusal(err)
		s.guard.respond(tx, req, r)
		log.Info("sip: call refused", "reason", r.Reason)
		return
	}
	c, err := s.newInbound(pl, ticket, log)
	if err != nil {
		ticket.End("error", nil)
		log.Error("sip: no media for the call", "err", err)
		s.guard.respond(tx, req, &ingest.Refusal{Reason: "error", SIP: 503, RetryAfter: 5 * time.Second, Detail: "no media port"})
		return
	}
	c.answer(req, tx, pl)
}

// register makes c one of the calls, unless the server is closing.
func (s *Server) register(c *Call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.calls[c.SIPCallID] = c
	s.callWG.Add(1) // done by hangup's caller
	return true
}

// forget ends c's place among the calls.
func (s *Server) forget(c *Call) {
	s.mu.Lock()
	if s.calls[c.SIPCallID] == c {
		delete(s.calls, c.SIPCallID)
	}
	s.mu.Unlock()
}

// onAck takes an ACK: it confirms the call's dialog (our 200 is no longer
// resent) and brings the answer to our offer of a delayed-offer call.
func (s *Server) onAck(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if len(req.Body()) > 0 { // an answer to our offer (a delayed offer)
		if c := s.callOf(req); c != nil {
			c.takeAnswer(req)
		}
	}
	s.dlgs.ReadAck(req, tx)
}

// onBye ends a dialog at the peer's request. Its CSeq must not be older
// than the peer's last request's (500 otherwise, RFC 3261 12.2.2, as for
// re-INVITE and UPDATE): the call goes on.
func (s *Server) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.rejectMalformed(req, tx) {
		return
	}
	dlg, err := s.dlgs.MatchDialogRequest(req)
	if err != nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if err := dlg.ReadRequest(req, tx); err != nil {
		respondOutOfOrder(tx, req)
		return
	}
	if err := dlg.ReadBye(req, tx); err != nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
	}
}

// onUpdate hands an UPDATE to its call (Call.update).
func (s *Server) onUpdate(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if !s.rejectMalformed(req, tx) {
		s.inDialog(req, tx, (*Call).update)
	}
}

// onInfo hands an INFO to its call (Call.info).
func (s *Server) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if !s.rejectMalformed(req, tx) {
		s.inDialog(req, tx, (*Call).info)
	}
}

// inDialog hands a request in a call's dialog to the call's handler h
// (see dialogCall for what is answered otherwise).
func (s *Server) inDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction, h func(*Call, *sipmsg.Request, sipmsg.ServerTransaction)) {
	if c := s.dialogCall(req, tx); c != nil {
		h(c, req, tx)
	}
}

// dialogCall finds the call a request inside a dialog belongs to: its
// Call-ID and both tags must be the dialog's (481 otherwise), and its CSeq
// not older than the peer's last one (500, RFC 3261 12.2.2). Only the
// dialog's peer knows the tags: a stranger naming a live Call-ID gets 481.
func (s *Server) dialogCall(req *sipmsg.Request, tx sipmsg.ServerTransaction) *Call {
	c := s.callOf(req)
	if c == nil {
		s.cfg.Logger.Info("sip: request outside any dialog", "method", req.Method, "source", req.Source())
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return nil
	}
	if err := c.dlg.ReadRequest(req, tx); err != nil {
		respondOutOfOrder(tx, req)
		return nil
	}
	return c
}

// callOf is the live call whose dialog req is in (its Call-ID and both
// tags), or nil.
func (s *Server) callOf(req *sipmsg.Request) *Call {
	dlg, err := s.dlgs.MatchDialogRequest(req)
	if err != nil || req.CallID() == nil {
		return nil
	}
	s.mu.Lock()
	c := s.calls[req.CallID().Value()]
	s.mu.Unlock()
	if c == nil || c.dlg != dlg {
		return nil
	}
	return c
}

// onOptions answers keepalives. A load balancer probing with OPTIONS (e.g.
// Kamailio's dispatcher) gets 503 while no new call would be admitted
// (draining, at a limit, out of capacity), so it sends them elsewhere.
func (s *Server) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.rejectMalformed(req, tx) {
		return
	}
	s.mu.Lock()
	busy := s.closed
	s.mu.Unlock()
	if busy || s.adm.Full("sip") != nil {
		respond(tx, req, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", "5"), sipmsg.NewHeader("Allow", allowed))
		return
	}
	respond(tx, req, 200, "OK", sipmsg.NewHeader("Allow", allowed), sipmsg.NewHeader("Accept", "application/sdp"))
}

// onOther answers the methods we do not take.
func (s *Server) onOther(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.rejectMalformed(req, tx) {
		return
	}
	respond(tx, req, 405, "Method Not Allowed", sipmsg.NewHeader("Allow", allowed))
}

// refuse answers an INVITE the server itself does not take, and counts it.
func (s *Server) refuse(tx sipmsg.ServerTransaction, req *sipmsg.Request, r *ingest.Refusal) {
	s.adm.Refused("sip", r)
	s.guard.respond(tx, req, r)
}

// rejectMalformed answers a request that is not sane (see malformed) and
// tells whether it did. Not counted: no call was asked for.
func (s *Server) rejectMalformed(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	r := malformed(req)
	if r != nil {
		s.guard.respond(tx, req, r)
	}
	return r != nil
}
