package sip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// Call is one inbound call, from its admission on: it answers its INVITE
// (inbound.go), runs until it ends (session.go) and takes the peer's
// requests in its dialog (dialog.go). Its exported fields are set by the
// time it starts.
type Call struct {
	SIPCallID string
	From, To  string
	Source    netip.AddrPort // where the INVITE came from
	Headers   map[string]string
	Codec     string // the first stream's, negotiated at answer (a re-INVITE may move a leg to another)
	// Legs are the call's audio streams in SDP order: one for a plain
	// call, one per participant for a SIPREC recording session.
	Legs []*CallLeg
	// Recording tells a SIPREC session (a multipart INVITE with metadata).
	Recording bool
	Started   time.Time

	srv *Server      // the call's server: its sockets, dialogs, configuration
	log *slog.Logger // with the call's id
	sessionTimer
	offers    []Offer      // the last offer, answered again by an SDP-less re-INVITE
	delayed   bool         // the INVITE had no SDP: we offered in the 200
	refreshed atomic.Int64 // unix nanos of the last INVITE/UPDATE
	dlg       *sipgo.DialogServerSession
	ticket    ingest.Ticket // the call's admission: sinks, DTMF, end
	hold      atomic.Bool
	ver       atomic.Uint64
	sessID    uint64
	mu        sync.Mutex // guards the legs' choices
	reqMu     sync.Mutex // one request of ours built at a time (each takes the next CSeq)
	done      chan struct{}
	reason    string
}

// CallLeg is one audio stream of a call.
type CallLeg struct {
	Name   string      // caller, callee; agent, customer (see Config.AgentAORs)
	Label  string      // the stream's SDP a=label (SIPREC), if any
	Sender Participant // who sends it (SIPREC metadata), if known
	Leg    *media.Leg

	rcv     *media.Receiver
	crypto  *Crypto          // SRTP: our a=crypto (the offer's tag and suite, our key); nil for RTP
	peerKey []byte           // SRTP: the key the peer sends with
	choice  Choice           // the codec now in use
	decodes map[uint8]string // a delayed offer's: every payload type offered
	normal  string           // the direction first offered
}

// holds tells whether an offer of the stream puts it on hold: inactive, a
// 0.0.0.0 address, or sendonly where the call began otherwise. A recording
// session's streams are sendonly from the start; that is not hold.
func (l *CallLeg) holds(o Offer) bool {
	if o.Direction == "sendonly" && l.normal == "sendonly" {
		return false
	}
	return o.Hold
}

// OnHold tells whether the peer has put the call on hold.
func (c *Call) OnHold() bool { return c.hold.Load() }

// Done is closed when the call has ended; Reason tells why.
func (c *Call) Done() <-chan struct{} { return c.done }

// Reason is why the call ended: bye, timeout, keepalive (the peer stopped
// answering while the call had no media), shutdown, error.
func (c *Call) Reason() string {
	select {
	case <-c.done:
		return c.reason
	default:
		return ""
	}
}

// keyLeg sets up a stream's SRTP from an offer of it: the first usable
// a=crypto line (the offerer's preference) and our key for its suite. The
// keys in use, offered again, change nothing (a fresh context would lose
// the rollover count). keys is nil for plain RTP; changed says whether the
// leg must take keys.
func (l *CallLeg) keyLeg(o Offer) (keys *media.SRTP, changed bool, err error) {
	if !o.Secure || len(o.Crypto) == 0 {
		changed = l.crypto != nil
		l.crypto, l.peerKey = nil, nil
		return nil, changed, nil
	}
	if l.crypto != nil {
		for _, c := range o.Crypto {
			if c.Suite == l.crypto.Suite && bytes.Equal(c.Key, l.peerKey) {
				l.crypto.Tag = c.Tag
				return nil, false, nil
			}
		}
	}
	want := o.Crypto[0]
	ours := &Crypto{Tag: want.Tag, Suite: want.Suite}
	if l.crypto != nil && l.crypto.Suite == want.Suite {
		ours.Key = l.crypto.Key
	} else {
		ours.Key = media.NewSRTPKey(want.Suite)
	}
	if keys, err = media.NewSRTP(want.Suite, want.Key, ours.Key); err != nil {
		return nil, false, err
	}
	l.crypto, l.peerKey = ours, want.Key
	return keys, true, nil
}

// takeKey keys the leg from the answer to our SRTP offer: the crypto line
// with our tag and suite.
func (l *CallLeg) takeKey(ans Offer) error {
	for _, c := range ans.Crypto {
		if c.Tag == l.crypto.Tag && c.Suite == l.crypto.Suite {
			keys, err := media.NewSRTP(c.Suite, c.Key, l.crypto.Key)
			if err != nil {
				return err
			}
			l.peerKey = c.Key
			l.Leg.Rekey(keys)
			return nil
		}
	}
	return fmt.Errorf("%w: no a=crypto answering tag %s", ErrSRTP, l.crypto.Tag)
}

