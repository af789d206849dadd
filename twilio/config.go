package twilio

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/callscribe/callscribe/ingest"
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
	// The limits on strangers' connections, as every door has them.
	ingest.ConnLimits `yaml:",inline"`
	// The bound of a message: a media message of 20 ms is about 250
	// bytes, a start message with custom parameters a few KiB.
	ingest.MessageLimit `yaml:",inline"`
	// Leg configures the audio receive path.
	Leg media.LegOptions `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const DefaultPath = "/twilio"

// DefaultLimits are the door's limits on connections: Twilio sends many
// calls' streams from few addresses (no bound per address), a media
// message every 20 ms, calls of up to 4 h.
var DefaultLimits = ingest.ConnLimits{ConnectRate: 10, ConnectBurst: 50, StartTimeout: 10 * time.Second,
	IdleTimeout: 15 * time.Second, MaxDuration: 4 * time.Hour}

// DefaultMessageLimit bounds a message at 64 KiB.
var DefaultMessageLimit = ingest.MessageLimit{MaxMessageBytes: 64 << 10}

// DefaultConfig is the configuration a gateway serves Media Streams with
// when its file says nothing but enabled: at /twilio, without a signature
// check, streams rate-limited per address.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, ConnLimits: DefaultLimits, MessageLimit: DefaultMessageLimit}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	c.ConnLimits.Fill(DefaultLimits)
	c.MessageLimit.Fill(DefaultMessageLimit)
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
	if err := c.ConnLimits.Validate(); err != nil {
		return err
	}
	return c.MessageLimit.Validate()
}
