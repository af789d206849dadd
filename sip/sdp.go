package sip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/callscribe/callscribe/media"
)

var (
	// ErrBadSDP is wrapped by errors about an SDP body that cannot be read.
	ErrBadSDP = errors.New("sip: bad SDP")
	// ErrNoCommonCodec means the offer has no codec we decode (488).
	ErrNoCommonCodec = errors.New("sip: no common codec")
	// ErrSRTP means no audio stream of the offer is one the SRTP policy
	// takes: plain RTP where SRTP is required, SRTP without a usable key
	// or where it is off (488).
	ErrSRTP = errors.New("sip: no audio stream the SRTP policy takes")
)

// SRTP policies (Config.SRTP).
const (
	SRTPOff      = "off"      // plain RTP only; RTP/SAVP streams are refused
	SRTPOffer    = "offer"    // SRTP when the caller offers it; our own offers are plain
	SRTPRequired = "required" // SRTP only: plain RTP is refused, our offers are RTP/SAVP
)

// selectStreams applies the SRTP policy to the audio streams of an offer:
// a stream the policy does not take is marked Refused (answered with port
// 0), and of an RTP/AVP and RTP/SAVP pair offering the same stream (next to
// each other, the same label) only one is kept: SRTP unless the policy is
// off. At least one stream must remain.
func selectStreams(offers []Offer, policy string) error {
	takes := func(o Offer) bool {
		if o.Secure {
			return policy != SRTPOff && len(o.Crypto) > 0
		}
		return policy != SRTPRequired
	}
	for i := 0; i+1 < len(offers); i++ {
		a, b := &offers[i], &offers[i+1]
		if a.Refused || b.Refused || a.Secure == b.Secure || a.Label != b.Label {
			continue
		}
		plain, secure := a, b
		if a.Secure {
			plain, secure = b, a
		}
		if takes(*secure) {
			plain.Refused = true
		} else {
			secure.Refused = true
		}
		i++
	}
	left := 0
	for i := range offers {
		if !offers[i].Refused && !takes(offers[i]) {
			offers[i].Refused = true
		}
		if !offers[i].Refused {
			left++
		}
	}
	if left == 0 {
		return ErrSRTP
	}
	return nil
}

// Offer is what Callscribe needs of one audio stream of an SDP offer.
type Offer struct {
	Addr      netip.AddrPort  // where the peer's RTP comes from/goes to
	Codecs    map[uint8]codec // offered payload types
	Direction string          // sendrecv, sendonly, recvonly, inactive
	Hold      bool            // sendonly/inactive or a 0.0.0.0 address
	Label     string          // a=label: names the stream (SIPREC)
	// Secure is an RTP/SAVP(F) stream: SRTP keyed by its a=crypto lines
	// (SDES, RFC 4568), Crypto those we can use, in the offer's order.
	Secure bool
	Crypto []Crypto
	Mux    bool // a=rtcp-mux: RTCP on the RTP port (RFC 5761)

	// An m-line we do not take (not audio, or port 0) is answered with
	// port 0: Refused, with its media, protocol and formats.
	Refused      bool
	media, proto string
	formats      []string
}

// Crypto is one usable a=crypto line: its tag, suite and inline key
// (master key and salt).
type Crypto struct {
	Tag   string
	Suite media.SRTPSuite
	Key   []byte
}

// attribute is the a=crypto line of c (ends in CRLF).
func (c Crypto) attribute() string {
	return fmt.Sprintf("a=crypto:%s %s inline:%s\r\n", c.Tag, c.Suite.Name, base64.StdEncoding.EncodeToString(c.Key))
}

// parseCrypto reads "<tag> <suite> inline:<key>[|lifetime] [params]". A
// line we cannot honour (an unknown suite, several keys, an MKI, session
// parameters) is not usable: RFC 4568 6.1 has the answerer skip it.
func parseCrypto(v string) (Crypto, bool) {
	f := strings.Fields(v)
	if len(f) != 3 || !strings.HasPrefix(f[2], "inline:") {
		return Crypto{}, false
	}
	if _, err := strconv.ParseUint(f[0], 10, 31); err != nil || len(f[0]) > 9 {
		return Crypto{}, false
	}
	suite, ok := media.LookupSRTPSuite(f[1])
	if !ok {
		return Crypto{}, false
	}
	key, rest, _ := strings.Cut(strings.TrimPrefix(f[2], "inline:"), "|")
	if strings.Contains(rest, ":") || strings.Contains(key, ";") { // an MKI; several keys
		return Crypto{}, false
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(key); err != nil {
			return Crypto{}, false
		}
	}
	if len(raw) != suite.KeyLen() {
		return Crypto{}, false
	}
	return Crypto{Tag: f[0], Suite: suite, Key: raw}, true
}

type codec struct {
	name  string
	clock int
}

// static payload types of RFC 3551 that offers may leave without rtpmap.
var staticPT = map[uint8]codec{0: {"PCMU", 8000}, 8: {"PCMA", 8000}, 9: {"G722", 8000}}

