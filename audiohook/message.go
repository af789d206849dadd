package audiohook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrBadMessage is wrapped by every error about a client message that does
// not follow the protocol: it is answered with disconnect (error).
var ErrBadMessage = errors.New("audiohook: bad message")

// The client's message types (AudioHook protocol version 2); dtmf is the
// digit a client may report, an extension some clients send.
const (
	TypeOpen      = "open"
	TypeClose     = "close"
	TypePing      = "ping"
	TypeUpdate    = "update"
	TypePaused    = "paused"
	TypeResumed   = "resumed"
	TypeDiscarded = "discarded"
	TypeError     = "error"
	TypeDTMF      = "dtmf"
)

// ClientMessage is a text message from the client, its envelope checked
// and its parameters read for its type.
type ClientMessage struct {
	Version   string          `json:"version"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Seq       int64           `json:"seq"`
	ServerSeq int64           `json:"serverseq"`
	Position  Duration        `json:"position"`
	Params    json.RawMessage `json:"parameters"`

	Open      *OpenParameters `json:"-"`
	Close     string          `json:"-"` // close: the reason
	Start     Duration        `json:"-"` // discarded, resumed: where the gap starts
	Discarded Duration        `json:"-"` // discarded, resumed: how long it is
	Language  string          `json:"-"` // update
	Code      int             `json:"-"` // error
	Text      string          `json:"-"` // error: the message
	Digit     byte            `json:"-"` // dtmf
}

// OpenParameters are what open says of the session.
type OpenParameters struct {
	OrganizationID     string          `json:"organizationId"`
	ConversationID     string          `json:"conversationId"`
	Participant        Participant     `json:"participant"`
	Media              []Media         `json:"media"`
	Language           string          `json:"language,omitempty"`
	SupportedLanguages bool            `json:"supportedLanguages,omitempty"`
	CustomConfig       json.RawMessage `json:"customConfig,omitempty"`
}

// Participant is the customer's side of the conversation.
type Participant struct {
	ID      string `json:"id"`
	ANI     string `json:"ani"`
	ANIName string `json:"aniName"`
	DNIS    string `json:"dnis"`
}

// Media is one audio format a client offers or the server picks.
type Media struct {
	Type     string   `json:"type"`
	Format   string   `json:"format"`
	Channels []string `json:"channels"`
	Rate     int      `json:"rate"`
}

// The channel names; a channel is a leg.
const (
	External = "external" // the customer
	Internal = "internal" // the agent
)

// NullUUID is the conversation id of a connection probe: the client checks
// that the server answers, no call is made.
const NullUUID = "00000000-0000-0000-0000-000000000000"

var uuidForm = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsUUID tells whether s is a UUID as the protocol writes them.
func IsUUID(s string) bool { return uuidForm.MatchString(s) }

// Duration is the protocol's time: an ISO 8601 duration in seconds,
// "PT1.25S", kept to the nanosecond.
type Duration time.Duration

// maxDuration bounds a duration a client may write: a year is more than
// any session.
const maxDuration = 365 * 24 * time.Hour

// ParseDuration reads "PT<seconds>S" (non-negative decimal seconds).
func ParseDuration(s string) (Duration, error) {
	if len(s) < 4 || len(s) > 32 || !strings.HasPrefix(s, "PT") || !strings.HasSuffix(s, "S") {
		return 0, fmt.Errorf("%w: duration %q: want PT<seconds>S", ErrBadMessage, s)
	}
	num := s[2 : len(s)-1]
	for _, r := range num {
		if (r < '0' || r > '9') && r != '.' {
			return 0, fmt.Errorf("%w: duration %q: want PT<seconds>S", ErrBadMessage, s)
		}
	}
	sec, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(sec) || sec < 0 || sec > maxDuration.Seconds() {
		return 0, fmt.Errorf("%w: duration %q: want PT<seconds>S", ErrBadMessage, s)
	}
	return Duration(math.Round(sec * 1e9)), nil
}

// String writes the duration as the protocol does, to the millisecond.
func (d Duration) String() string {
	ms := time.Duration(d).Milliseconds()
	return "PT" + strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "S"
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads the duration from a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: duration: want a string", ErrBadMessage)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Samples is the duration in samples at 8 kHz.
func (d Duration) Samples() int64 { return int64(time.Duration(d) / (time.Second / 8000)) }

// ParseClientMessage reads a client's text message and checks its envelope
// (version 2, a UUID id, a known type, seq from 1, serverseq, position) and
// its parameters for its type; the session checks the numbering.
func ParseClientMessage(b []byte) (*ClientMessage, error) {
	var m ClientMessage
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: not a JSON message: %v", ErrBadMessage, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrBadMessage)
	}
	switch {
	case m.Version != "2":
		return nil, fmt.Errorf("%w: version %q: want \"2\"", ErrBadMessage, m.Version)
	case !IsUUID(m.ID):
		return nil, fmt.Errorf("%w: id: want a UUID", ErrBadMessage)
	case m.Seq < 1:
		return nil, fmt.Errorf("%w: seq: want a positive integer", ErrBadMessage)
	case m.ServerSeq < 0:
		return nil, fmt.Errorf("%w: serverseq: want a non-negative integer", ErrBadMessage)
	case len(m.Params) == 0 || m.Params[0] != '{':
		return nil, fmt.Errorf("%w: parameters: want an object", ErrBadMessage)
	}
	if err := m.readParams(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadMessage, m.Type, err)
	}
	return &m, nil
}

// readParams reads the parameters of the message's type.
func (m *ClientMessage) readParams() error {
	switch m.Type {
	case TypeOpen:
		var p OpenParameters
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		if err := p.check(); err != nil {
			return err
		}
		m.Open = &p
	case TypeClose:
		var p struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		switch p.Reason {
		case "end", "error", "disconnect", "reconnect":
		default:
			return fmt.Errorf("reason %q: want end, error, disconnect or reconnect", p.Reason)
		}
		m.Close = p.Reason
	case TypeDiscarded, TypeResumed:
		var p struct {
			Start     *Duration `json:"start"`
			Discarded *Duration `json:"discarded"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		if p.Start == nil || p.Discarded == nil {
			return errors.New("want start and discarded")
		}
		m.Start, m.Discarded = *p.Start, *p.Discarded
	case TypeUpdate:
		var p struct {
			Language *string `json:"language"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		if p.Language == nil || !languageForm.MatchString(*p.Language) {
			return errors.New("language: want a language tag")
		}
		m.Language = *p.Language
	case TypeError:
		var p struct {
			Code    *int    `json:"code"`
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		if p.Code == nil || *p.Code < 100 || *p.Code > 599 || p.Message == nil {
			return errors.New("want a code and a message")
		}
		m.Code, m.Text = *p.Code, *p.Message
	case TypePing:
		var p struct {
			RTT *Duration `json:"rtt"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
	case TypePaused:
	case TypeDTMF:
		var p struct {
			Digit string `json:"digit"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return err
		}
		if len(p.Digit) != 1 || !strings.Contains("0123456789*#ABCD", p.Digit) {
			return fmt.Errorf("digit %q: want one of 0-9 * # A-D", p.Digit)
		}
		m.Digit = p.Digit[0]
	default:
		return fmt.Errorf("not a client message type (%.32q)", m.Type)
	}
	return nil
}

// check checks what open must say.
func (p *OpenParameters) check() error {
	if !IsUUID(p.OrganizationID) {
		return errors.New("organizationId: want a UUID")
	}
	if !IsUUID(p.ConversationID) {
		return errors.New("conversationId: want a UUID")
	}
	if p.Media == nil {
		return errors.New("media: want a list")
	}
	if len(p.Media) > 16 {
		return errors.New("media: too many")
	}
	for _, m := range p.Media {
		if m.Type == "" || m.Format == "" || m.Rate <= 0 || len(m.Channels) == 0 || len(m.Channels) > 8 {
			return errors.New("media: want type, format, channels and rate")
		}
	}
	if p.Language != "" && !languageForm.MatchString(p.Language) {
		return errors.New("language: want a language tag")
	}
	if len(p.CustomConfig) > 0 && p.CustomConfig[0] != '{' && string(p.CustomConfig) != "null" {
		return errors.New("customConfig: want an object")
	}
	return nil
}

// Probe tells whether open is a connection probe (a null conversation id).
func (p *OpenParameters) Probe() bool { return p.ConversationID == NullUUID }

// Select picks the media the door takes from those offered: PCMU or L16 at
// 8 kHz, the two channels (external and internal, in either order) before
// one; ok false when none can be taken.
func Select(offered []Media) (Media, bool) {
	best, score := Media{}, 0
	for _, m := range offered {
		if m.Type != "audio" || (m.Format != "PCMU" && m.Format != "L16") || m.Rate != 8000 {
			continue
		}
		s := 0
		switch {
		case len(m.Channels) == 2 && m.Channels[0] != m.Channels[1] && known(m.Channels[0]) && known(m.Channels[1]):
			s = 2
		case len(m.Channels) == 1 && known(m.Channels[0]):
			s = 1
		}
		if s > score {
			best, score = m, s
		}
	}
	return best, score > 0
}

func known(ch string) bool { return ch == External || ch == Internal }

// LegName is the leg a channel feeds: the customer (external) or the agent
// (internal).
func LegName(channel string) string {
	if channel == Internal {
		return "agent"
	}
	return "customer"
}
