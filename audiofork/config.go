package audiofork

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/callscribe/callscribe/ingest"
)

// Config configures the two WebSocket endpoints; it is the stream section
// of the gateway's configuration file (the gateway adds whether they are
// served and the admission limits). DefaultConfig holds the file's
// defaults. A Config built by hand takes the default when a field is zero,
// unless the comment gives zero a meaning of its own.
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
	// The limits on strangers' connections, as every door has them; the
	// start timeout waits for a fork's metadata or jambonz's start. A fork
	// paused on the platform's side (uuid_audio_fork pause) sends nothing
	// either: idle_timeout ends it.
	ingest.ConnLimits `yaml:",inline"`
	// The bound of a message: 64 KiB is 200 ms of 64 kHz stereo.
	ingest.MessageLimit `yaml:",inline"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Config, the one place they are written.
const (
	DefaultPath        = "/stream"
	DefaultJambonzPath = "/jambonz"
)

// DefaultLimits are the door's limits on connections: a platform sends
// many calls from few addresses (no bound per address).
var DefaultLimits = ingest.ConnLimits{ConnectRate: 5, ConnectBurst: 20, StartTimeout: 5 * time.Second,
	IdleTimeout: 30 * time.Second, MaxDuration: 4 * time.Hour}

// DefaultMessageLimit bounds a message at 64 KiB.
var DefaultMessageLimit = ingest.MessageLimit{MaxMessageBytes: 64 << 10}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.JambonzPath == "" {
		c.JambonzPath = DefaultJambonzPath
	}
	c.ConnLimits.Fill(DefaultLimits)
	c.MessageLimit.Fill(DefaultMessageLimit)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field as written (a zero that has a default is an
// error here); an error names the first bad field by its key in the
// stream section.
func (c *Config) Validate() error {
	for _, p := range []struct{ key, path string }{{"path", c.Path}, {"jambonz_path", c.JambonzPath}} {
		if !strings.HasPrefix(p.path, "/") || strings.HasSuffix(p.path, "/") {
			return fmt.Errorf("%s: %q: want a path like /stream", p.key, p.path)
		}
	}
	if c.Path == c.JambonzPath {
		return fmt.Errorf("jambonz_path: %q: the same as path", c.JambonzPath)
	}
	if err := c.ConnLimits.Validate(); err != nil {
		return err
	}
	return c.MessageLimit.Validate()
}

// DefaultConfig is the configuration the gateway serves the endpoints
// with when its file says nothing.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, JambonzPath: DefaultJambonzPath, ConnLimits: DefaultLimits,
		MessageLimit: DefaultMessageLimit}
}
