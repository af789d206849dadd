package sip

// The call's life once confirmed: its loop (run), our session refreshes,
// our requests in its dialog, and its end (hangup).

import (
	"context"
	"fmt"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// run is the call's loop: it ends on BYE, media timeout, session expiry,
// a peer gone silent (keepalive) or shutdown, then hangs the call up.
func (c *Call) run() {
	s := c.srv
	defer s.callWG.Done()
	ka := newKeepalive(s.cfg.KeepaliveInterval, s.cfg.KeepaliveMisses)
	probes, stopProbes := context.WithCancel(s.ctx)
	tick := time.NewTicker(c.checkEvery(ka))
	defer tick.Stop()
	// As the refresher we refresh at half the interval (RFC 4028 10).
	var refresh <-chan time.Time
	if c.expires > 0 && c.refresher == "uas" {
		t := time.NewTicker(c.expires / 2)
		defer t.Stop()
		refresh = t.C
	}
	reason := ""
	for reason == "" {
		select {
		case <-c.dlg.Context().Done():
			reason = "bye"
		case <-s.ctx.Done():
			reason = "shutdown"
		case <-refresh:
			c.refresh()
		case gone := <-ka.done():
			if ka.settle(gone) {
				c.log.Info("sip: the peer is gone", "failed_keepalives", s.cfg.KeepaliveMisses)
				reason = "keepalive"
			}
		case now := <-tick.C:
			if reason = c.check(now); reason == "" {
				c.checkPeer(probes, ka, now)
			}
		}
	}
	stopProbes()
	ka.stop()
	c.log.Info("sip: call ended", "reason", reason, "duration", time.Since(c.Started))
	c.hangup(reason)
}

// checkEvery is how often run checks the call: at least every second, and
// four times in its media timeout, session interval and keepalive interval.
func (c *Call) checkEvery(ka *keepalive) time.Duration {
	every := min(time.Second, c.srv.cfg.MediaTimeout/4)
	if c.expires > 0 {
		every = min(every, c.expires/4)
	}
	if ka.every > 0 {
		every = min(every, ka.every/4)
	}
	return every
}

// check sends the legs' receiver reports due at now (every 5 s) and tells
// why the call must end: "timeout" when it has had no media for
// Config.MediaTimeout while not on hold or its session was not refreshed in
// time; "" while it goes on.
func (c *Call) check(now time.Time) string {
	for _, l := range c.Legs {
		l.rcv.SendReport(now) // a failure is the peer's loss
	}
	reason := ""
	if !c.OnHold() && c.idle() > c.srv.cfg.MediaTimeout {
		reason = "timeout"
	}
	if c.expires > 0 && time.Since(time.Unix(0, c.refreshed.Load())) > c.expires {
		c.log.Info("sip: session not refreshed", "session_expires", c.expires)
		reason = "timeout"
	}
	return reason
}

// refresh refreshes the session timer as its refresher: an UPDATE in the
// dialog; a 2xx restarts the interval.
func (c *Call) refresh() {
	req := c.request(sipmsg.UPDATE)
	req.AppendHeader(sipmsg.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=uas", int(c.expires.Seconds()))))
	if c.timerOK {
		req.AppendHeader(sipmsg.NewHeader("Supported", "timer"))
	}
	ctx, cancel := context.WithTimeout(c.srv.ctx, 5*time.Second)
	defer cancel()
	res, err := c.do(ctx, req)
	if err != nil || !res.IsSuccess() {
		c.srv.refreshFailed.Add(1)
		c.log.Warn("sip: session refresh failed", "err", err, "response", res)
		return
	}
	c.refreshed.Store(time.Now().UnixNano())
}

// hangup ends the call: media closed, the admission told (with the legs'
// final counters, so call.end goes out and the slot is free at once), then
// BYE unless the peer sent it.
func (c *Call) hangup(reason string) {
	s := c.srv
	c.closeLegs()
	c.reason = reason
	s.forget(c)
	close(c.done)
	c.ticket.End(reason, c.stats())
	if reason != "bye" {
		// The BYE must go out even when the server's context is done.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
		if err := c.dlg.WriteBye(ctx, c.request(sipmsg.BYE)); err != nil {
			s.byeFailed.Add(1)
			c.log.Warn("sip: BYE not answered", "reason", reason, "err", err)
		}
		cancel()
	}
	c.dlg.Close()
}

// request is a request of ours in c's dialog (BYE, UPDATE, OPTIONS) to the
// peer's Contact, or the INVITE's Request-URI without one. Over TCP and TLS
// it goes back on the connection the INVITE came in on (RFC 5923's reuse,
// what SBCs and phones behind NAT expect), not a new one to the Contact,
// which often takes no connections.
func (c *Call) request(method sipmsg.RequestMethod) *sipmsg.Request {
	inv := c.dlg.InviteRequest
	target := inv.Recipient
	if h := inv.Contact(); h != nil {
		target = h.Address
	}
	req := sipmsg.NewRequest(method, target)
	req.SetTransport(inv.Transport())
	if t := strings.ToUpper(inv.Transport()); t == "TCP" || t == "TLS" {
		req.SetDestination(inv.Source())
	}
	return req
}

// do sends req in c's dialog and returns its final answer. Requests are
// built one at a time: two built at once (a refresh and a keepalive) could
// take the same CSeq.
func (c *Call) do(ctx context.Context, req *sipmsg.Request) (*sipmsg.Response, error) {
	c.reqMu.Lock()
	tx, err := c.dlg.TransactionRequest(ctx, req)
	c.reqMu.Unlock()
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			return nil, tx.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
