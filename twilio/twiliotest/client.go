// Package twiliotest is a Media Streams client written from Twilio's
// "WebSocket messages" page, for tests, load and the demo: it opens a
// stream as Twilio does (the X-Twilio-Signature of the URL it dials), sends
// connected and start, a call's tracks as 20 ms chunks of base64 G.711 at
// the pace of the wall clock, dtmf, mark and stop, and can misbehave
// (vanish, send what it likes). It holds no server.
package twiliotest

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"
)

// Call is a stream to open.
type Call struct {
	// URL is the stream's URL (ws://127.0.0.1:8080/twilio).
	URL string
	// AuthToken signs URL in X-Twilio-Signature; empty: no signature.
	AuthToken string
	// Signature, when set, is sent instead of the one AuthToken makes.
	Signature string
	// Header is added to the upgrade request.
	Header http.Header
	// StreamSid, CallSid and AccountSid; StreamSid is required.
	StreamSid, CallSid, AccountSid string
	// Tracks are the start's tracks: inbound, outbound or both.
	Tracks []string
	// Encoding is the mediaFormat's encoding; default audio/x-mulaw.
	Encoding string
	// Params are the start's customParameters.
	Params map[string]string
}

// Stream is an open stream. Its send methods are called by one goroutine.
type Stream struct {
	ws     *websocket.Conn
	sid    string
	seq    int
	chunk  map[string]int
	alaw   bool
	closed chan struct{} // the reader saw the connection end
	err    error         // why, once closed
	start  time.Time     // when start was sent: the stream's 0 ms
	once   sync.Once
}

// Dial opens the stream and sends connected and start. A refusal before
// the upgrade is an error that holds the HTTP status (StatusOf).
func Dial(ctx context.Context, c Call) (*Stream, error) {
	h := http.Header{}
	for k, v := range c.Header {
		h[k] = v
	}
	switch {
	case c.Signature != "":
		h.Set("X-Twilio-Signature", c.Signature)
	case c.AuthToken != "":
		h.Set("X-Twilio-Signature", Sign(c.AuthToken, c.URL))
	}
	ws, res, err := websocket.Dial(ctx, c.URL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if res != nil {
			return nil, &RefusedError{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), err: err}
		}
		return nil, err
	}
	s := &Stream{ws: ws, sid: c.StreamSid, chunk: map[string]int{}, closed: make(chan struct{})}
	go s.read()
	enc := c.Encoding
	if enc == "" {
		enc = "audio/x-mulaw"
	}
	s.alaw = enc == "audio/x-alaw"
	tracks := c.Tracks
	if tracks == nil {
		tracks = []string{"inbound"}
	}
	params := c.Params
	if params == nil {
		params = map[string]string{}
	}
	if err := s.send(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"}); err != nil {
		s.Vanish()
		return nil, err
	}
	s.start = time.Now()
	err = s.sendSeq(map[string]any{"event": "start", "streamSid": c.StreamSid, "start": map[string]any{
		"streamSid": c.StreamSid, "accountSid": c.AccountSid, "callSid": c.CallSid, "tracks": tracks,
		"customParameters": params, "mediaFormat": map[string]any{"encoding": enc, "sampleRate": 8000, "channels": 1}}})
	if err != nil {
		s.Vanish()
		return nil, err
	}
	return s, nil
}

// Sign is the X-Twilio-Signature Twilio sends when it dials url (a GET:
// the URL, query included, and no parameters): the base64 HMAC-SHA1 of the
// URL keyed by the account's auth token. Written here from Twilio's
// webhook security page, apart from the server's.
func Sign(authToken, url string) string {
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(url))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Started is when start was sent: the stream's 0 ms.
func (s *Stream) Started() time.Time { return s.start }

// RefusedError is a stream refused before the upgrade.
type RefusedError struct {
	Status     int
	RetryAfter string
	err        error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("refused (%d): %v", e.Status, e.err) }

// StatusOf is the HTTP status of a refusal before the upgrade, 0 for any
// other error.
func StatusOf(err error) int {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Status
	}
	return 0
}

// read waits for the connection's end: the server sends no data, only its
// close.
func (s *Stream) read() {
	defer close(s.closed)
	for {
		if _, _, err := s.ws.Read(context.Background()); err != nil {
			s.err = err
			return
		}
	}
}

func (s *Stream) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Raw(b)
}

