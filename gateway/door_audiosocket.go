package gateway

import (
	"net/http"

	"github.com/callscribe/callscribe/audiosocket"
)

// AudioSocketConfig is the audiosocket section: Asterisk AudioSocket over
// TCP on a listener of its own (package audiosocket), and the gateway's
// admission limits of its calls.
type AudioSocketConfig struct {
	// Enabled takes calls through this door.
	Enabled            bool `yaml:"enabled"`
	audiosocket.Config `yaml:",inline"`
	// The gateway's admission limits of the door's calls.
	CallLimits `yaml:",inline"`
}

// DefaultAudioSocketConfig is the section's defaults: off, the protocol
// package's defaults, 200 calls.
func DefaultAudioSocketConfig() AudioSocketConfig {
	return AudioSocketConfig{Config: audiosocket.DefaultConfig(), CallLimits: CallLimits{MaxCalls: 200}}
}

// Validate checks the section when the door is enabled; an error names
// the key within it.
func (c *AudioSocketConfig) Validate() error {
	return c.CallLimits.validateDoor(c.Enabled, &c.Config)
}

// limits adds the door's admission limits.
func (c *AudioSocketConfig) limits(l *Limits) {
	if c.Enabled {
		c.CallLimits.add(l, audiosocket.Source)
	}
}

// openAudioSocket opens the door when it is enabled (nil: it is not): its
// own TCP listener, admitted by the registry.
func (s *Service) openAudioSocket(*http.ServeMux) (door, error) {
	ac := s.cfg.AudioSocket
	if !ac.Enabled {
		return nil, nil
	}
	cfg := ac.Config
	cfg.Logger = s.log
	srv, err := audiosocket.NewServer(cfg, s.calls)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	s.log.Info("gateway: audiosocket door open", "listen", srv.Addr().String(), "allow_cidrs", cfg.AllowCIDRs)
	return srv, nil
}
