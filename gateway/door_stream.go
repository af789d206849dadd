package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/callscribe/callscribe/audiofork"
)

// StreamConfig is the stream section: audio-fork WebSockets (FreeSWITCH
// mod_audio_fork and mod_audio_stream, jambonz listen, Vonage) and
// jambonz's speech-to-text API on the HTTP listener (package audiofork),
// and the gateway's admission limits of their calls.
type StreamConfig struct {
	// Enabled takes calls through this door: forks at path, jambonz's
	// recognizer at jambonz_path.
	Enabled          bool `yaml:"enabled"`
	audiofork.Config `yaml:",inline"`
	// The gateway's admission limits of the door's calls.
	CallLimits `yaml:",inline"`
}

// DefaultStreamConfig is the section's defaults: off, the protocol
// package's defaults, 200 calls.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Config: audiofork.DefaultConfig(), CallLimits: CallLimits{MaxCalls: 200}}
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *StreamConfig) Validate() error {
	return c.CallLimits.validateDoor(c.Enabled, &c.Config)
}

// limits adds the door's admission limits, for each of its sources.
func (c *StreamConfig) limits(l *Limits) {
	if c.Enabled {
		c.CallLimits.add(l, audiofork.SourceStream, audiofork.SourceJambonz)
	}
}

// openStream opens the door when it is enabled (nil: it is not): both
// endpoints on the HTTP mux, admitted by the registry, jambonz's calls
// given their results from the publisher's in-process feed.
func (s *Service) openStream(mux *http.ServeMux) (door, error) {
	if !s.cfg.Stream.Enabled {
		return nil, nil
	}
	cfg := s.cfg.Stream.Config
	cfg.Logger = s.log
	srv, err := audiofork.NewServer(cfg, s.calls, s.streamResults)
	if err != nil {
		return nil, err
	}
	for _, p := range srv.Paths() {
		mux.Handle(p, srv)
	}
	return srv, nil
}

// streamResults follows a call's partials and finals as published, as
// jambonz's API sends them: a final's display text and confidence, a
// partial's words. The channel closes after call.end or stop; stop waits
// for its goroutine.
func (s *Service) streamResults(callID string) (<-chan audiofork.Result, func()) {
	sub := s.pub.Subscribe(callID, subscriptionBuffer)
	out := make(chan audiofork.Result, subscriptionBuffer)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for e := range sub.C() {
			if e.Type == "call.end" {
				return
			}
			if e.Type != "partial" && e.Type != "final" {
				continue
			}
			r := audiofork.Result{Leg: e.Fields["leg"], Final: e.Type == "final", Text: e.Fields["text"]}
			if d := e.Fields["display"]; r.Final && d != "" {
				r.Text = d
			}
			r.Confidence, _ = strconv.ParseFloat(e.Fields["conf"], 64)
			if strings.TrimSpace(r.Text) == "" {
				continue
			}
			select {
			case out <- r:
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(quit)
			sub.Close()
			<-done
		})
	}
}
