// Package webrtctest is a browser stand-in for tests: a pion peer that
// publishes a PCMU audio track to a WHIP endpoint on loopback.
package webrtctest

import (
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
	Location string // the session URL path, after Publish
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
	m := &pw.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := pw.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := pw.NewAPI(pw.WithMediaEngine(m), pw.WithSettingEngine(se)).NewPeerConnection(pw.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	track, err := pw.NewTrackLocalStaticSample(codec, "audio", "callscribe-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	return &Client{PC: pc, track: track}
}

// Offer returns the complete SDP offer (candidates gathered).
func (c *Client) Offer(t testing.TB) string {
	t.Helper()
	offer, err := c.PC.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := pw.GatheringCompletePromise(c.PC)
	if err := c.PC.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return c.PC.LocalDescription().SDP
}

// Publish POSTs the offer to url and applies the answer.
func (c *Client) Publish(t testing.TB, url string) {
	t.Helper()
	res, err := http.Post(url, "application/sdp", strings.NewReader(c.Offer(t)))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", res.StatusCode, answer)
	}
	c.Location = res.Header.Get("Location")
	if err := c.PC.SetRemoteDescription(pw.SessionDescription{Type: pw.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
}

// Speak sends PCMU bytes (8 kHz) in real time, 20 ms a packet.
func (c *Client) Speak(pcmu []byte) {
	start := time.Now()
	for k := 0; (k+1)*160 <= len(pcmu); k++ {
		c.track.WriteSample(media.Sample{Data: pcmu[160*k : 160*(k+1)], Duration: 20 * time.Millisecond})
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
	req, _ := http.NewRequest(http.MethodDelete, base+c.Location, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("WHIP DELETE: %v %v", res, err)
	}
	res.Body.Close()
}
