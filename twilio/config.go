package twilio

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/callscribe/callscribe/media"
)

// Config configures the Media Streams endpoint; it is the twilio section of
// the gateway's configuration file (the gateway adds whether it is served
// and its admission limits). DefaultConfig holds the file's defaults. A
// Config built by hand takes the default a field's comment names when the
// field is zero, unless the comment gives zero a meaning of its own.
type Config struct {
	// Path is where the WebSocket is served on the HTTP address
	// (http.addr + path); the <Stream url> of the TwiML names it. Default
	// /twilio.
	Path string `yaml:"path"`
	// AuthToken is the Twilio account's auth token: every upgrade request
	// must carry an X-Twilio-Signature made with it over the URL Twilio
	// dialled (403 otherwise). Empty: the signature is not checked, and
	// the door takes streams from anyone who reaches the HTTP port.
	AuthToken string `yaml:"auth_token"`
	// PublicURL is the URL the <Stream url> names (wss://host/path), the
	// one Twilio signs, when a proxy in front of the gateway changes the
	// host, port or path the request arrives with. Empty: the URL is
	// rebuilt from the request (wss or ws, its Host header and path).
	PublicURL string `yaml:"public_url"`
	// BearerToken, when set, must arrive as "Authorization: Bearer ..." on
	// the upgrade request (SignalWire's authBearerToken); 401 otherwise.
	BearerToken string `yaml:"bearer_token"`
	// ConnectRate limits the streams one address may open: a token bucket
	// per address of this many a second, bursts of connect_burst; beyond
	// it 429 with Retry-After, before the upgrade. 0: no limit.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is the size of connect_rate's bucket.
	ConnectBurst int `yaml:"connect_burst"`
	// MaxCallsPerAddress bounds the streams open at once from one address
	// (before their start message too); more get 503 before the upgrade.
	// Twilio sends many calls' streams from few addresses: 0, no bound.
	MaxCallsPerAddress int `yaml:"max_calls_per_address"`
	// StartTimeout ends a stream whose start message has not come this
	// long after the upgrade; default 10 s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// IdleTimeout ends a stream that sent no message for this long (the
	// peer vanished); default 15 s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxDuration ends a stream this long after it started (reason
	// timeout); default 4 h, the longest Twilio call.
	MaxDuration time.Duration `yaml:"max_duration"`
	// MaxMessageBytes bounds one WebSocket message; a longer one closes
	// the stream (1009). Default 65536: a media message of 20 ms is about
	// 250 bytes, a start message with custom parameters a few KiB.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// Leg configures the audio receive path.
	Leg media.LegOptions `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultPath            = "/twilio"
	DefaultStartTimeout    = 10 * time.Second
	DefaultIdleTimeout     = 15 * time.Second
	DefaultMaxDuration     = 4 * time.Hour
	DefaultMaxMessageBytes = 64 << 10
)

// DefaultConfig is the configuration a gateway serves Media Streams with
// when its file says nothing but enabled: at /twilio, without a signature
// check, streams rate-limited per address.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, ConnectRate: 10, ConnectBurst: 50, StartTimeout: DefaultStartTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxDuration: DefaultMaxDuration, MaxMessageBytes: DefaultMaxMessageBytes}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field as written (a zero that has a default is an
// error here); an error names the first bad field by its key in the
// twilio section ("public_url: ...").
func (c *Config) Validate() error {
	if !strings.HasPrefix(c.Path, "/") || strings.HasSuffix(c.Path, "/") || c.Path == "/" {
		return fmt.Errorf("path: %q: want a path like /twilio", c.Path)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("public_url: %q: want a URL like wss://host/twilio", c.PublicURL)
		}
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"connect_rate", c.ConnectRate >= 0}, {"connect_burst", c.ConnectBurst >= 0},
		{"max_calls_per_address", c.MaxCallsPerAddress >= 0},
		{"start_timeout", c.StartTimeout > 0}, {"idle_timeout", c.IdleTimeout > 0},
		{"max_duration", c.MaxDuration > 0},
		{"max_message_bytes", c.MaxMessageBytes >= 1024 && c.MaxMessageBytes <= 16<<20},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}
