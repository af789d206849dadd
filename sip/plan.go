package sip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// planner reads a new INVITE into a plan (see plan): what it asks for, and
// the refusal of what we cannot take, before anything is reserved.
type planner struct {
	cfg *Config
}

// A plan is what a new INVITE asks for: the streams we receive and how,
// who speaks on each, what admission is asked, the session timer. Opening
// the legs and answering need nothing more of the INVITE's body.
type plan struct {
	offer     ingest.Offer      // for admission: the call, its peer, its legs' names, its phrase lists
	source    netip.AddrPort    // where the INVITE came from
	offers    []Offer           // every m-line offered (ours for a delayed offer), in order
	streams   []Offer           // the audio streams we receive, in SDP order
	choices   []Choice          // each stream's codec
	senders   []Participant     // each stream's sender (SIPREC metadata), where known
	delayed   bool              // no SDP in the INVITE: we offer in the 200, the ACK answers
	recording bool              // a SIPREC session (a multipart INVITE with metadata)
	headers   map[string]string // the headers kept on the call record
	timer     sessionTimer
}

// sessionTimer is a call's session timer (RFC 4028): the call ends when not
// refreshed in time.
type sessionTimer struct {
	expires   time.Duration // 0: none
	refresher string        // "uac" (the caller refreshes) or "uas" (we do)
	timerOK   bool          // the caller supports session timers (Supported: timer)
}

// plan reads req, a new INVITE the guard let through.
func (p *planner) plan(req *sipmsg.Request, log *slog.Logger) (*plan, *ingest.Refusal) {
	pl := &plan{delayed: len(req.Body()) == 0, source: sourceOf(req)}
	meta, r := p.media(req, pl)
	if r != nil {
		return nil, r
	}
	pl.recording = meta != nil
	pl.headers = p.carried(req)
	pl.timer = p.timer(req)
	pl.senders = senders(meta, pl.streams, log)
	pl.offer = ingest.Offer{ID: callIDOf(req), Source: "sip", Peer: pl.source.Addr(), Legs: p.legNames(req, pl.senders, log)}
	p.phrases(req, &pl.offer)
	return pl, nil
}

// media reads the offer (ours for a delayed offer) into pl: the streams we
// receive and their codecs. meta is the SIPREC recording metadata, nil
// when there is none.
func (p *planner) media(req *sipmsg.Request, pl *plan) (meta []byte, r *ingest.Refusal) {
	// An INVITE without SDP is a delayed offer (Cisco CUBE/CUCM trunks): we
	// offer every codec we take in the 200 and the answer comes in the ACK.
	if pl.delayed {
		pl.offers = []Offer{p.ourOffer()}
	} else {
		var err error
		if pl.offers, meta, err = readOffer(req); err != nil {
			return nil, &ingest.Refusal{Reason: "bad_request", SIP: 400, Detail: err.Error()}
		}
		if err := selectStreams(pl.offers, p.cfg.SRTP); err != nil {
			return nil, &ingest.Refusal{Reason: "srtp", SIP: 488, Detail: srtpWarning(p.cfg.SRTP)}
		}
	}
	for _, o := range pl.offers {
		if o.Refused {
			continue
		}
		ch, err := Negotiate(o, p.cfg.Codecs)
		if err != nil {
			return nil, &ingest.Refusal{Reason: "codec", SIP: 488, Detail: "no common codec"}
		}
		pl.streams, pl.choices = append(pl.streams, o), append(pl.choices, ch)
	}
	if len(pl.streams) > maxStreams {
		return nil, &ingest.Refusal{Reason: "bad_request", SIP: 488, Detail: fmt.Sprintf("at most %d audio streams", maxStreams)}
	}
	return meta, nil
}

// senders are who sends each stream, as the SIPREC metadata says; zero
// Participants without it.
func senders(meta []byte, streams []Offer, log *slog.Logger) []Participant {
	out := make([]Participant, len(streams))
	if meta == nil {
		return out
	}
	bySender, err := streamSenders(meta)
	if err != nil { // the audio is still worth having
		log.Warn("sip: recording metadata not read", "err", err)
	}
	for i, o := range streams {
		out[i] = bySender[o.Label]
	}
	return out
}

// legNames names the streams: by their senders (see legNames), or as the
// caller's leg names header says.
func (p *planner) legNames(req *sipmsg.Request, senders []Participant, log *slog.Logger) []string {
	names := legNames(senders, p.cfg.AgentAORs)
	if p.cfg.LegNamesHeader == "" {
		return names
	}
	if h := req.GetHeader(p.cfg.LegNamesHeader); h != nil {
		if given, ok := parseLegNames(h.Value(), len(senders)); ok {
			return given
		}
		log.Info("sip: leg names header ignored", "header", p.cfg.LegNamesHeader, "value", h.Value())
	}
	return names
}

