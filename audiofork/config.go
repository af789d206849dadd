package audiofork

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures the two WebSocket endpoints; it is the stream section
// of the gateway's configuration file (the gateway adds whether they are
// served and the admission limits). A zero field takes the default its
// comment names.
type Config struct {
	// Path is where audio forks connect on the HTTP address (http.addr +
	// path): FreeSWITCH mod_audio_fork and mod_audio_stream, jambonz
	// listen, Vonage. Default /stream.
	Path string `yaml:"path"`
	// JambonzPath is where jambonz connects as to a custom speech-to-text
	// vendor (jambonz's STT API: the call's audio in, transcriptions
	// back). Default /jambonz.
	JambonzPath string `yaml:"jambonz_path"`
	// Token is the bearer token a connection must carry (Authorization:
	// Bearer, HTTP Basic with the token as its password, as jambonz's
	// wsAuth sends it, or the query parameter token for a platform that
	// sets no header); a connection without it gets 401 before the
	// upgrade. Empty: both endpoints are open.
	Token string `yaml:"token"`
	// ConnectRate limits the connections one address may open: a token
	// bucket per address of this many a second, bursts of connect_burst;
	// beyond it 429 with Retry-After, before the upgrade. 0: 5.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is the size of connect_rate's bucket. 0: 20.
	ConnectBurst int `yaml:"connect_burst"`
	// MaxFrame bounds one WebSocket message (bytes): a larger one closes
	// the connection (1009). 0: 64 KiB, 200 ms of 64 kHz stereo.
	MaxFrame int `yaml:"max_frame"`
	// StartTimeout ends a connection whose metadata (audio fork) or start
	// message (jambonz) has not come this long after the upgrade. 0: 5 s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// IdleTimeout ends a call no message has come on for this long
	// (reason timeout): a peer that vanished without closing. A fork
	// paused on the platform's side (uuid_audio_fork pause) sends nothing
	// either. 0: 30 s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxDuration ends a call that has lasted this long (reason timeout).
	// 0: 4 h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultPath         = "/stream"
	DefaultJambonzPath  = "/jambonz"
	DefaultConnectRate  = 5
	DefaultConnectBurst = 20
	DefaultMaxFrame     = 64 << 10
	DefaultStartTimeout = 5 * time.Second
	DefaultIdleTimeout  = 30 * time.Second
	DefaultMaxDuration  = 4 * time.Hour
)

// defaults fills the zero fields (NewServer).
func (c *Config) defaults() {
	for _, d := range []struct {
		zero bool
		set  func()
	}{
		{c.Path == "", func() { c.Path = DefaultPath }},
		{c.JambonzPath == "", func() { c.JambonzPath = DefaultJambonzPath }},
		{c.ConnectRate == 0, func() { c.ConnectRate = DefaultConnectRate }},
		{c.ConnectBurst == 0, func() { c.ConnectBurst = DefaultConnectBurst }},
		{c.MaxFrame == 0, func() { c.MaxFrame = DefaultMaxFrame }},
		{c.StartTimeout == 0, func() { c.StartTimeout = DefaultStartTimeout }},
		{c.IdleTimeout == 0, func() { c.IdleTimeout = DefaultIdleTimeout }},
		{c.MaxDuration == 0, func() { c.MaxDuration = DefaultMaxDuration }},
		{c.Logger == nil, func() { c.Logger = slog.Default() }},
	} {
		if d.zero {
			d.set()
		}
	}
}

// Validate checks the fields as written (zero: the default); an error
// names the first bad field by its key in the stream section.
func (c *Config) Validate() error {
	for _, p := range []struct{ key, path string }{{"path", c.Path}, {"jambonz_path", c.JambonzPath}} {
		if p.path != "" && (!strings.HasPrefix(p.path, "/") || strings.HasSuffix(p.path, "/")) {
			return fmt.Errorf("%s: %q: want a path like /stream", p.key, p.path)
		}
	}
	if c.Path != "" && c.Path == c.JambonzPath || c.Path == "" && c.JambonzPath == DefaultPath ||
		c.JambonzPath == "" && c.Path == DefaultJambonzPath {
		return fmt.Errorf("jambonz_path: %q: the same as path", c.JambonzPath)
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"connect_rate", c.ConnectRate >= 0}, {"connect_burst", c.ConnectBurst >= 0},
		{"max_frame", c.MaxFrame == 0 || c.MaxFrame >= 1024 && c.MaxFrame <= 16<<20},
		{"start_timeout", c.StartTimeout >= 0}, {"idle_timeout", c.IdleTimeout >= 0},
		{"max_duration", c.MaxDuration >= 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}

// DefaultConfig is the configuration the gateway serves the endpoints
// with when its file says nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, JambonzPath: DefaultJambonzPath, ConnectRate: DefaultConnectRate,
		ConnectBurst: DefaultConnectBurst, MaxFrame: DefaultMaxFrame, StartTimeout: DefaultStartTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxDuration: DefaultMaxDuration}
}
