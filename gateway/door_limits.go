package gateway

import "errors"

// CallLimits are a door's admission limits, which the gateway keeps: its
// calls at once, in all and from one address. Each door's section embeds
// them (yaml inline), beside its protocol's limits on connections
// (ingest.ConnLimits).
type CallLimits struct {
	// MaxCalls bounds the door's calls at once (the stream door: of each
	// of its two endpoints); more are refused, with 503 and Retry-After
	// before a WebSocket upgrade when the door is full already, else in
	// the protocol's words once the call says who it is (a close 1013,
	// AudioHook's disconnect, AudioSocket's error message, limit).
	MaxCalls int `yaml:"max_calls"`
	// MaxCallsPerAddress bounds the door's calls at once from one address,
	// refused like max_calls'; 0: no bound but max_calls.
	MaxCallsPerAddress int `yaml:"max_calls_per_address"`
}

// validateDoor checks a door's section when the door is enabled: its
// protocol's keys, then these; an error names the key within the section.
func (c *CallLimits) validateDoor(enabled bool, protocol interface{ Validate() error }) error {
	if !enabled {
		return nil
	}
	if err := protocol.Validate(); err != nil {
		return err
	}
	return c.validate()
}

// validate checks the limits as written; an error names the key.
func (c *CallLimits) validate() error {
	if c.MaxCalls <= 0 {
		return errors.New("max_calls: out of range")
	}
	if c.MaxCallsPerAddress < 0 {
		return errors.New("max_calls_per_address: out of range")
	}
	return nil
}

// add sets the limits of each of the door's sources.
func (c *CallLimits) add(l *Limits, sources ...string) {
	if l.MaxCalls == nil {
		l.MaxCalls = map[string]int{}
	}
	if l.MaxPerPeer == nil {
		l.MaxPerPeer = map[string]int{}
	}
	for _, src := range sources {
		l.MaxCalls[src] = c.MaxCalls
		l.MaxPerPeer[src] = c.MaxCallsPerAddress
	}
}
