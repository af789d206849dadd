package gateway

import (
	"net/http"

	"github.com/callscribe/callscribe/twilio"
)

// TwilioConfig is the twilio section: Twilio Media Streams (and the
// platforms that copied them), a WebSocket at path on the HTTP listener
// (package twilio), and the gateway's admission limits of its calls.
type TwilioConfig struct {
	// Enabled takes calls through this door.
	Enabled       bool `yaml:"enabled"`
	twilio.Config `yaml:",inline"`
	// The gateway's admission limits of the door's calls.
	CallLimits `yaml:",inline"`
}

// DefaultTwilioConfig is the section's defaults: off, the protocol
// package's defaults, 200 streams.
func DefaultTwilioConfig() TwilioConfig {
	return TwilioConfig{Config: twilio.DefaultConfig(), CallLimits: CallLimits{MaxCalls: 200}}
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *TwilioConfig) Validate() error {
	return c.CallLimits.validateDoor(c.Enabled, &c.Config)
}

// limits adds the door's admission limits.
func (c *TwilioConfig) limits(l *Limits) {
	if c.Enabled {
		c.CallLimits.add(l, twilio.Source)
	}
}

// openTwilio opens the door when it is enabled (nil: it is not): the
// WebSocket on the HTTP mux, admitted by the registry.
func (s *Service) openTwilio(mux *http.ServeMux) (door, error) {
	tc := s.cfg.Twilio
	if !tc.Enabled {
		return nil, nil
	}
	cfg := tc.Config
	cfg.Logger = s.log
	srv, err := twilio.NewServer(cfg, s.calls)
	if err != nil {
		return nil, err
	}
	mux.Handle(srv.Path(), srv)
	if cfg.AuthToken == "" && cfg.BearerToken == "" && !loopbackAddr(s.cfg.HTTP.Addr) {
		s.log.Warn("gateway: no twilio.auth_token: the Twilio door takes streams from anyone who reaches the HTTP port",
			"http", s.cfg.HTTP.Addr, "path", srv.Path())
	}
	return srv, nil
}
