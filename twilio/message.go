package twilio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The messages of a Media Stream (Twilio's "WebSocket messages" page):
// connected, start, media, dtmf, mark and stop, each a JSON text message
// with an event field. The platforms that copied the protocol spell some
// fields their own way (Telnyx and Exotel in snake_case, Plivo streamId and
// callId, numbers as JSON numbers rather than strings); Parse reads every
// spelling into one Message.

// The events Parse knows; any other is returned with only Event set, for
// the caller to pass over (a platform's own addition, Telnyx's error,
// Plivo's playedStream).
const (
	EventConnected = "connected"
	EventStart     = "start"
	EventMedia     = "media"
	EventDTMF      = "dtmf"
	EventMark      = "mark"
	EventStop      = "stop"
)

// Errors of Parse: a message that cannot be read (the stream is closed
// with 1007), and a start whose media format the door cannot decode (1003).
var (
	ErrBadMessage = errors.New("twilio: bad message")
	ErrCodec      = errors.New("twilio: media format not supported")
)

// Bounds on what a start message may carry.
const (
	maxSidLen     = 128
	maxParams     = 32
	maxParamName  = 64
	maxParamValue = 1024
	// maxPayload is the most audio one media message may carry: 2 s at
	// 8 kHz (Twilio sends 20 ms).
	maxPayload = 16000
)

// Message is one message of a stream. Parse fills the part its event has.
type Message struct {
	Event string
	// Seq is the message's sequenceNumber; -1 when it has none.
	Seq       int64
	StreamSid string
	Start     Start
	Media     Media
	DTMF      DTMF
	Mark      string
}

// Start is the stream's metadata, from its start message.
type Start struct {
	StreamSid, CallSid, AccountSid string
	// Tracks are the tracks the stream will carry, "inbound" first when
	// both: the call's legs. Empty when the start names none.
	Tracks []string
	// Codec is the media's codec by its SDP name (PCMU, PCMA).
	Codec string
	// Params are the stream's customParameters.
	Params map[string]string
	// From and To, where the platform says (Telnyx, Exotel).
	From, To string
}

// Media is one chunk of a track's audio.
type Media struct {
	// Track is inbound or outbound.
	Track string
	// Chunk counts the track's chunks from 1; Timestamp is ms since the
	// stream started. Each is -1 when the message has none.
	Chunk, Timestamp int64
	// Payload is the audio, decoded from base64; it is reused by the next
	// Parse into the same Message.
	Payload []byte
}

// DTMF is one digit keyed on a track.
type DTMF struct {
	Track      string
	Digit      byte
	DurationMs int64 // 0 when the platform does not say
}

// number is a JSON number or a string holding one (Twilio sends its
// numbers as strings), a non-negative integer; set says whether it was
// there.
type number struct {
	v   int64
	set bool
}

func (n *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] != '"' || s == "" {
		return fmt.Errorf("not a number: %.40s", b)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > 1<<40 {
		return fmt.Errorf("not a number: %.40s", b)
	}
	n.v, n.set = v, true
	return nil
}

func (n number) or(other number) int64 {
	switch {
	case n.set:
		return n.v
	case other.set:
		return other.v
	}
	return -1
}

// wire is a message as it arrives, under every spelling.
type wire struct {
	Event     string                 `json:"event"`
	Seq       number                 `json:"sequenceNumber"`
	SeqSnake  number                 `json:"sequence_number"`
	StreamSid string                 `json:"streamSid"`
	SidSnake  string                 `json:"stream_sid"`
	StreamID  string                 `json:"stream_id"`
	StreamId  string                 `json:"streamId"`
	Start     *wireStart             `json:"start"`
	Media     *wireMedia             `json:"media"`
	DTMF      *wireDTMF              `json:"dtmf"`
	Mark      *struct{ Name string } `json:"mark"`
}

type wireStart struct {
	StreamSid     string                     `json:"streamSid"`
	SidSnake      string                     `json:"stream_sid"`
	StreamID      string                     `json:"stream_id"`
	StreamId      string                     `json:"streamId"`
	CallSid       string                     `json:"callSid"`
	CallSnake     string                     `json:"call_sid"`
	CallId        string                     `json:"callId"`
	CallControlID string                     `json:"call_control_id"`
	AccountSid    string                     `json:"accountSid"`
	AccountSnake  string                     `json:"account_sid"`
	AccountId     string                     `json:"accountId"`
	Tracks        []string                   `json:"tracks"`
	Format        *wireFormat                `json:"mediaFormat"`
	FormatSnake   *wireFormat                `json:"media_format"`
	Params        map[string]json.RawMessage `json:"customParameters"`
	ParamsSnake   map[string]json.RawMessage `json:"custom_parameters"`
	From          string                     `json:"from"`
	To            string                     `json:"to"`
}

type wireFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate number `json:"sampleRate"`
	RateSnake  number `json:"sample_rate"`
	Channels   number `json:"channels"`
}

