package sip

// The peer's requests in a call's dialog, each taken by its call: re-INVITE
// (hold and resume, a new address, codec or keys), UPDATE (a session
// refresh) and INFO (DTMF, pause and resume). The server finds the call
// (dialogCall); a BYE is sipgo's dialog's own, which run sees.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/media"
)

// reinvite updates the call from a re-INVITE: hold and resume, a new
// address, codec or keys. One without SDP changes nothing (see reanswer).
func (c *Call) reinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if len(req.Body()) == 0 {
		c.reanswer(req, tx)
		return
	}
	offers, streams, warn := c.reoffer(req)
	if streams == nil {
		notAcceptable(tx, req, warn)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	choices := c.keepCodecs(streams)
	if choices == nil {
		notAcceptable(tx, req, "no common codec")
		return
	}
	hold := true
	for i, l := range c.Legs {
		if code := c.follow(l, choices[i], streams[i], sourceOf(req).Addr()); code != 0 {
			respond(tx, req, code, reasonPhrase(code))
			return
		}
		hold = hold && l.holds(streams[i])
	}
	c.hold.Store(hold)
	c.offers = offers
	c.refreshed.Store(time.Now().UnixNano())
	res := sipmsg.NewSDPResponseFromRequest(req, c.answerSDP(offers))
	c.finishResponse(req, res)
	tx.Respond(res)
}

// reanswer answers a re-INVITE without an offer (a session refresh, a
// delayed-offer re-INVITE): our current SDP is the offer in the 200 (RFC
// 3261 14.2); nothing changes.
func (c *Call) reanswer(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.mu.Lock()
	body := c.answerSDP(c.offers)
	c.mu.Unlock()
	c.refreshed.Store(time.Now().UnixNano())
	res := sipmsg.NewSDPResponseFromRequest(req, body)
	c.finishResponse(req, res)
	tx.Respond(res)
}

// reoffer reads a re-INVITE's offer under the SRTP policy: every m-line,
// and the audio streams, which must be one for each of the call's legs.
// Without streams, warn says why (a 488's Warning; "" for none).
func (c *Call) reoffer(req *sipmsg.Request) (offers, streams []Offer, warn string) {
	offers, _, err := readOffer(req)
	if err != nil {
		return nil, nil, ""
	}
	if err := selectStreams(offers, c.srv.cfg.SRTP); err != nil {
		return nil, nil, srtpWarning(c.srv.cfg.SRTP)
	}
	for _, o := range offers {
		if !o.Refused {
			streams = append(streams, o)
		}
	}
	if len(streams) != len(c.Legs) {
		return nil, nil, fmt.Sprintf("the call has %d audio streams", len(c.Legs))
	}
	return offers, streams, ""
}

// notAcceptable answers 488, with a Warning (304, media type not
// available) when warn says why.
func notAcceptable(tx sipmsg.ServerTransaction, req *sipmsg.Request, warn string) {
	if warn == "" {
		respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	respond(tx, req, 488, "Not Acceptable Here", sipmsg.NewHeader("Warning", `304 callscribe "`+warn+`"`))
}

// keepCodecs picks each stream's codec: its leg's own if the offer still
// has it, else the best one it has; nil when a stream has none we take.
// c.mu is held.
func (c *Call) keepCodecs(streams []Offer) []Choice {
	choices := make([]Choice, len(streams))
	for i, o := range streams {
		ch, err := Negotiate(o, append([]string{c.Legs[i].choice.Name}, c.srv.cfg.Codecs...))
		if err != nil {
			return nil
		}
		choices[i] = ch
	}
	return choices
}

// follow moves leg l to what the stream's new offer o says: the codec ch,
// its keys, RTCP multiplexing and, unless it holds, its address (from is
// the signalling peer's, which may latch). The media timeout counts from
// now. It returns 0, or the status to answer when the leg cannot follow.
// c.mu is held.
func (c *Call) follow(l *CallLeg, ch Choice, o Offer, from netip.Addr) int {
	if ch != l.choice {
		if err := l.Leg.Renegotiate(map[uint8]string{ch.PT: ch.Name}, ch.DTMFPT); err != nil {
			return 500
		}
		c.log.Info("sip: codec changed", "leg", l.Name, "from", l.choice.Name, "to", ch.Name)
		l.choice = ch
	}
	keys, changed, err := l.keyLeg(o)
	if err != nil {
		return 488
	}
	if changed {
		l.Leg.Rekey(keys)
	}
	l.rcv.SetMux(o.Mux)
	l.rcv.Touch()
	if !l.holds(o) {
		l.rcv.Expect(o.Addr, from, latchWindow)
		l.rcv.Relatch()
	}
	return 0
}

// update takes an UPDATE: a session refresh (RFC 4028).
func (c *Call) update(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c.refreshed.Store(time.Now().UnixNano())
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
	c.finishResponse(req, res)
	tx.Respond(res)
}

// info takes an INFO: pause or resume (ControlHeader), and DTMF
// (application/dtmf-relay: "Signal=5", "Duration=160"; application/dtmf:
// "5"), as Avaya and Cisco send it: a digit on the call's first leg, timed
// from the call's start. Other bodies are acknowledged and ignored.
func (c *Call) info(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(strings.TrimSpace(strings.Split(h.Value(), ";")[0]))
	}
	if h := req.GetHeader(ControlHeader); h != nil {
		// Pause and resume by INFO (an agent's desktop, a PBX feature code).
		switch strings.ToLower(strings.TrimSpace(h.Value())) {
		case "pause":
			c.ticket.Pause(true, "sip")
		case "resume":
			c.ticket.Pause(false, "sip")
		default:
			respond(tx, req, 400, "Bad Request: "+ControlHeader+" is pause or resume")
			return
		}
	}
	if d, ok := infoDigit(ct, string(req.Body())); ok {
		d.StartMs, d.OnCall = time.Since(c.Started).Milliseconds(), true
		c.ticket.DTMF(0, d)
	}
	respond(tx, req, 200, "OK")
}

// ControlHeader, in an INFO of a call, pauses ("pause") or resumes
// ("resume") its transcription.
const ControlHeader = "X-Callscribe-Control"

// infoDigit reads a digit from an INFO body.
func infoDigit(contentType, body string) (media.DTMF, bool) {
	var d media.DTMF
	switch contentType {
	case "application/dtmf-relay":
		for _, line := range strings.Split(body, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				v = strings.TrimSpace(v)
				if len(v) == 1 {
					d.Digit = v[0]
				}
			case "duration":
				d.DurationMs, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	case "application/dtmf":
		if v := strings.TrimSpace(body); len(v) == 1 {
			d.Digit = v[0]
		}
	}
	if d.Digit >= 'a' && d.Digit <= 'd' {
		d.Digit -= 'a' - 'A'
	}
	ok := d.Digit >= '0' && d.Digit <= '9' || d.Digit == '*' || d.Digit == '#' || d.Digit >= 'A' && d.Digit <= 'D'
	return d, ok
}
