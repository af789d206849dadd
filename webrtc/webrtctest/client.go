// Package webrtctest is a browser stand-in for tests: a pion peer that
// publishes a PCMU audio track to a WHIP endpoint on loopback.
package webrtctest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pw "github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// Client is one WHIP publisher.
type Client struct {
	PC       *pw.PeerConnection
	track    *pw.TrackLocalStaticSample
	extra    []*pw.TrackLocalStaticSample // AddTrack's
	Location string                       // the session URL path, after Publish
}

// NewClient makes a peer with a PCMU track; closed when the test ends.
func NewClient(t testing.TB) *Client {
	return NewClientCodec(t, pw.RTPCodecCapability{MimeType: pw.MimeTypePCMU, ClockRate: 8000})
}

// NewOpusClient makes a peer with an Opus track (48 kHz, as browsers send).
func NewOpusClient(t testing.TB) *Client {
	return NewClientCodec(t, pw.RTPCodecCapability{MimeType: pw.MimeTypeOpus, ClockRate: 48000, Channels: 2})
}

// NewClientCodec makes a peer whose audio track has the given codec.
func NewClientCodec(t testing.TB, codec pw.RTPCodecCapability) *Client {
	t.Helper()
	c, err := Dial(codec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.PC.Close() })
	return c
}

// Dial makes a peer whose audio track has the given codec, for programs
// (load generators); Close it when done.
func Dial(codec pw.RTPCodecCapability) (*Client, error) {
	m := &pw.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	se := pw.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := pw.NewAPI(pw.WithMediaEngine(m), pw.WithSettingEngine(se)).NewPeerConnection(pw.Configuration{})
	if err != nil {
		return nil, err
	}
	track, err := pw.NewTrackLocalStaticSample(codec, "audio", "callscribe-test")
	if err == nil {
		_, err = pc.AddTrack(track)
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &Client{PC: pc, track: track}, nil
}

// AddTrack adds a second audio track with the same codec (a peer that
// offers more than the endpoint takes); Speak sends on both.
func (c *Client) AddTrack() error {
	track, err := pw.NewTrackLocalStaticSample(c.track.Codec(), "audio2", "callscribe-test-2")
	if err != nil {
		return err
	}
	if _, err := c.PC.AddTrack(track); err != nil {
		return err
	}
	c.extra = append(c.extra, track)
	return nil
}

// Close ends the peer connection.
func (c *Client) Close() error { return c.PC.Close() }

// Offer returns the complete SDP offer (candidates gathered).
func (c *Client) Offer(t testing.TB) string {
	t.Helper()
	sdp, err := c.offer()
	if err != nil {
		t.Fatal(err)
	}
	return sdp
}

func (c *Client) offer() (string, error) {
	offer, err := c.PC.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := pw.GatheringCompletePromise(c.PC)
	if err := c.PC.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-gathered
	return c.PC.LocalDescription().SDP, nil
}

// Publish POSTs the offer to url and applies the answer.
func (c *Client) Publish(t testing.TB, url string) {
	t.Helper()
	if err := c.PublishTo(url); err != nil {
		t.Fatal(err)
	}
}

// PublishTo is Publish for programs.
func (c *Client) PublishTo(url string) error {
	sdp, err := c.offer()
	if err != nil {
		return err
	}
	res, err := http.Post(url, "application/sdp", strings.NewReader(sdp))
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("WHIP POST: %d %s", res.StatusCode, answer)
	}
	c.Location = res.Header.Get("Location")
	return c.PC.SetRemoteDescription(pw.SessionDescription{Type: pw.SDPTypeAnswer, SDP: string(answer)})
}

// Speak sends PCMU bytes (8 kHz) in real time, 20 ms a packet.
func (c *Client) Speak(pcmu []byte) {
	start := time.Now()
	for k := 0; (k+1)*160 <= len(pcmu); k++ {
		c.track.WriteSample(media.Sample{Data: pcmu[160*k : 160*(k+1)], Duration: 20 * time.Millisecond})
		for _, x := range c.extra {
			x.WriteSample(media.Sample{Data: pcmu[160*k : 160*(k+1)], Duration: 20 * time.Millisecond})
		}
		time.Sleep(time.Until(start.Add(time.Duration(k+1) * 20 * time.Millisecond)))
	}
}

// SpeakPackets sends encoded frames (Opus packets of 20 ms) in real time.
func (c *Client) SpeakPackets(frames [][]byte) {
	start := time.Now()
	for k, f := range frames {
		c.track.WriteSample(media.Sample{Data: f, Duration: 20 * time.Millisecond})
		time.Sleep(time.Until(start.Add(time.Duration(k+1) * 20 * time.Millisecond)))
	}
}

// Hangup DELETEs the session at base+Location.
func (c *Client) Hangup(t testing.TB, base string) {
	t.Helper()
	if err := c.HangupAt(base); err != nil {
		t.Fatal(err)
	}
}

// HangupAt is Hangup for programs.
func (c *Client) HangupAt(base string) error {
	req, _ := http.NewRequest(http.MethodDelete, base+c.Location, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("WHIP DELETE: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("WHIP DELETE: %s", res.Status)
	}
	return nil
}