type wireMedia struct {
	Track     string `json:"track"`
	Chunk     number `json:"chunk"`
	Timestamp number `json:"timestamp"`
	Payload   string `json:"payload"`
}

type wireDTMF struct {
	Track    string `json:"track"`
	Digit    string `json:"digit"`
	Duration number `json:"duration"`
}

// Parse reads one text message into m (its Payload buffer is reused). An
// error wraps ErrBadMessage or ErrCodec and says what was wrong.
func Parse(b []byte, m *Message) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	payload := m.Media.Payload[:0]
	*m = Message{Event: w.Event, Seq: w.Seq.or(w.SeqSnake), StreamSid: first(w.StreamSid, w.SidSnake, w.StreamID, w.StreamId)}
	m.Media.Payload = payload
	if m.StreamSid != "" && !validSid(m.StreamSid) {
		return fmt.Errorf("%w: streamSid %.40q", ErrBadMessage, m.StreamSid)
	}
	switch w.Event {
	case "":
		return fmt.Errorf("%w: no event", ErrBadMessage)
	case EventStart:
		if w.Start == nil {
			return fmt.Errorf("%w: start without its start object", ErrBadMessage)
		}
		return parseStart(w.Start, m)
	case EventMedia:
		if w.Media == nil {
			return fmt.Errorf("%w: media without its media object", ErrBadMessage)
		}
		return parseMedia(w.Media, m)
	case EventDTMF:
		if w.DTMF == nil {
			return fmt.Errorf("%w: dtmf without its dtmf object", ErrBadMessage)
		}
		return parseDTMF(w.DTMF, m)
	case EventMark:
		if w.Mark != nil {
			m.Mark = w.Mark.Name
		}
	}
	return nil
}

func parseStart(w *wireStart, m *Message) error {
	s := &m.Start
	s.StreamSid = first(w.StreamSid, w.SidSnake, w.StreamID, w.StreamId, m.StreamSid)
	s.CallSid = first(w.CallSid, w.CallSnake, w.CallId, w.CallControlID)
	s.AccountSid = first(w.AccountSid, w.AccountSnake, w.AccountId)
	if !validSid(s.StreamSid) {
		return fmt.Errorf("%w: start: streamSid %.40q", ErrBadMessage, s.StreamSid)
	}
	for _, v := range []string{s.CallSid, s.AccountSid} {
		if len(v) > maxSidLen || strings.ContainsFunc(v, badRune) {
			return fmt.Errorf("%w: start: sid %.40q", ErrBadMessage, v)
		}
	}
	m.StreamSid = s.StreamSid
	if len(w.Tracks) > 2 {
		return fmt.Errorf("%w: start: %d tracks", ErrBadMessage, len(w.Tracks))
	}
	var in, out bool
	for _, t := range w.Tracks {
		switch trackName(t) {
		case "inbound":
			in = true
		case "outbound":
			out = true
		default:
			return fmt.Errorf("%w: start: track %.40q", ErrBadMessage, t)
		}
	}
	if in {
		s.Tracks = append(s.Tracks, "inbound")
	}
	if out {
		s.Tracks = append(s.Tracks, "outbound")
	}
	f := w.Format
	if f == nil {
		f = w.FormatSnake
	}
	var err error
	if s.Codec, err = codec(f); err != nil {
		return err
	}
	params := w.Params
	if params == nil {
		params = w.ParamsSnake
	}
	if len(params) > maxParams {
		return fmt.Errorf("%w: start: %d custom parameters", ErrBadMessage, len(params))
	}
	for k, raw := range params {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw) // a number or object: as written
		}
		if k == "" || len(k) > maxParamName || len(v) > maxParamValue || strings.ContainsFunc(k, badRune) {
			return fmt.Errorf("%w: start: custom parameter %.40q", ErrBadMessage, k)
		}
		if s.Params == nil {
			s.Params = map[string]string{}
		}
		s.Params[k] = v
	}
	if len(w.From) > maxParamValue || len(w.To) > maxParamValue {
		return fmt.Errorf("%w: start: from or to too long", ErrBadMessage)
	}
	s.From, s.To = w.From, w.To
	return nil
}

