package gateway

import (
	"net/http"
)

// A door is a call source besides SIP and WHIP: a contact-center
// platform's own protocol for streaming call audio (AudioHook, Twilio
// Media Streams, audio-fork WebSockets, AudioSocket). Each door has its own
// file here: its configuration section, its admission limits and how the
// Service opens it. Every door is off until configured.
type door interface {
	// Close stops taking calls and ends the door's calls in progress
	// (reason shutdown); it returns once its goroutines are done.
	Close() error
}

// openDoors opens the doors the configuration enables: handlers on the
// HTTP mux, or listeners of their own. Each one opened is closed by
// closeDoors.
func (s *Service) openDoors(mux *http.ServeMux) error {
	for _, open := range []func(*http.ServeMux) (door, error){
		s.openAudioHook, s.openTwilio, s.openStream, s.openAudioSocket,
	} {
		d, err := open(mux)
		if err != nil {
			return err
		}
		if d != nil {
			s.doors = append(s.doors, d)
		}
	}
	return nil
}

// closeDoors closes the doors open, the last opened first.
func (s *Service) closeDoors() {
	for i := len(s.doors) - 1; i >= 0; i-- {
		s.doors[i].Close()
	}
	s.doors = nil
}

// doorLimits adds the doors' admission limits: calls per source and per
// address.
func (c *Config) doorLimits(l *Limits) {
	c.AudioHook.limits(l)
	c.Twilio.limits(l)
	c.Stream.limits(l)
	c.AudioSocket.limits(l)
}