// fields describe the call for call.start.
func (c *Call) fields() map[string]string {
	f := map[string]string{"from": c.From, "to": c.To, "sip_call_id": c.SIPCallID, "codec": c.Codec}
	for k, v := range c.Headers {
		f["hdr:"+k] = v
	}
	if c.Recording {
		f["recording"] = "siprec"
	}
	senders := map[string]Participant{}
	for _, l := range c.Legs {
		if l.Sender != (Participant{}) {
			senders[l.Name] = l.Sender
		}
	}
	if len(senders) > 0 {
		b, _ := json.Marshal(senders)
		f["participants"] = string(b)
	}
	return f
}

// closeLegs stops receiving every stream (their ports go back); the legs'
// counters are final after it.
func (c *Call) closeLegs() {
	for _, l := range c.Legs {
		l.rcv.Close()
	}
}

// stats are the legs' packet counters; final once closeLegs returned.
func (c *Call) stats() []media.LegStats {
	out := make([]media.LegStats, len(c.Legs))
	for i, l := range c.Legs {
		out[i] = l.rcv.Stats()
	}
	return out
}

// answerSDP is the SDP answer to offers (every m-line, in order): each stream
// we receive at its port, the rest refused.
func (c *Call) answerSDP(offers []Offer) []byte {
	streams := make([]AnswerStream, 0, len(offers))
	k := 0
	for _, o := range offers {
		if o.Refused || k >= len(c.Legs) {
			streams = append(streams, AnswerStream{Offer: o})
			continue
		}
		l := c.Legs[k]
		k++
		streams = append(streams, AnswerStream{Port: l.rcv.LocalAddr().Port(), Choice: l.choice, Offer: o, Crypto: l.crypto})
	}
	return AnswerStreams(c.Legs[0].rcv.LocalAddr().Addr(), streams, c.sessID, c.ver.Add(1))
}

// offerSDP is our offer of a delayed-offer call: its one stream with every
// codec we take.
func (c *Call) offerSDP() []byte {
	l := c.Legs[0]
	ip := l.rcv.LocalAddr().Addr()
	family := "IP4"
	if ip.Is6() && !ip.Is4In6() {
		family = "IP6"
	}
	pts := make([]int, 0, len(l.decodes))
	for pt := range l.decodes {
		pts = append(pts, int(pt))
	}
	slices.Sort(pts)
	var b strings.Builder
	proto := "RTP/AVP"
	if l.crypto != nil {
		proto = "RTP/SAVP"
	}
	fmt.Fprintf(&b, "v=0\r\no=callscribe %d %d IN %s %s\r\ns=callscribe\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d %s",
		c.sessID, c.ver.Add(1), family, ip, family, ip, l.rcv.LocalAddr().Port(), proto)
	for _, pt := range pts {
		fmt.Fprintf(&b, " %d", pt)
	}
	b.WriteString(" 101\r\n")
	for _, pt := range pts {
		name := l.decodes[uint8(pt)]
		if strings.EqualFold(name, "opus") {
			fmt.Fprintf(&b, "a=rtpmap:%d opus/48000/2\r\n", pt)
		} else {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", pt, name)
		}
	}
	b.WriteString("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=recvonly\r\n")
	if l.crypto != nil {
		b.WriteString(l.crypto.attribute())
	}
	return []byte(b.String())
}

// idle is how long the call has had no RTP on any stream.
func (c *Call) idle() time.Duration {
	d := c.Legs[0].rcv.Idle()
	for _, l := range c.Legs[1:] {
		d = min(d, l.rcv.Idle())
	}
	return d
}

// LocalRTP is the first stream's RTP address (what the SDP answer announced).
func (c *Call) LocalRTP() netip.AddrPort { return c.Legs[0].rcv.LocalAddr() }

// LocalRTP is the stream's RTP address.
func (l *CallLeg) LocalRTP() netip.AddrPort { return l.rcv.LocalAddr() }

// finishResponse completes our 2xx to the INVITE, a re-INVITE or an
// UPDATE: our Contact, and the session timer (RFC 4028 9: every 2xx to a
// refresh carries Session-Expires).
func (c *Call) finishResponse(req *sipmsg.Request, res *sipmsg.Response) {
	if h := c.srv.contactFor(req.Transport()); h != nil {
		res.AppendHeader(h)
	}
	if c.expires > 0 {
		res.AppendHeader(sipmsg.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(c.expires.Seconds()), c.refresher)))
		if c.timerOK {
			res.AppendHeader(sipmsg.NewHeader("Require", "timer"))
		}
	}
}
