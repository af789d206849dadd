// Package audiohooktest is an AudioHook client written from the protocol's
// specification (version 2), for the door's tests and the load tool: it
// signs the connection, opens a session, streams audio in real time and
// collects what the server sends. It holds no server.
package audiohooktest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/audiohook"
)

// Options configure a client.
type Options struct {
	URL            string // ws://host:port/audiohook
	APIKey, Secret string // Secret base64; empty: not signed
	OrgID          string // default: a new UUID
	SessionID      string // default: a new UUID
	ConversationID string // default: a new UUID; audiohook.NullUUID: a probe
	Language       string // default en-US
	Media          []audiohook.Media
	CustomConfig   map[string]any
	AskLanguages   bool
	Participant    audiohook.Participant
	// Created overrides the signature's created time (zero: now); Nonce
	// its nonce (empty: a new one).
	Created time.Time
	Nonce   string
}

// Message is a server message as received.
type Message struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Seq        int64           `json:"seq"`
	ClientSeq  int64           `json:"clientseq"`
	Parameters json.RawMessage `json:"parameters"`
}

// Client is one AudioHook connection.
type Client struct {
	opts Options
	conn *websocket.Conn

	mu        sync.Mutex
	seq       int64 // the last client seq sent
	serverseq int64 // the last server seq received
	pos       int64 // 8 kHz samples sent (and discarded)
	msgs      []Message
	err       error // a protocol error the client saw (seq out of order, bad JSON)
	arrived   chan struct{}
	done      chan struct{}
}

// NewUUID is a random UUID.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Headers are the connection request's headers: the AudioHook ids, the
// API key and, with a secret, the signature over them (RFC 9421).
func Headers(o *Options, u *url.URL) (http.Header, error) {
	corr := NewUUID()
	h := http.Header{}
	h.Set("Audiohook-Organization-Id", o.OrgID)
	h.Set("Audiohook-Session-Id", o.SessionID)
	h.Set("Audiohook-Correlation-Id", corr)
	h.Set("X-API-KEY", o.APIKey)
	if o.Secret == "" {
		return h, nil
	}
	key, err := base64.StdEncoding.DecodeString(o.Secret)
	if err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	nonce := o.Nonce
	if nonce == "" {
		var b [18]byte
		rand.Read(b[:])
		nonce = base64.StdEncoding.EncodeToString(b[:])
	}
	target := u.RequestURI()
	comps := []struct{ name, value string }{{"@request-target", target}, {"@authority", u.Host},
		{"audiohook-organization-id", o.OrgID}, {"audiohook-session-id", o.SessionID},
		{"audiohook-correlation-id", corr}, {"x-api-key", o.APIKey}}
	names := make([]string, len(comps))
	var base strings.Builder
	for i, c := range comps {
		names[i] = strconv.Quote(c.name)
		base.WriteString(strconv.Quote(c.name) + ": " + c.value + "\n")
	}
	params := fmt.Sprintf("(%s);keyid=%s;nonce=%s;alg=\"hmac-sha256\";created=%d;expires=%d",
		strings.Join(names, " "), strconv.Quote(o.APIKey), strconv.Quote(nonce), created.Unix(), created.Unix()+30)
	base.WriteString(`"@signature-params": ` + params)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(base.String()))
	h.Set("Signature-Input", "sig1="+params)
	h.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(mac.Sum(nil))+":")
	return h, nil
}