// ParseOffer reads the first audio stream of an SDP offer.
func ParseOffer(body []byte) (Offer, error) {
	all, err := ParseOffers(body)
	if err != nil {
		return Offer{}, err
	}
	for _, o := range all {
		if !o.Refused {
			return o, nil
		}
	}
	return Offer{}, fmt.Errorf("%w: no RTP/AVP or RTP/SAVP audio stream", ErrBadSDP)
}

// ParseOffers reads every m-line of an SDP offer, in order. The audio ones
// with a port are the streams to receive (a SIPREC offer has one per
// participant); the others are Refused. At least one must be audio.
func ParseOffers(body []byte) ([]Offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	var out []Offer
	audio, foreign := 0, 0
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value <= 0 || !rtpProfile(m.MediaName.Protos) {
			out = append(out, Offer{Refused: true, media: m.MediaName.Media, proto: strings.Join(m.MediaName.Protos, "/"),
				formats: m.MediaName.Formats})
			if m.MediaName.Media == "audio" && m.MediaName.Port.Value > 0 {
				foreign++ // audio, in a profile we do not take (DTLS-SRTP)
			}
			continue
		}
		o, err := parseStream(&sd, m)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
		audio++
	}
	if audio == 0 && foreign == 0 {
		return nil, fmt.Errorf("%w: no audio stream", ErrBadSDP)
	}
	return out, nil
}

// rtpProfile tells the RTP profiles we take: RTP/AVP and RTP/SAVP, with or
// without feedback (F). DTLS-SRTP (UDP/TLS/RTP/SAVP) is refused.
func rtpProfile(protos []string) bool {
	switch strings.ToUpper(strings.Join(protos, "/")) {
	case "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF":
		return true
	}
	return false
}

func parseStream(sd *sdp.SessionDescription, m *sdp.MediaDescription) (Offer, error) {
	conn := sd.ConnectionInformation
	if m.ConnectionInformation != nil {
		conn = m.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return Offer{}, fmt.Errorf("%w: no connection address", ErrBadSDP)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(strings.Split(conn.Address.Address, "/")[0]))
	if err != nil {
		return Offer{}, fmt.Errorf("%w: connection address %q", ErrBadSDP, conn.Address.Address)
	}
	if m.MediaName.Port.Value > 65535 {
		return Offer{}, fmt.Errorf("%w: port %d", ErrBadSDP, m.MediaName.Port.Value)
	}
	o := Offer{Addr: netip.AddrPortFrom(ip, uint16(m.MediaName.Port.Value)), Codecs: map[uint8]codec{}, Direction: "sendrecv",
		media: "audio", proto: strings.Join(m.MediaName.Protos, "/"), formats: m.MediaName.Formats}
	o.Secure = strings.HasPrefix(strings.ToUpper(o.proto), "RTP/SAVP")
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		if c, ok := staticPT[uint8(pt)]; ok {
			o.Codecs[uint8(pt)] = c
		}
	}
	for _, a := range append(append([]sdp.Attribute{}, sd.Attributes...), m.Attributes...) {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			o.Direction = a.Key
		case "label":
			o.Label = strings.TrimSpace(a.Value)
		case "rtcp-mux":
			o.Mux = true
		case "crypto":
			if c, ok := parseCrypto(a.Value); ok && len(o.Crypto) < 16 {
				o.Crypto = append(o.Crypto, c)
			}
		case "rtpmap":
			if pt, c, ok := rtpmap(m, a.Value); ok {
				o.Codecs[pt] = c
			}
		}
	}
	o.Hold = o.Direction == "sendonly" || o.Direction == "inactive" || ip.IsUnspecified()
	return o, nil
}

// rtpmap reads an a=rtpmap value of m, "<pt> <name>/<clock>[/<channels>]",
// for a payload type m offers.
func rtpmap(m *sdp.MediaDescription, v string) (uint8, codec, bool) {
	ptStr, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, codec{}, false
	}
	pt, err := strconv.ParseUint(ptStr, 10, 7)
	if err != nil {
		return 0, codec{}, false
	}
	parts := strings.Split(rest, "/")
	clock := 0
	if len(parts) > 1 {
		clock, _ = strconv.Atoi(parts[1])
	}
	if clock <= 0 || !offered(m, ptStr) {
		return 0, codec{}, false
	}
	return uint8(pt), codec{name: parts[0], clock: clock}, true
}

func offered(m *sdp.MediaDescription, pt string) bool {
	for _, f := range m.MediaName.Formats {
		if f == pt {
			return true
		}
	}
	return false
}

// Choice is the negotiated codec of a call.
type Choice struct {
	PT     uint8
	Name   string
	Clock  int
	DTMFPT int // -1 when the offer has no telephone-event
	// DTMFClock is the telephone-event's clock: the codec's when offered
	// so, else the one offered (telephone-event/8000 beside opus/48000).
	DTMFClock int
}

