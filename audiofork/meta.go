package audiofork

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error about a message the peer sent
// that cannot be read: the answer is close code 1007 (or, on jambonz's
// API, an error message first).
var ErrMalformed = errors.New("audiofork: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Rates are the sample rates of L16 audio taken (Hz): FreeSWITCH's 8k and
// 16k, Vonage's 24k, and the rest of jambonz listen's.
var Rates = []int{8000, 16000, 24000, 32000, 48000, 64000}

// Format is what a connection's first message says about its call.
type Format struct {
	// CallID names the call on Redis: the platform's call id from the
	// metadata, or a random one.
	CallID string
	// Rate is the L16 sample rate (Hz); Channels 1, or 2 interleaved.
	Rate, Channels int
	// Mix is mono, mixed or stereo (the fork's mix-type).
	Mix string
	// Legs names the channels, in order.
	Legs []string
	// Fields go into call.start (from, to, language, ...).
	Fields map[string]string
	// Hotwords, Keywords and Redact are the call's own lists (package
	// ingest's Offer).
	Hotwords, Keywords, Redact string
	// Interim asks for partial results (jambonz's interimResults).
	Interim bool
}

// Bounds on what the metadata may hold.
const (
	maxIDLen    = 128
	maxFieldLen = 256
)

var (
	idChars  = regexp.MustCompile(`^[A-Za-z0-9._:@+=-]+$`)
	legChars = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

// meta is a JSON object read by key, case-sensitively as the platforms
// spell them; a nested "metadata" object (jambonz listen's) is looked in
// after the top level.
type meta map[string]json.RawMessage

func parseObject(b []byte) (meta, error) {
	var m meta
	if !json.Valid(b) {
		return nil, malformed("not JSON")
	}
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, malformed("not a JSON object")
	}
	return m, nil
}

// str is the first of keys present as a string or a number, "" if none;
// a value of another kind is an error.
func (m meta) str(keys ...string) (string, error) {
	for _, k := range keys {
		raw, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var n json.Number
		if d.Decode(&n) == nil {
			return n.String(), nil
		}
		if string(raw) == "null" {
			continue
		}
		return "", malformed("%s: want a string or a number", k)
	}
	if inner, ok := m["metadata"]; ok {
		var im meta
		if json.Unmarshal(inner, &im) == nil && im != nil {
			delete(im, "metadata")
			return im.str(keys...)
		}
	}
	return "", nil
}

// list is a string list given as a JSON array or a comma-separated
// string.
func (m meta) list(key string) ([]string, error) {
	var xs []string
	if raw, ok := m[key]; ok && json.Unmarshal(raw, &xs) == nil {
		return xs, nil
	}
	s, err := m.str(key)
	if err != nil || s == "" {
		return nil, err
	}
	for _, x := range strings.Split(s, ",") {
		xs = append(xs, strings.TrimSpace(x))
	}
	return xs, nil
}

// parseRate reads a sample rate: 8000, "16000", "16k", or Vonage's
// content type "audio/l16;rate=16000".
func parseRate(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if ct, ok := strings.CutPrefix(s, "audio/l16"); ok {
		s = "8000" // Vonage's default
		for _, p := range strings.Split(ct, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "rate="); ok {
				s = v
			}
		}
	}
	mult := 1
	if v, ok := strings.CutSuffix(s, "k"); ok {
		s, mult = v, 1000
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, malformed("sample rate %q", s)
	}
	for _, r := range Rates {
		if n*mult == r {
			return r, nil
		}
	}
	return 0, malformed("sample rate %d: want one of %v", n*mult, Rates)
}

func newCallID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ParseMetadata reads a fork's format from its URL's query and its first
// text frame (nil: the fork sent audio first). The frame's keys win over
// the query's: call id (callSid, call_id, callId, uuid), sample rate
// (sampleRate, sample_rate, rate, content-type), mix (mixType, mix_type,
// mix), legs, from, to, direction, hotwords, keywords, redact.
func ParseMetadata(query url.Values, first []byte) (Format, error) {
	m := meta{}
	for k, v := range query { // the query as a flat object under the frame
		if len(v) > 0 {
			b, _ := json.Marshal(v[0])
			m[k] = b
		}
	}
	if first != nil {
		fm, err := parseObject(first)
		if err != nil {
			return Format{}, err
		}
		for k, v := range fm {
			m[k] = v
		}
	}
	f := Format{Fields: map[string]string{}}
	id, err := m.str("callSid", "call_id", "callId", "uuid")
	if err != nil {
		return f, err
	}
	if err := f.setID(id); err != nil {
		return f, err
	}
	rate, err := m.str("sampleRate", "sample_rate", "rate", "content-type")
	if err != nil {
		return f, err
	}
	f.Rate = 8000
	if rate != "" {
		if f.Rate, err = parseRate(rate); err != nil {
			return f, err
		}
	}
	mix, err := m.str("mixType", "mix_type", "mix")
	if err != nil {
		return f, err
	}
	switch f.Mix = strings.ToLower(mix); f.Mix {
	case "", "mono":
		f.Mix, f.Channels, f.Legs = "mono", 1, []string{"caller"}
	case "mixed":
		f.Channels, f.Legs = 1, []string{"mixed"}
	case "stereo":
		f.Channels, f.Legs = 2, []string{"caller", "callee"}
	default:
		return f, malformed("mix %q: want mono, mixed or stereo", mix)
	}
	legs, err := m.list("legs")
	if err != nil {
		return f, err
	}
	if legs != nil {
		if len(legs) != f.Channels {
			return f, malformed("legs: %d names for %d channels", len(legs), f.Channels)
		}
		for _, l := range legs {
			if !legChars.MatchString(l) {
				return f, malformed("legs: %q: letters, digits, - and _", l)
			}
		}
		if f.Channels == 2 && legs[0] == legs[1] {
			return f, malformed("legs: %q twice", legs[0])
		}
		f.Legs = legs
	}
	for _, k := range []string{"from", "to", "direction"} {
		if err := f.field(m, k, k); err != nil {
			return f, err
		}
	}
	return f, f.lists(m)
}

