// Package audiosockettest is an AudioSocket client for tests, written
// from the protocol's definition (docs.asterisk.org, AudioSocket; Asterisk's
// res_audiosocket.c) rather than from package audiosocket, so that a
// misreading of the protocol there is not repeated here: it dials as
// Asterisk's AudioSocket() does, sends the UUID, audio frames of 20 ms at
// the pace of a call, DTMF and hangups, and reads what the server sends.
package audiosockettest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

// The message kinds, as the protocol numbers them.
const (
	Hangup  = 0x00
	UUID    = 0x01
	DTMF    = 0x03
	Slin    = 0x10 // 8 kHz
	Slin12  = 0x11 // 12 kHz (Asterisk); 16 kHz in the draft
	Slin16  = 0x12
	Slin24  = 0x13
	Slin32  = 0x14
	Slin44  = 0x15
	Slin48  = 0x16
	Slin96  = 0x17
	Slin192 = 0x18
	Error   = 0xFF
)

// FrameMs is the length of the audio frames Asterisk sends.
const FrameMs = 20

// Client is one AudioSocket connection, as Asterisk makes it.
type Client struct {
	conn net.Conn
	// ID is the call's UUID, sent by Hello.
	ID [16]byte
}

// Dial connects to a server and gives the call a random UUID.
func Dial(addr string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn}
	rand.Read(c.ID[:])
	c.ID[6] = c.ID[6]&0x0F | 0x40 // version 4
	c.ID[8] = c.ID[8]&0x3F | 0x80 // RFC 4122 variant
	return c, nil
}

// CallID is the UUID's text form, the id the call has on Redis.
func (c *Client) CallID() string {
	b := c.ID
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Conn is the connection, for tests that break the protocol.
func (c *Client) Conn() net.Conn { return c.conn }

// Send writes one message: kind, the payload's length (big-endian), the
// payload.
func (c *Client) Send(kind byte, payload []byte) error {
	b := make([]byte, 3+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint16(b[1:3], uint16(len(payload)))
	copy(b[3:], payload)
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// Hello sends the UUID message, the first of every connection.
func (c *Client) Hello() error { return c.Send(UUID, c.ID[:]) }

// Digit sends a DTMF digit.
func (c *Client) Digit(d byte) error { return c.Send(DTMF, []byte{d}) }

// Hangup sends the hangup message and closes the connection.
func (c *Client) Hangup() error {
	err := c.Send(Hangup, nil)
	c.conn.Close()
	return err
}

// Close closes the connection without a word (a peer that vanishes, or
// Asterisk after its channel hung up).
func (c *Client) Close() error { return c.conn.Close() }

// PCM is samples in [-1, 1] as 16-bit signed linear, little-endian.
func PCM(samples []float32) []byte {
	b := make([]byte, 2*len(samples))
	for i, x := range samples {
		v := math.Round(float64(x) * 32768)
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(max(-32768, min(32767, v)))))
	}
	return b
}

// Stream sends pcm (from PCM, or G.711 bytes) as messages of kind, each
// frameBytes long (the last one shorter), one every FrameMs when paced as
// a call is, back to back otherwise. before, when set, is called with each
// frame's index before it is sent (DTMF between frames).
func (c *Client) Stream(kind byte, pcm []byte, frameBytes int, paced bool, before func(i int) error) error {
	start := time.Now()
	for i := 0; len(pcm) > 0; i++ {
		if before != nil {
			if err := before(i); err != nil {
				return err
			}
		}
		n := min(frameBytes, len(pcm))
		if err := c.Send(kind, pcm[:n]); err != nil {
			return err
		}
		pcm = pcm[n:]
		if paced {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * FrameMs * time.Millisecond)))
		}
	}
	return nil
}

// FrameBytes is the length of a 20 ms frame of 16-bit audio at rate.
func FrameBytes(rate int) int { return rate * FrameMs / 1000 * 2 }

// Read reads the server's next message, waiting up to within.
func (c *Client) Read(within time.Duration) (kind byte, payload []byte, err error) {
	c.conn.SetReadDeadline(time.Now().Add(within))
	var h [3]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, binary.BigEndian.Uint16(h[1:]))
	if _, err := io.ReadFull(c.conn, payload); err != nil {
		return 0, nil, err
	}
	return h[0], payload, nil
}

// Closed tells whether the server closed the connection within a wait:
// reading gets EOF (or a reset) after any messages it sent.
func (c *Client) Closed(within time.Duration) bool {
	c.conn.SetReadDeadline(time.Now().Add(within))
	b := make([]byte, 512)
	for {
		if _, err := c.conn.Read(b); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}