// sendSeq sends a message with the next sequenceNumber (a string, as
// Twilio writes its numbers).
func (s *Stream) sendSeq(m map[string]any) error {
	s.seq++
	m["sequenceNumber"] = strconv.Itoa(s.seq)
	return s.send(m)
}

// Raw sends b as one text message, whatever it holds.
func (s *Stream) Raw(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.ws.Write(ctx, websocket.MessageText, b)
}

// Binary sends b as one binary message.
func (s *Stream) Binary(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.ws.Write(ctx, websocket.MessageBinary, b)
}

// Media sends one chunk of track's audio (8 kHz, [-1, 1]) stamped at ms
// since the stream started.
func (s *Stream) Media(track string, ms int64, pcm []float32) error {
	s.chunk[track]++
	lin := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		x := int16(math.Round(float64(max(-1, min(1, v))) * 32767))
		lin[2*i], lin[2*i+1] = byte(x), byte(x>>8)
	}
	enc := g711.EncodeUlaw(lin)
	if s.alaw {
		enc = g711.EncodeAlaw(lin)
	}
	return s.sendSeq(map[string]any{"event": "media", "streamSid": s.sid, "media": map[string]any{"track": track,
		"chunk": strconv.Itoa(s.chunk[track]), "timestamp": strconv.FormatInt(ms, 10),
		"payload": base64.StdEncoding.EncodeToString(enc)}})
}

// ChunkMs is the audio one media message carries, as Twilio sends it.
const ChunkMs = 20

// Play sends each track's audio (8 kHz) from the stream's ms at, in 20 ms
// chunks at the pace of the wall clock when realtime (as fast as the
// socket takes them otherwise). A track's messages go out lag after their
// audio was spoken (the tracks arrive out of step), stamped all the same.
func (s *Stream) Play(ctx context.Context, at int64, tracks map[string][]float32, lag map[string]time.Duration, realtime bool) error {
	type msg struct {
		track string
		ms    int64
		due   time.Duration
		pcm   []float32
	}
	var msgs []msg
	for name, pcm := range tracks {
		for i := 0; i < len(pcm); i += ChunkMs * 8 {
			ms := at + int64(i/8)
			msgs = append(msgs, msg{name, ms, time.Duration(ms+ChunkMs)*time.Millisecond + lag[name], pcm[i:min(i+ChunkMs*8, len(pcm))]})
		}
	}
	slices.SortStableFunc(msgs, func(a, b msg) int {
		return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.track, b.track))
	})
	for _, m := range msgs {
		if realtime {
			if wait := time.Until(s.start.Add(m.due)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if err := s.Media(m.track, m.ms, m.pcm); err != nil {
			return err
		}
	}
	return nil
}

// DTMF sends a digit keyed on track (Twilio names it inbound_track).
func (s *Stream) DTMF(track string, digit byte) error {
	return s.sendSeq(map[string]any{"event": "dtmf", "streamSid": s.sid, "dtmf": map[string]any{"track": track + "_track", "digit": string(digit)}})
}

// Mark sends a mark.
func (s *Stream) Mark(name string) error {
	return s.sendSeq(map[string]any{"event": "mark", "streamSid": s.sid, "mark": map[string]any{"name": name}})
}

// Stop sends stop, as Twilio does when the call or the stream ends, and
// waits for the server to close.
func (s *Stream) Stop(ctx context.Context) (websocket.StatusCode, error) {
	if err := s.sendSeq(map[string]any{"event": "stop", "streamSid": s.sid, "stop": map[string]any{}}); err != nil {
		return -1, err
	}
	return s.Wait(ctx)
}

// Wait waits for the server to close the stream and returns its close
// code (-1 for none: the connection broke).
func (s *Stream) Wait(ctx context.Context) (websocket.StatusCode, error) {
	select {
	case <-s.closed:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	s.Vanish()
	return websocket.CloseStatus(s.err), nil
}

// CloseReason is the reason of the server's close, once Wait returned.
func (s *Stream) CloseReason() string {
	var ce websocket.CloseError
	if errors.As(s.err, &ce) {
		return ce.Reason
	}
	return ""
}

// Vanish drops the connection without a close (a peer gone mid-call) and
// waits for the reader. Idempotent.
func (s *Stream) Vanish() {
	s.once.Do(func() { s.ws.CloseNow() })
	<-s.closed
}
