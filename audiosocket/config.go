package audiosocket

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/callscribe/callscribe/ingest"
)

// Config configures the AudioSocket listener; it is the audiosocket
// section of the gateway's configuration file (the gateway adds whether it
// is on and its admission limits). DefaultConfig holds the file's
// defaults. A Config built by hand takes the default a field's comment
// names when the field is zero.
type Config struct {
	// Listen is the TCP address Asterisk's AudioSocket() dials (IP:PORT);
	// default :9092.
	Listen string `yaml:"listen"`
	// AllowCIDRs are the only addresses whose connections are taken (the
	// protocol has no authentication): the Asterisk servers. Others are
	// closed before a byte is read. Required: 0.0.0.0/0 and ::/0 take
	// any.
	AllowCIDRs []netip.Prefix `yaml:"allow_cidrs"`
	// The limits on strangers' connections, as every door has them; the
	// start timeout waits for the call's UUID, and Asterisk sends a frame
	// every 20 ms, so a short idle_timeout finds a vanished peer.
	ingest.ConnLimits `yaml:",inline"`
	// Kind10 is what audio messages of kind 0x10 carry: slin (16-bit
	// linear at 8 kHz: the protocol, and always so from the AudioSocket()
	// application), or ulaw or alaw, for an AudioSocket channel dialed
	// with c(ulaw) or c(alaw) (Asterisk sends any codec as 0x10). Default
	// slin.
	Kind10 string `yaml:"kind10"`
	// Kind11 is the rate of audio messages of kind 0x11: slin12 (12 kHz,
	// as Asterisk releases define it) or slin16 (16 kHz, as a draft of
	// that change and clients written to it do). Default slin12. Kinds
	// 0x12-0x18 are slin16 to slin192 either way.
	Kind11 string `yaml:"kind11"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultListen = ":9092"
	DefaultKind10 = "slin"
	DefaultKind11 = "slin12"
)

// DefaultLimits are the door's limits on connections: an Asterisk server
// opens a connection a call, many at once (no bound per address).
var DefaultLimits = ingest.ConnLimits{ConnectRate: 50, ConnectBurst: 200, StartTimeout: 5 * time.Second,
	IdleTimeout: 10 * time.Second, MaxDuration: 4 * time.Hour}

// DefaultConfig is the configuration the door takes when its file says
// nothing but the addresses it allows.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, AllowCIDRs: []netip.Prefix{}, ConnLimits: DefaultLimits,
		Kind10: DefaultKind10, Kind11: DefaultKind11}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	c.ConnLimits.Fill(d.ConnLimits)
	if c.Kind10 == "" {
		c.Kind10 = d.Kind10
	}
	if c.Kind11 == "" {
		c.Kind11 = d.Kind11
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field as written; an error names the first bad
// field by its key in the audiosocket section ("allow_cidrs: ...").
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q: want IP:PORT", c.Listen)
	}
	if len(c.AllowCIDRs) == 0 {
		return errors.New("allow_cidrs: empty: AudioSocket has no authentication; list the Asterisk servers (0.0.0.0/0 takes any)")
	}
	for _, p := range c.AllowCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("allow_cidrs: %v: want a CIDR", p)
		}
	}
	if _, err := codecOf(c.Kind10); err != nil || (c.Kind10 != "slin" && c.Kind10 != "ulaw" && c.Kind10 != "alaw") {
		return fmt.Errorf("kind10: %q: want slin, ulaw or alaw", c.Kind10)
	}
	if c.Kind11 != "slin12" && c.Kind11 != "slin16" {
		return fmt.Errorf("kind11: %q: want slin12 or slin16", c.Kind11)
	}
	return c.ConnLimits.Validate()
}

// allowed tells whether a peer's address is in the allowlist.
func (c *Config) allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.AllowCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
