package audiohook

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
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
	// ConnectRate limits the connections one address may open: a token
	// bucket per address of this many a second, bursts of connect_burst;
	// beyond it HTTP 429 before the upgrade. 0: no limit.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is the size of connect_rate's bucket.
	ConnectBurst int `yaml:"connect_burst"`
	// MaxConnectionsPerPeer bounds the open WebSocket connections from one
	// address (sessions, probes and those not yet authenticated); beyond
	// it HTTP 503 before the upgrade. 0: no limit.
	MaxConnectionsPerPeer int `yaml:"max_connections_per_peer"`
	// OpenTimeout ends a connection whose open message has not come in
	// this long; default 5 s.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// IdleTimeout ends a session that sent neither audio nor a message in
	// this long (while paused: no message; the client pings every few
	// seconds); default 30 s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxDuration ends a session this long after it opened; default 4 h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// MaxMessageBytes bounds a text message (JSON); larger ones end the
	// session with disconnect (error). Default 65535, the protocol's.
	MaxMessageBytes int `yaml:"max_message_bytes"`
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
	DefaultOpenTimeout     = 5 * time.Second
	DefaultIdleTimeout     = 30 * time.Second
	DefaultMaxDuration     = 4 * time.Hour
	DefaultMaxMessageBytes = 65535
	DefaultMaxFrameBytes   = 32000
	DefaultMaxSignatureAge = 10 * time.Second
)

// DefaultConfig is the configuration the door is served with when its
// section says nothing but enabled and the key.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, Languages: []string{"en-US"}, ConnectRate: 5, ConnectBurst: 20,
		MaxConnectionsPerPeer: 200, OpenTimeout: DefaultOpenTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxDuration: DefaultMaxDuration, MaxMessageBytes: DefaultMaxMessageBytes, MaxFrameBytes: DefaultMaxFrameBytes,
		MaxSignatureAge: DefaultMaxSignatureAge}
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
	for _, f := range []struct{ v, d *time.Duration }{{&c.OpenTimeout, &d.OpenTimeout}, {&c.IdleTimeout, &d.IdleTimeout},
		{&c.MaxDuration, &d.MaxDuration}, {&c.MaxSignatureAge, &d.MaxSignatureAge}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.MaxFrameBytes <= 0 {
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
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"connect_rate", c.ConnectRate >= 0}, {"connect_burst", c.ConnectBurst >= 0},
		{"max_connections_per_peer", c.MaxConnectionsPerPeer >= 0},
		{"open_timeout", c.OpenTimeout > 0}, {"idle_timeout", c.IdleTimeout > 0}, {"max_duration", c.MaxDuration > 0},
		{"max_message_bytes", c.MaxMessageBytes >= 1024 && c.MaxMessageBytes <= 1<<20},
		{"max_frame_bytes", c.MaxFrameBytes >= 320 && c.MaxFrameBytes <= 1<<20},
		{"max_signature_age", c.MaxSignatureAge > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}
