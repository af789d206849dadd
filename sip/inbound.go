package sip

// The inbound call from its admission to its confirmation: the legs opened,
// the INVITE's dialog made, ringing, the 200 and the wait for its ACK (and
// the answer it brings to a delayed offer).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// latchWindow is how long after an answer the signalling peer's IP may
// latch a leg from a port its SDP did not announce (a peer behind NAT).
const latchWindow = 5 * time.Second

// newInbound makes the call pl describes, admitted with ticket, and opens
// its legs (on failure none stays open).
func (s *Server) newInbound(pl *plan, ticket ingest.Ticket, log *slog.Logger) (*Call, error) {
	c := &Call{srv: s, log: log, ticket: ticket, SIPCallID: pl.offer.ID, Source: pl.source, Headers: pl.headers,
		Codec: pl.choices[0].Name, Recording: pl.recording, sessID: randUint64(), done: make(chan struct{}),
		sessionTimer: pl.timer, offers: pl.offers}
	c.refreshed.Store(time.Now().UnixNano())
	hold := true
	for i, o := range pl.streams {
		if err := c.addLeg(i, pl, o); err != nil {
			c.closeLegs()
			return nil, err
		}
		hold = hold && c.Legs[i].holds(o)
	}
	c.hold.Store(hold)
	return c, nil
}

// addLeg opens stream i, offered as o, as the call's next leg.
func (c *Call) addLeg(i int, pl *plan, o Offer) error {
	l := &CallLeg{Name: pl.offer.Legs[i], Label: o.Label, Sender: pl.senders[i], choice: pl.choices[i], normal: o.Direction}
	if pl.delayed { // the answer may pick any codec we offered
		l.decodes = map[uint8]string{}
		for pt, c := range o.Codecs {
			if !strings.EqualFold(c.name, "telephone-event") {
				l.decodes[pt] = c.name
			}
		}
	}
	var ours *Crypto
	if pl.delayed && o.Secure { // our offer: the peer's key comes with its answer
		ours, o.Secure = &o.Crypto[0], false
	}
	if err := c.openLeg(i, l, o); err != nil {
		return err
	}
	l.rcv.Expect(o.Addr, pl.source.Addr(), latchWindow)
	if ours != nil {
		l.crypto = ours
	}
	c.Legs = append(c.Legs, l)
	return nil
}

// openLeg binds stream i's RTP and RTCP sockets and starts receiving them
// into the admission's sink.
func (c *Call) openLeg(i int, l *CallLeg, o Offer) error {
	s := c.srv
	keys, _, err := l.keyLeg(o)
	if err != nil {
		return err
	}
	pair, err := s.ports.ListenPair(s.cfg.MediaIP)
	if err != nil {
		return err
	}
	release := func() {
		pair.RTP.Close()
		pair.RTCP.Close()
		s.ports.Release(pair.RTP.LocalAddr().(*net.UDPAddr).Port)
	}
	lo := s.cfg.Leg
	lo.SRTP = keys
	lo.PayloadTypes = map[uint8]string{l.choice.PT: l.choice.Name}
	if l.decodes != nil {
		lo.PayloadTypes = l.decodes
	}
	lo.DTMFPayloadType = l.choice.DTMFPT
	lo.DTMFClockRate = l.choice.DTMFClock
	lo.Sink = c.ticket.Sink(i)
	lo.OnDTMF = func(d media.DTMF) { c.ticket.DTMF(i, d) }
	leg, err := media.NewLeg(lo)
	if err != nil {
		release()
		return err
	}
	var rcv *media.Receiver
	if s.poll != nil {
		if rcv, err = s.poll.Add(pair, leg, s.ports); err != nil {
			release()
			return err
		}
	} else {
		rcv = media.NewReceiver(pair, leg, s.ports)
	}
	rcv.SetMux(o.Mux)
	l.Leg, l.rcv = leg, rcv
	return nil
}

