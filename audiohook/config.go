package audiohook

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/callscribe/callscribe/ingest"
)

// Config configures the AudioHook endpoint; it is the audiohook section of
// the gateway's configuration file (the gateway adds whether it is served
// and its admission limits). DefaultConfig holds the file's defaults. A
// Config built by hand takes the default a field's comment names when the
// field is zero.
type Config struct {
	// Path is where the WebSocket is served on the HTTP address
	// (http.addr + path); the Genesys Cloud integration's Connection URI
	// is wss://<host><path>. Default /audiohook.
	Path string `yaml:"path"`
	// APIKey is the key the AudioHook integration sends in X-API-KEY and
	// names as the signature's keyid; required when the door is enabled.
	APIKey string `yaml:"api_key"`
	// ClientSecret is the integration's client secret (base64): every
	// connection must carry an HTTP message signature (RFC 9421,
	// hmac-sha256) made with it. Empty: connections are not signed, the
	// API key alone admits them.
	ClientSecret string `yaml:"client_secret"`
	// Languages are the languages answered when open asks for the
	// supported ones; default en-US.
	Languages []string `yaml:"languages"`
	// The limits on strangers' connections, as every door has them.
	ingest.ConnLimits `yaml:",inline"`
	// The bound of a text (JSON) message; the protocol's is 65535.
	ingest.MessageLimit `yaml:",inline"`
	// MaxFrameBytes bounds a binary (audio) message; default 32000, one
	// second of stereo L16.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// MaxSignatureAge is the oldest signature taken (its created
	// parameter); default 10 s. A nonce is not taken twice within it.
	MaxSignatureAge time.Duration `yaml:"max_signature_age"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultPath            = "/audiohook"
	DefaultMaxFrameBytes   = 32000
	DefaultMaxSignatureAge = 10 * time.Second
)

// DefaultLimits are the door's limits on connections: a Genesys region
// connects from few addresses, a client pings every few seconds (also
// while paused), a session may last a long call.
var DefaultLimits = ingest.ConnLimits{ConnectRate: 5, ConnectBurst: 20, MaxConnectionsPerAddress: 200,
	StartTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MaxDuration: 4 * time.Hour}

// DefaultMessageLimit is the protocol's bound of a text message.
var DefaultMessageLimit = ingest.MessageLimit{MaxMessageBytes: 65535}

// DefaultConfig is the configuration the door is served with when its
// section says nothing but enabled and the key.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, Languages: []string{"en-US"}, ConnLimits: DefaultLimits,
		MessageLimit: DefaultMessageLimit, MaxFrameBytes: DefaultMaxFrameBytes, MaxSignatureAge: DefaultMaxSignatureAge}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	d := DefaultConfig()
	if c.Path == "" {
		c.Path = d.Path
	}
	if len(c.Languages) == 0 {
		c.Languages = d.Languages
	}
	c.ConnLimits.Fill(d.ConnLimits)
	c.MessageLimit.Fill(d.MessageLimit)
	if c.MaxSignatureAge == 0 {
		c.MaxSignatureAge = d.MaxSignatureAge
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// The forms the reference client accepts: an API key of URL-safe or
// standard base64 characters, a language tag.
var (
	apiKeyForm   = regexp.MustCompile(`^[a-zA-Z0-9+/_-]+={0,2}$`)
	languageForm = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$`)
)

// secret is the client secret's bytes; nil when none is configured.
func (c *Config) secret() ([]byte, error) {
	if c.ClientSecret == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(c.ClientSecret)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Validate checks every field as written (a zero that has a default is an
// error here); an error names the first bad field by its key in the
// audiohook section ("api_key: ...").
func (c *Config) Validate() error {
	if !strings.HasPrefix(c.Path, "/") || strings.HasSuffix(c.Path, "/") {
		return fmt.Errorf("path: %q: want a path like /audiohook", c.Path)
	}
	if c.APIKey == "" {
		return fmt.Errorf("api_key: required (the key the Genesys Cloud integration sends)")
	}
	if !apiKeyForm.MatchString(c.APIKey) {
		return fmt.Errorf("api_key: want base64 characters (A-Z a-z 0-9 + / _ -, = padding)")
	}
	if _, err := c.secret(); err != nil {
		return fmt.Errorf("client_secret: not base64: %w", err)
	}
	if len(c.Languages) == 0 {
		return fmt.Errorf("languages: want at least one")
	}
	for _, l := range c.Languages {
		if !languageForm.MatchString(l) {
			return fmt.Errorf("languages: %q: want a language tag like en-US", l)
		}
	}
	if err := c.ConnLimits.Validate(); err != nil {
		return err
	}
	if err := c.MessageLimit.Validate(); err != nil {
		return err
	}
	if c.MaxFrameBytes < 320 || c.MaxFrameBytes > 1<<20 {
		return fmt.Errorf("max_frame_bytes: out of range")
	}
	if c.MaxSignatureAge <= 0 {
		return fmt.Errorf("max_signature_age: out of range")
	}
	return nil
}