// Dial connects; the session is not open yet (Open).
func Dial(ctx context.Context, o Options) (*Client, *http.Response, error) {
	if o.OrgID == "" {
		o.OrgID = NewUUID()
	}
	if o.SessionID == "" {
		o.SessionID = NewUUID()
	}
	if o.ConversationID == "" {
		o.ConversationID = NewUUID()
	}
	if o.Language == "" {
		o.Language = "en-US"
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, nil, err
	}
	h, err := Headers(&o, u)
	if err != nil {
		return nil, nil, err
	}
	conn, resp, err := websocket.Dial(ctx, o.URL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &Client{opts: o, conn: conn, arrived: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	return c, resp, nil
}

// SessionID is the session's id (the call's id on Redis).
func (c *Client) SessionID() string { return c.opts.SessionID }

func (c *Client) read() {
	defer close(c.done)
	for {
		typ, b, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		c.mu.Lock()
		var m Message
		switch {
		case typ != websocket.MessageText:
			c.err = errors.New("a binary message from the server")
		case json.Unmarshal(b, &m) != nil:
			c.err = fmt.Errorf("not JSON: %.80s", b)
		case m.Version != "2" || m.ID != c.opts.SessionID:
			c.err = fmt.Errorf("version or id wrong: %s", b)
		case m.Seq != c.serverseq+1:
			c.err = fmt.Errorf("seq %d after %d", m.Seq, c.serverseq)
		case m.ClientSeq > c.seq:
			c.err = fmt.Errorf("clientseq %d: the client sent %d", m.ClientSeq, c.seq)
		default:
			c.serverseq = m.Seq
			c.msgs = append(c.msgs, m)
		}
		c.mu.Unlock()
		select {
		case c.arrived <- struct{}{}:
		default:
		}
	}
}

// Err is the first protocol error the client saw in the server's
// messages, or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Messages are the server's messages so far.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Wait waits up to d for a message of type typ after the first skip of
// that type, and returns it.
func (c *Client) Wait(typ string, skip int, d time.Duration) (Message, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		n := 0
		for _, m := range c.Messages() {
			if m.Type == typ {
				if n == skip {
					return m, nil
				}
				n++
			}
		}
		select {
		case <-c.arrived:
		case <-c.done:
			for _, m := range c.Messages() {
				if m.Type == typ && skip == 0 {
					return m, nil
				}
			}
			return Message{}, fmt.Errorf("connection closed before %s", typ)
		case <-deadline.C:
			return Message{}, fmt.Errorf("no %s in %s", typ, d)
		}
	}
}

// Done is closed once the server closed the connection (or it failed).
func (c *Client) Done() <-chan struct{} { return c.done }

// Send sends a client message of type typ with its envelope.
func (c *Client) Send(typ string, params any) error {
	c.mu.Lock()
	c.seq++
	m := map[string]any{"version": "2", "id": c.opts.SessionID, "type": typ, "seq": c.seq,
		"serverseq": c.serverseq, "position": audiohook.Duration(time.Duration(c.pos) * (time.Second / 8000)), "parameters": params}
	c.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendRaw(websocket.MessageText, b)
}

// SendRaw sends bytes as they are (malformed messages).
func (c *Client) SendRaw(typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.Write(ctx, typ, b)
}

// Open sends open and waits for opened (or disconnect).
func (c *Client) Open() (Message, error) {
	p := map[string]any{"organizationId": c.opts.OrgID, "conversationId": c.opts.ConversationID,
		"participant": c.opts.Participant, "media": c.opts.Media, "language": c.opts.Language}
	if p["participant"] == (audiohook.Participant{}) {
		p["participant"] = audiohook.Participant{ID: NewUUID(), ANI: "+15555551234", ANIName: "Jane Doe", DNIS: "+18005556789"}
	}
	if c.opts.CustomConfig != nil {
		p["customConfig"] = c.opts.CustomConfig
	}
	if c.opts.AskLanguages {
		p["supportedLanguages"] = true
	}
	if err := c.Send("open", p); err != nil {
		return Message{}, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range c.Messages() {
			if m.Type == "opened" || m.Type == "disconnect" {
				return m, nil
			}
		}
		select {
		case <-c.arrived:
		case <-c.done:
			return Message{}, errors.New("connection closed before opened")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return Message{}, errors.New("no opened")
}

// Audio sends one binary frame of n samples per channel (the position
// moves by n).
func (c *Client) Audio(frame []byte, n int) error {
	c.mu.Lock()
	c.pos += int64(n)
	c.mu.Unlock()
	return c.SendRaw(websocket.MessageBinary, frame)
}

// Discard says the client dropped d of audio at the current position (the
// position moves past it).
func (c *Client) Discard(d time.Duration) error {
	c.mu.Lock()
	start := c.pos
	c.pos += int64(d / (time.Second / 8000))
	c.mu.Unlock()
	return c.Send("discarded", map[string]any{"start": audiohook.Duration(time.Duration(start) * (time.Second / 8000)), "discarded": audiohook.Duration(d)})
}

// Position is the stream position now.
func (c *Client) Position() audiohook.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return audiohook.Duration(time.Duration(c.pos) * (time.Second / 8000))
}

// Close runs the close transaction: close, then closed (up to d), then
// the connection is closed.
func (c *Client) Close(d time.Duration) (Message, error) {
	defer c.Hangup()
	if err := c.Send("close", map[string]any{"reason": "end"}); err != nil {
		return Message{}, err
	}
	return c.Wait("closed", 0, d)
}

// Hangup closes the connection at once (a peer that vanishes).
func (c *Client) Hangup() {
	c.conn.CloseNow()
	<-c.done
}

// Frames cuts channels of 8 kHz PCM (one slice per channel, as long as
// the first) into interleaved frames of ms each, in format (PCMU or
// L16).
func Frames(format string, chans [][]int16, ms int) [][]byte {
	per := 8 * ms
	var out [][]byte
	for at := 0; at < len(chans[0]); at += per {
		n := min(per, len(chans[0])-at)
		var f []byte
		for i := 0; i < n; i++ {
			for _, ch := range chans {
				var s int16
				if at+i < len(ch) {
					s = ch[at+i]
				}
				if format == "PCMU" {
					f = append(f, ulaw(s))
				} else {
					f = append(f, byte(s), byte(uint16(s)>>8))
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// ulaw encodes a sample in G.711 µ-law (ITU-T G.711).
func ulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

// Stream sends frames in real time (one per ms), stopping early when stop
// closes; frame i holds n[i] samples per channel.
func (c *Client) Stream(frames [][]byte, samples []int, ms int, stop <-chan struct{}) error {
	tick := time.NewTicker(time.Duration(ms) * time.Millisecond)
	defer tick.Stop()
	for i, f := range frames {
		if err := c.Audio(f, samples[i]); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-stop:
			return nil
		}
	}
	return nil
}

// Transcripts are the transcript entities received so far.
func (c *Client) Transcripts() []audiohook.Transcript {
	var out []audiohook.Transcript
	for _, m := range c.Messages() {
		if m.Type != "event" {
			continue
		}
		var p struct {
			Entities []struct {
				Type string               `json:"type"`
				Data audiohook.Transcript `json:"data"`
			} `json:"entities"`
		}
		if json.Unmarshal(m.Parameters, &p) != nil {
			continue
		}
		for _, e := range p.Entities {
			if e.Type == "transcript" {
				out = append(out, e.Data)
			}
		}
	}
	return out
}
