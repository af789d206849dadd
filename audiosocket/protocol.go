// Package audiosocket takes calls from Asterisk over AudioSocket: a TCP
// connection per call, dialed by Asterisk's AudioSocket() application or
// channel, carrying the call's audio (one leg, mono) in small typed
// messages. It holds the protocol and the connections' lives; admission,
// recognition and publishing are the ingest.Admitter's.
package audiosocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Kind is a message's type, its header's first byte. The kinds and their
// payloads are those of Asterisk's include/asterisk/res_audiosocket.h.
type Kind byte

// The kinds Asterisk sends (and 0x00, which either side may send).
const (
	// KindHangup ends the call; no payload. Closing the socket is the same.
	KindHangup Kind = 0x00
	// KindUUID is the first message: the call's 16-byte binary UUID.
	KindUUID Kind = 0x01
	// KindDTMF is one digit, one ASCII byte.
	KindDTMF Kind = 0x03
	// KindSlin is audio: 16-bit signed linear, little-endian, 8 kHz mono
	// (or whatever Config.Kind10 says the channel driver was given).
	KindSlin Kind = 0x10
	// KindSlin12 to KindSlin192 are audio at higher rates (Asterisk 20.17,
	// 21.12, 22.7, 23.1 and later). 0x11 is 12 kHz there; a draft of that
	// change made it 16 kHz (Config.Kind11).
	KindSlin12  Kind = 0x11
	KindSlin16  Kind = 0x12
	KindSlin24  Kind = 0x13
	KindSlin32  Kind = 0x14
	KindSlin44  Kind = 0x15
	KindSlin48  Kind = 0x16
	KindSlin96  Kind = 0x17
	KindSlin192 Kind = 0x18
	// KindError reports an error; its payload is an optional code (from
	// Asterisk: ErrCodeHangup, ErrCodeFrame, ErrCodeMemory). We send it,
	// with the reason as text, before closing a connection we refuse.
	KindError Kind = 0xFF
)

// Asterisk's error codes, bits of the error message's one-byte payload.
const (
	ErrCodeHangup = 0x01 // the calling party hung up
	ErrCodeFrame  = 0x02 // a frame could not be forwarded
	ErrCodeMemory = 0x04 // an allocation failed
)

// HeaderLen is the length of a message's header: kind and a big-endian
// payload length.
const HeaderLen = 3

// MaxPayload is the longest payload a header can announce.
const MaxPayload = 0xFFFF

// maxAudioMs is the most audio one message may carry. Asterisk sends a
// frame at a time (20 ms); a second bounds what a sender may burst.
const maxAudioMs = 1000

// ErrMalformed is wrapped by the errors about a message that breaks the
// protocol; the connection is refused or ended with KindError.
var ErrMalformed = errors.New("audiosocket: malformed message")

// Message is one message read. Payload is valid until the next read.
type Message struct {
	Kind    Kind
	Payload []byte
}

// Reader reads messages from a connection into one reused buffer.
type Reader struct {
	r   io.Reader
	hdr [HeaderLen]byte
	buf []byte
}

// NewReader reads messages from r (a bufio.Reader over the connection,
// so that a small message is not a system call of its own).
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads the next message. It returns io.EOF when the stream ends
// between messages, io.ErrUnexpectedEOF inside one, or the read's error.
// A payload longer than its kind allows is an ErrMalformed before it is
// read: the length bounds what a stranger makes us hold.
func (r *Reader) Next() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Message{}, err
	}
	k, n := Kind(r.hdr[0]), int(binary.BigEndian.Uint16(r.hdr[1:]))
	if max := maxPayload(k); n > max {
		return Message{Kind: k}, fmt.Errorf("%w: %s with %d bytes (at most %d)", ErrMalformed, k, n, max)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Message{Kind: k}, err
	}
	return Message{Kind: k, Payload: p}, nil
}

// maxPayload is the longest payload of a kind; an unknown kind may carry
// any (it is refused once read, with its name).
func maxPayload(k Kind) int {
	switch k {
	case KindHangup:
		return 0
	case KindUUID:
		return 16
	case KindDTMF:
		return 1
	case KindError:
		return 256
	}
	rate := k.rate()
	if k == KindSlin12 {
		rate = 16000 // the larger of its two meanings
	}
	if rate > 0 {
		return min(MaxPayload, rate*2*maxAudioMs/1000)
	}
	return MaxPayload
}

// rate is the sample rate of an audio kind as Asterisk defines it; 0 for
// the other kinds.
func (k Kind) rate() int {
	switch k {
	case KindSlin:
		return 8000
	case KindSlin12:
		return 12000
	case KindSlin16:
		return 16000
	case KindSlin24:
		return 24000
	case KindSlin32:
		return 32000
	case KindSlin44:
		return 44100
	case KindSlin48:
		return 48000
	case KindSlin96:
		return 96000
	case KindSlin192:
		return 192000
	}
	return 0
}

// IsAudio tells an audio kind.
func (k Kind) IsAudio() bool { return k.rate() > 0 }

func (k Kind) String() string {
	switch k {
	case KindHangup:
		return "hangup"
	case KindUUID:
		return "uuid"
	case KindDTMF:
		return "dtmf"
	case KindError:
		return "error"
	case KindSlin:
		return "audio 0x10"
	}
	if k.IsAudio() {
		return fmt.Sprintf("audio %#02x", byte(k))
	}
	return fmt.Sprintf("kind %#02x", byte(k))
}

// AppendMessage appends a message to b: the header, then payload (at most
// MaxPayload bytes; longer is cut).
func AppendMessage(b []byte, k Kind, payload []byte) []byte {
	payload = payload[:min(len(payload), MaxPayload)]
	b = append(b, byte(k), 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-2:], uint16(len(payload)))
	return append(b, payload...)
}

// ParseUUID reads a UUID message's payload as the UUID's text form
// (lower case, 8-4-4-4-12), the call's id.
func ParseUUID(p []byte) (string, error) {
	if len(p) != 16 {
		return "", fmt.Errorf("%w: a UUID of %d bytes", ErrMalformed, len(p))
	}
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, c := range p {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xF])
	}
	id := string(b)
	if id == "00000000-0000-0000-0000-000000000000" {
		return "", fmt.Errorf("%w: the nil UUID", ErrMalformed)
	}
	return id, nil
}

// ParseDTMF reads a DTMF message's payload: one of 0-9 * # A-D.
func ParseDTMF(p []byte) (byte, error) {
	if len(p) != 1 {
		return 0, fmt.Errorf("%w: DTMF of %d bytes", ErrMalformed, len(p))
	}
	d := p[0]
	switch {
	case d >= '0' && d <= '9', d == '*', d == '#', d >= 'A' && d <= 'D':
		return d, nil
	case d >= 'a' && d <= 'd':
		return d - 'a' + 'A', nil
	}
	return 0, fmt.Errorf("%w: DTMF %q", ErrMalformed, d)
}
