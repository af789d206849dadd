package gateway

import (
	"net/http"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/audiohook"
	"github.com/callscribe/callscribe/transcript"
)

// AudioHookConfig is the audiohook section: Genesys Cloud AudioHook (protocol version 2), a WebSocket at /audiohook on the HTTP listener.
type AudioHookConfig struct {
	// Enabled takes calls through this door.
	Enabled          bool `yaml:"enabled"`
	audiohook.Config `yaml:",inline"`
	// The gateway's admission limits of the door's calls.
	CallLimits `yaml:",inline"`
}

// DefaultAudioHookConfig is the section's defaults: off, the protocol
// package's defaults, 100 sessions.
func DefaultAudioHookConfig() AudioHookConfig {
	return AudioHookConfig{Config: audiohook.DefaultConfig(), CallLimits: CallLimits{MaxCalls: 100}}
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *AudioHookConfig) Validate() error {
	return c.CallLimits.validateDoor(c.Enabled, &c.Config)
}

// limits adds the door's admission limits.
func (c *AudioHookConfig) limits(l *Limits) {
	if c.Enabled {
		c.CallLimits.add(l, audiohook.Source)
	}
}

// subscriptionBuffer is the events a session's subscription holds before
// it loses some: a call's finals and its end are far fewer.
const subscriptionBuffer = 256

// openAudioHook opens the door when it is enabled (nil: it is not): the
// WebSocket on the HTTP mux, admitted by the registry, its finals sent back
// from the publisher's in-process feed.
func (s *Service) openAudioHook(mux *http.ServeMux) (door, error) {
	if !s.cfg.AudioHook.Enabled {
		return nil, nil
	}
	if mode := s.cfg.ASR.Endpoint.Mode; mode != asr.EndpointVAD {
		// Transcription Connector consumers (and Genesys's suite) expect a
		// transcript per phrase: rules end an utterance after 1.2 s of
		// silence, VAD at asr.endpoint.vad_min_silence.
		s.log.Info("audiohook: transcripts follow pauses better with asr.endpoint.mode vad", "mode", mode)
	}
	cfg := s.cfg.AudioHook.Config
	cfg.Logger = s.log
	feed := func(callID string) (<-chan transcript.Event, func()) {
		sub := s.pub.Subscribe(callID, subscriptionBuffer)
		return sub.C(), sub.Close
	}
	srv, err := audiohook.NewServer(cfg, s.calls, feed)
	if err != nil {
		return nil, err
	}
	mux.Handle(cfg.Path, srv)
	return srv, nil
}