// setID takes the platform's call id, or makes one.
func (f *Format) setID(id string) error {
	if id == "" {
		f.CallID = newCallID()
		return nil
	}
	if len(id) > maxIDLen || !idChars.MatchString(id) {
		return malformed("call id: at most %d of letters, digits and ._:@+=-", maxIDLen)
	}
	f.CallID = id
	return nil
}

// field copies key into call.start's name, bounded.
func (f *Format) field(m meta, key, name string) error {
	v, err := m.str(key)
	if err != nil {
		return err
	}
	if len(v) > maxFieldLen {
		return malformed("%s: longer than %d bytes", key, maxFieldLen)
	}
	if v != "" {
		f.Fields[name] = v
	}
	return nil
}

// lists reads the call's own hotwords, keywords and redaction (checked by
// admission).
func (f *Format) lists(m meta) error {
	for _, l := range []struct {
		key string
		to  *string
	}{{"hotwords", &f.Hotwords}, {"keywords", &f.Keywords}, {"redact", &f.Redact}} {
		xs, err := m.list(l.key)
		if err != nil {
			return err
		}
		*l.to = strings.Join(xs, ",")
		if len(*l.to) > 4096 {
			return malformed("%s: longer than 4096 bytes", l.key)
		}
	}
	return nil
}

// ParseStart reads jambonz's start message: type start, encoding
// LINEAR16, format raw, sampleRateHz (default 8000), language,
// interimResults; the call id is jambonz's callSid in options, or random.
func ParseStart(b []byte) (Format, error) {
	m, err := parseObject(b)
	if err != nil {
		return Format{}, err
	}
	f := Format{Fields: map[string]string{}, Mix: "mono", Channels: 1, Legs: []string{"caller"}, Rate: 8000}
	typ, err := m.str("type")
	if err != nil {
		return f, err
	}
	if typ != "start" {
		return f, malformed("the first message must be start, not %q", typ)
	}
	for _, want := range []struct{ key, value string }{{"encoding", "LINEAR16"}, {"format", "raw"}} {
		v, err := m.str(want.key)
		if err != nil {
			return f, err
		}
		if v != "" && !strings.EqualFold(v, want.value) {
			return f, malformed("%s %q: want %s", want.key, v, want.value)
		}
	}
	rate, err := m.str("sampleRateHz")
	if err != nil {
		return f, err
	}
	if rate != "" {
		if f.Rate, err = parseRate(rate); err != nil {
			return f, err
		}
	}
	if raw, ok := m["interimResults"]; ok {
		if err := json.Unmarshal(raw, &f.Interim); err != nil {
			return f, malformed("interimResults: want true or false")
		}
	}
	if err := f.field(m, "language", "language"); err != nil {
		return f, err
	}
	var opts meta
	if raw, ok := m["options"]; ok && json.Unmarshal(raw, &opts) != nil {
		return f, malformed("options: want an object")
	}
	if opts == nil {
		opts = meta{}
	}
	id, err := opts.str("callSid", "call_id")
	if err != nil {
		return f, err
	}
	if err := f.setID(id); err != nil {
		return f, err
	}
	return f, f.lists(opts)
}

// A Control is a text frame after the first: what it asks.
type Control struct {
	// Kind is dtmf, pause, resume, stop, or other (a message of no
	// meaning here, ignored: a platform's own event).
	Kind string
	// Digit and DurationMs of a dtmf.
	Digit      byte
	DurationMs int64
}

// ParseControl reads a text frame: DTMF as jambonz listen sends it
// ({"event":"dtmf","dtmf":"5","duration":"250"}), as Vonage does
// ({"event":"websocket:dtmf","digit":"5","duration":260}) or as a fork's
// send_text may ({"type":"dtmf","digit":"5"}); {"type":"pause"},
// {"type":"resume"}, {"type":"stop"}; any other JSON object is other.
func ParseControl(b []byte) (Control, error) {
	m, err := parseObject(b)
	if err != nil {
		return Control{}, err
	}
	kind, err := m.str("type")
	if err != nil {
		return Control{}, err
	}
	if kind == "" {
		if kind, err = m.str("event"); err != nil {
			return Control{}, err
		}
	}
	switch kind = strings.TrimPrefix(strings.ToLower(kind), "websocket:"); kind {
	case "pause", "resume", "stop":
		return Control{Kind: kind}, nil
	case "dtmf":
	default:
		return Control{Kind: "other"}, nil
	}
	c := Control{Kind: "dtmf"}
	d, err := m.str("digit", "dtmf")
	if err != nil {
		return c, err
	}
	if len(d) != 1 || !strings.Contains("0123456789*#ABCDabcd", d) {
		return c, malformed("dtmf digit %q", d)
	}
	c.Digit = strings.ToUpper(d)[0]
	dur, err := m.str("duration")
	if err != nil {
		return c, err
	}
	if dur != "" {
		ms, err := strconv.ParseFloat(dur, 64)
		if err != nil || !(ms >= 0 && ms <= 60000) {
			return c, malformed("dtmf duration %q: want 0-60000 ms", dur)
		}
		c.DurationMs = int64(ms)
	}
	return c, nil
}
