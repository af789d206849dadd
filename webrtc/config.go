package webrtc

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/callscribe/callscribe/media"
)

// Config configures the WHIP endpoint; it is the webrtc section of the
// gateway's configuration file (the gateway adds whether it is served and
// its admission limit). DefaultConfig holds the file's defaults. A Config
// built by hand takes the default a field's comment names when the field
// is zero, unless the comment gives zero a meaning of its own.
type Config struct {
	// Path is where WHIP is served on the HTTP address (http.addr + path):
	// POST an SDP offer, get the answer and the session's Location
	// (path/<id>); DELETE it to hang up. Default /whip.
	Path string `yaml:"path"`
	// Token is the bearer token every WHIP, /events and pause/resume
	// request must carry (the page takes it from its own ?token=). Empty:
	// WHIP is open, and /events and pause/resume answer clients on this
	// host only (403 others).
	Token string `yaml:"token"`
	// ICEPorts are the ICE UDP ports (LO-HI); empty: any.
	ICEPorts media.PortRange `yaml:"ice_ports"`
	// PublicIPs are the addresses announced as host candidates (NAT 1:1);
	// empty: the local ones.
	PublicIPs []string `yaml:"public_ips"`
	// Loopback offers 127.0.0.1 candidates too (a browser on this machine).
	Loopback bool `yaml:"loopback"`
	// OfferRate limits the offers one address may POST: a token bucket per
	// address of this many a second, bursts of offer_burst; beyond it 429
	// with Retry-After, before any work. 0: no limit.
	OfferRate float64 `yaml:"offer_rate"`
	// OfferBurst is the size of offer_rate's bucket: the offers one
	// address may POST at once.
	OfferBurst int `yaml:"offer_burst"`
	// ConnectTimeout ends a session whose ICE/DTLS has not connected in
	// this long; default 10 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MediaTimeout ends a session whose audio stopped this long ago;
	// default 30 s.
	MediaTimeout time.Duration `yaml:"media_timeout"`
	// Leg configures the audio receive path.
	Leg media.LegOptions `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultPath           = "/whip"
	DefaultConnectTimeout = 10 * time.Second
	DefaultMediaTimeout   = 30 * time.Second
)

// DefaultConfig is the configuration a gateway serves WHIP with when its
// file says nothing: at /whip, open, offers rate-limited per address,
// loopback candidates offered.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, PublicIPs: []string{}, Loopback: true, OfferRate: 5, OfferBurst: 20,
		ConnectTimeout: DefaultConnectTimeout, MediaTimeout: DefaultMediaTimeout}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = DefaultMediaTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field as written (a zero that has a default is an
// error here); an error names the first bad field by its key in the
// webrtc section ("ice_ports: ...").
func (c *Config) Validate() error {
	if !strings.HasPrefix(c.Path, "/") || strings.HasSuffix(c.Path, "/") || c.Path == "/" {
		return fmt.Errorf("path: %q: want a path like /whip", c.Path)
	}
	if err := c.ICEPorts.Validate(); err != nil {
		return fmt.Errorf("ice_ports: %w", err)
	}
	for _, ip := range c.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("public_ips: %q: want an IP address", ip)
		}
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"offer_rate", c.OfferRate >= 0}, {"offer_burst", c.OfferBurst >= 0},
		{"connect_timeout", c.ConnectTimeout > 0}, {"media_timeout", c.MediaTimeout > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}