// phrases fills the call's own hotwords, keywords and redaction from the
// configured headers (every instance of each, joined).
func (p *planner) phrases(req *sipmsg.Request, o *ingest.Offer) {
	for _, h := range []struct {
		name string
		to   *string
	}{{p.cfg.HotwordsHeader, &o.Hotwords}, {p.cfg.KeywordsHeader, &o.Keywords}, {p.cfg.RedactHeader, &o.Redact}} {
		if h.name == "" {
			continue
		}
		var vals []string
		for _, v := range req.GetHeaders(h.name) {
			vals = append(vals, v.Value())
		}
		*h.to = strings.Join(vals, ",")
	}
}

// timer reads the session timer the caller asks for (the guard has checked
// it). RFC 4028 9: the caller refreshes when it supports timers and did not
// ask us to; a caller without timer support (a proxy such as Kamailio's
// sst module added the header) leaves it to us.
func (p *planner) timer(req *sipmsg.Request) sessionTimer {
	t := sessionTimer{refresher: "uas", timerOK: optionTag(req, "supported", "k", "timer")}
	t.expires, _ = sessionExpires(req, p.cfg.MinSE)
	if t.timerOK && !strings.Contains(strings.ToLower(headerValue(req, "session-expires", "x")), "refresher=uas") {
		t.refresher = "uac"
	}
	return t
}

// callIDOf is req's Call-ID, or "".
func callIDOf(req *sipmsg.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// maxStreams bounds the audio streams of one call (a SIPREC session of a
// conference may have several participants).
const maxStreams = 4

// readOffer reads an INVITE's offer: plain SDP, or a multipart body with
// the SDP and SIPREC recording metadata (meta nil when there is none).
func readOffer(req *sipmsg.Request) ([]Offer, []byte, error) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	body, meta, err := splitBody(ct, req.Body())
	if err != nil {
		return nil, nil, err
	}
	offers, err := ParseOffers(body)
	return offers, meta, err
}

// srtpWarning says why an offer's streams were all refused by policy.
func srtpWarning(policy string) string {
	switch policy {
	case SRTPRequired:
		return "SRTP is required: RTP/SAVP with a=crypto (SDES)"
	case SRTPOff:
		return "plain RTP/AVP only"
	}
	return "no audio stream we take: RTP/AVP, or RTP/SAVP with an a=crypto suite we know (no DTLS-SRTP)"
}

// ourOffer is what we offer when the caller did not: every configured
// codec (dynamic payload type 111 for Opus) and telephone-event, 101. It is
// RTP/SAVP when SRTP is required.
func (p *planner) ourOffer() Offer {
	o := Offer{Codecs: map[uint8]codec{}, Direction: "sendrecv", media: "audio", proto: "RTP/AVP"}
	if p.cfg.SRTP == SRTPRequired {
		suite, _ := media.LookupSRTPSuite("AES_CM_128_HMAC_SHA1_80")
		o.proto, o.Secure = "RTP/SAVP", true
		o.Crypto = []Crypto{{Tag: "1", Suite: suite, Key: media.NewSRTPKey(suite)}}
	}
	for _, name := range p.cfg.Codecs {
		switch strings.ToUpper(name) {
		case "PCMU":
			o.Codecs[0] = codec{"PCMU", 8000}
		case "PCMA":
			o.Codecs[8] = codec{"PCMA", 8000}
		case "G722":
			o.Codecs[9] = codec{"G722", 8000}
		case "OPUS":
			o.Codecs[111] = codec{"opus", 48000}
		}
	}
	o.Codecs[101] = codec{"telephone-event", 8000}
	return o
}

// carried are the headers of req kept on the call record.
func (p *planner) carried(req *sipmsg.Request) map[string]string {
	out := map[string]string{}
	for _, h := range req.Headers() {
		name := h.Name()
		for _, want := range p.cfg.CarryHeaders {
			if prefix, ok := strings.CutSuffix(want, "*"); ok && len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) ||
				strings.EqualFold(name, want) {
				out[name] = h.Value()
				break
			}
		}
	}
	return out
}

// headerValue is the first of the named headers (a full and a compact
// name), or "".
func headerValue(req *sipmsg.Request, names ...string) string {
	for _, n := range names {
		if h := req.GetHeader(n); h != nil {
			return h.Value()
		}
	}
	return ""
}

// optionTag tells whether a Supported/Require-style header lists tag.
func optionTag(req *sipmsg.Request, name, compact, tag string) bool {
	for _, n := range []string{name, compact} {
		for _, h := range req.GetHeaders(n) {
			for _, t := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(t), tag) {
					return true
				}
			}
		}
	}
	return false
}