// answer answers the INVITE: 100, then 180 while Config.AnswerDelay holds
// the 200 back, the 200 with our SDP (our offer for a delayed offer) and
// the wait for its ACK. A confirmed call runs on a goroutine of its own.
func (c *Call) answer(req *sipmsg.Request, tx sipmsg.ServerTransaction, pl *plan) {
	if !c.ring(req, tx) {
		return
	}
	body := c.answerSDP(pl.offers)
	if pl.delayed {
		c.delayed = true
		c.Codec = "" // the answer in the ACK picks it
		body = c.offerSDP()
	}
	res := sipmsg.NewSDPResponseFromRequest(c.dlg.InviteRequest, body)
	c.finishResponse(req, res)
	if !c.srv.register(c) {
		c.unanswered("shutdown")
		respond(tx, req, 503, "Service Unavailable", sipmsg.NewHeader("Retry-After", "5"))
		return
	}
	c.Started = time.Now()
	if !pl.delayed { // a delayed offer's codec is known from the ACK on
		c.ticket.Start(c.fields())
	}
	if !c.confirm(res) {
		return
	}
	if pl.delayed {
		c.mu.Lock()
		c.Codec = c.Legs[0].choice.Name
		fields := c.fields()
		c.mu.Unlock()
		c.ticket.Start(fields)
	}
	go c.run()
}

// ring makes the INVITE's dialog, says 100 and, while Config.AnswerDelay
// holds the 200 back, 180. It tells whether the call is still to be
// answered: a CANCEL gives it up (the transaction answers 487).
func (c *Call) ring(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	cancelled := make(chan struct{})
	var once sync.Once
	tx.OnCancel(func(*sipmsg.Request) { once.Do(func() { close(cancelled) }) })
	dlg, err := c.srv.dlgs.ReadInvite(req, tx)
	if err != nil {
		c.closeLegs()
		c.ticket.End("error", nil)
		respond(tx, req, 400, "Bad Request", warning(sanitize(err.Error())))
		return false
	}
	c.dlg = dlg
	if f := req.From(); f != nil {
		c.From = f.Address.String()
	}
	if t := req.To(); t != nil {
		c.To = t.Address.String()
	}
	c.provisional(req, 100, "Trying")
	if c.srv.cfg.AnswerDelay <= 0 {
		return true
	}
	c.provisional(req, 180, "Ringing")
	select {
	case <-time.After(c.srv.cfg.AnswerDelay):
		return true
	case <-cancelled:
	case <-tx.Done():
	}
	c.unanswered("cancel")
	return false
}

// confirm sends the 200 until the ACK comes (RFC 3261 13.3.1.4) and tells
// whether it came. A call without it in Config.AckTimeout, or at shutdown
// (which does not wait for it), is hung up with a BYE.
func (c *Call) confirm(res *sipmsg.Response) bool {
	s := c.srv
	acked := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		acked <- c.dlg.WriteResponse(res)
	}()
	ackWait := time.NewTimer(s.cfg.AckTimeout)
	defer ackWait.Stop()
	var err error
	select {
	case err = <-acked:
	case <-ackWait.C:
		err = errors.New("no ACK in time")
	case <-s.ctx.Done():
		err = context.Canceled
	}
	if err == nil {
		return true
	}
	reason := "timeout" // no ACK: the dialog is ended with a BYE
	if s.ctx.Err() != nil {
		reason = "shutdown"
	}
	c.log.Info("sip: call not confirmed", "err", err, "reason", reason)
	c.hangup(reason)
	s.callWG.Done()
	return false
}

// provisional sends a 1xx with the Contact of the transport the INVITE came
// over (sipgo would put its default, UDP one).
func (c *Call) provisional(req *sipmsg.Request, code int, reason string) {
	res := sipmsg.NewResponseFromRequest(c.dlg.InviteRequest, code, reason, nil)
	if h := c.srv.contactFor(req.Transport()); h != nil {
		res.AppendHeader(h)
	}
	c.dlg.WriteResponse(res)
}

// unanswered gives up a call before its 200: media closed, slot freed.
func (c *Call) unanswered(reason string) {
	c.closeLegs()
	c.dlg.Close()
	c.ticket.End(reason, nil)
}

// takeAnswer reads the SDP answer an ACK brings to our offer (a delayed
// offer): the peer's media address (what may latch) and its codec.
func (c *Call) takeAnswer(req *sipmsg.Request) {
	if !c.delayed {
		return
	}
	ans, err := ParseOffers(req.Body())
	if err != nil {
		c.log.Info("sip: answer in ACK not read", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, o := range ans {
		if o.Refused || k >= len(c.Legs) {
			continue
		}
		l := c.Legs[k]
		k++
		if ch, err := Negotiate(o, c.srv.cfg.Codecs); err == nil {
			l.choice = ch
		}
		if l.crypto != nil { // we offered SRTP: the answer keys what the peer sends
			if err := l.takeKey(o); err != nil {
				c.log.Warn("sip: SRTP answer not usable", "err", err)
			}
		}
		l.rcv.Expect(o.Addr, sourceOf(req).Addr(), latchWindow)
	}
	c.offers = ans
}

func randUint64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}