// Negotiate picks the first codec of prefs the offer has.
func Negotiate(o Offer, prefs []string) (Choice, error) {
	for _, want := range prefs {
		best := -1
		for pt, c := range o.Codecs {
			if strings.EqualFold(c.name, want) && (best < 0 || int(pt) < best) {
				best = int(pt)
			}
		}
		if best < 0 {
			continue
		}
		c := o.Codecs[uint8(best)]
		ch := Choice{PT: uint8(best), Name: c.name, Clock: c.clock, DTMFPT: -1}
		// telephone-event at the codec's clock first; else at any clock.
		for _, sameClock := range []bool{true, false} {
			for pt, d := range o.Codecs {
				if strings.EqualFold(d.name, "telephone-event") && (d.clock == c.clock || !sameClock) && (ch.DTMFPT < 0 || int(pt) < ch.DTMFPT) {
					ch.DTMFPT, ch.DTMFClock = int(pt), d.clock
				}
			}
			if ch.DTMFPT >= 0 {
				break
			}
		}
		return ch, nil
	}
	return Choice{}, ErrNoCommonCodec
}

// answerDirection answers an offer's direction (RFC 3264 6.1) for a party
// that only listens: recvonly, or inactive when the peer will not send.
func answerDirection(offer string) string {
	switch offer {
	case "recvonly", "inactive":
		return "inactive"
	}
	return "recvonly"
}

// AnswerStream is one m-line of an answer: a stream we receive on Port
// with Choice, or (Port 0) the refusal of an offered m-line.
type AnswerStream struct {
	Port   uint16
	Choice Choice
	Offer  Offer // the offered stream it answers
	// Crypto is our a=crypto of an SRTP stream: the tag and suite taken
	// from the offer, our key.
	Crypto *Crypto
}

// Answer builds the SDP answer of a one-stream call: our RTP address and
// the chosen codec.
func Answer(local netip.AddrPort, ch Choice, offerDirection string, sessionID uint64, version uint64) []byte {
	return AnswerStreams(local.Addr(), []AnswerStream{{Port: local.Port(), Choice: ch, Offer: Offer{Direction: offerDirection}}},
		sessionID, version)
}

// AnswerStreams answers every m-line of an offer, in its order.
func AnswerStreams(ip netip.Addr, streams []AnswerStream, sessionID uint64, version uint64) []byte {
	family := "IP4"
	if ip.Is6() && !ip.Is4In6() {
		family = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=callscribe %d %d IN %s %s\r\ns=callscribe\r\nc=IN %s %s\r\nt=0 0\r\n",
		sessionID, version, family, ip, family, ip)
	for _, st := range streams {
		if st.Port == 0 {
			writeRefused(&b, st.Offer)
		} else {
			writeStream(&b, st)
		}
	}
	return []byte(b.String())
}

// writeRefused writes the m-line that refuses an offered one: port 0, its
// media, protocol and formats.
func writeRefused(b *strings.Builder, o Offer) {
	proto, formats := o.proto, strings.Join(o.formats, " ")
	if proto == "" {
		proto = "RTP/AVP"
	}
	if formats == "" {
		formats = "0"
	}
	fmt.Fprintf(b, "m=%s 0 %s %s\r\n", o.media, proto, formats)
}

// writeStream writes the m-line and attributes of a stream we receive.
func writeStream(b *strings.Builder, st AnswerStream) {
	ch := st.Choice
	proto := "RTP/AVP"
	if st.Crypto != nil {
		proto = "RTP/SAVP"
		if strings.EqualFold(st.Offer.proto, "RTP/SAVPF") {
			proto = "RTP/SAVPF"
		}
	}
	fmt.Fprintf(b, "m=audio %d %s %d", st.Port, proto, ch.PT)
	if ch.DTMFPT >= 0 {
		fmt.Fprintf(b, " %d", ch.DTMFPT)
	}
	b.WriteString("\r\n")
	suffix := ""
	if strings.EqualFold(ch.Name, "opus") {
		suffix = "/2"
	}
	fmt.Fprintf(b, "a=rtpmap:%d %s/%d%s\r\n", ch.PT, ch.Name, ch.Clock, suffix)
	if ch.DTMFPT >= 0 {
		clock := ch.DTMFClock
		if clock == 0 {
			clock = ch.Clock
		}
		fmt.Fprintf(b, "a=rtpmap:%d telephone-event/%d\r\na=fmtp:%d 0-16\r\n", ch.DTMFPT, clock, ch.DTMFPT)
	}
	if st.Offer.Label != "" {
		fmt.Fprintf(b, "a=label:%s\r\n", st.Offer.Label)
	}
	if st.Crypto != nil {
		b.WriteString(st.Crypto.attribute())
	}
	if st.Offer.Mux {
		b.WriteString("a=rtcp-mux\r\n")
	}
	fmt.Fprintf(b, "a=ptime:20\r\na=%s\r\n", answerDirection(st.Offer.Direction))
}