// codec is the SDP name of the start's media format: μ-law (Twilio's only
// one, and what a start without a format means) or A-law, 8 kHz mono.
func codec(f *wireFormat) (string, error) {
	if f == nil {
		return "PCMU", nil
	}
	enc, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(f.Encoding)), ";")
	name := map[string]string{"": "PCMU", "audio/x-mulaw": "PCMU", "audio/mulaw": "PCMU", "mulaw": "PCMU", "ulaw": "PCMU",
		"pcmu": "PCMU", "audio/pcmu": "PCMU", "audio/x-alaw": "PCMA", "audio/alaw": "PCMA", "alaw": "PCMA", "pcma": "PCMA",
		"audio/pcma": "PCMA"}[enc]
	if name == "" {
		return "", fmt.Errorf("%w: encoding %.40q (want audio/x-mulaw or audio/x-alaw)", ErrCodec, f.Encoding)
	}
	if r := f.SampleRate.or(f.RateSnake); r != -1 && r != 8000 {
		return "", fmt.Errorf("%w: sample rate %d (want 8000)", ErrCodec, r)
	}
	if c := f.Channels.or(number{}); c != -1 && c != 1 {
		return "", fmt.Errorf("%w: %d channels (want 1)", ErrCodec, c)
	}
	return name, nil
}

func parseMedia(w *wireMedia, m *Message) error {
	md := &m.Media
	md.Track, md.Chunk, md.Timestamp = trackName(w.Track), w.Chunk.or(number{}), w.Timestamp.or(number{})
	if md.Track == "" {
		md.Track = "inbound" // a platform with one track may not name it
	}
	if md.Track != "inbound" && md.Track != "outbound" {
		return fmt.Errorf("%w: media: track %.40q", ErrBadMessage, w.Track)
	}
	enc := base64.StdEncoding
	if len(w.Payload)%4 != 0 {
		enc = base64.RawStdEncoding // unpadded
	}
	n := enc.DecodedLen(len(w.Payload))
	if n > maxPayload {
		return fmt.Errorf("%w: media: payload of %d bytes", ErrBadMessage, n)
	}
	if cap(md.Payload) < n {
		md.Payload = make([]byte, n)
	}
	n, err := enc.Decode(md.Payload[:n], []byte(w.Payload))
	if err != nil {
		md.Payload = md.Payload[:0]
		return fmt.Errorf("%w: media: payload: %v", ErrBadMessage, err)
	}
	md.Payload = md.Payload[:n]
	return nil
}

func parseDTMF(w *wireDTMF, m *Message) error {
	d := &m.DTMF
	d.Track = trackName(w.Track)
	if d.Track == "" {
		d.Track = "inbound"
	}
	if d.Track != "inbound" && d.Track != "outbound" {
		return fmt.Errorf("%w: dtmf: track %.40q", ErrBadMessage, w.Track)
	}
	if len(w.Digit) != 1 || !strings.Contains("0123456789*#ABCD", strings.ToUpper(w.Digit)) {
		return fmt.Errorf("%w: dtmf: digit %.40q", ErrBadMessage, w.Digit)
	}
	d.Digit = strings.ToUpper(w.Digit)[0]
	d.DurationMs = max(w.Duration.or(number{}), 0)
	return nil
}

// track is a track's name without the _track that dtmf messages and the
// TwiML's track attribute add.
func trackName(t string) string { return strings.TrimSuffix(strings.ToLower(t), "_track") }

// validSid tells a stream's id that may name a call on Redis: printable,
// no spaces or braces, not too long.
func validSid(s string) bool {
	return s != "" && len(s) <= maxSidLen && !strings.ContainsFunc(s, badRune)
}

func badRune(r rune) bool { return r <= ' ' || r > '~' || r == '{' || r == '}' }

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
