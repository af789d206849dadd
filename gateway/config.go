package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/webrtc"
)

// Config is everything `callscribe serve` can be told, as in
// configs/callscribe.yaml. Every field has a default (Defaults).
type Config struct {
	SIP    SIPConfig    `yaml:"sip"`
	ASR    ASRConfig    `yaml:"asr"`
	Redis  RedisConfig  `yaml:"redis"`
	HTTP   HTTPConfig   `yaml:"http"`
	WebRTC WebRTCConfig `yaml:"webrtc"`
	// Drain is how long calls may go on after SIGTERM.
	Drain time.Duration `yaml:"drain"`
	// Instance names this gateway in Redis; empty: host name and SIP address.
	Instance string `yaml:"instance"`
	// Redact lists what every call's transcript must not contain: pci, ssn,
	// numbers[:N] (package redact); calls may add their own.
	Redact []string  `yaml:"redact"`
	Log    LogConfig `yaml:"log"`
}

// LogConfig is how the gateway writes its log (to stderr).
type LogConfig struct {
	// Format is text (key=value, the default) or json (one object a line,
	// for a log collector).
	Format string `yaml:"format"`
	// Level is the least severity written: debug, info, warn or error.
	Level string `yaml:"level"`
}

// Severity parses log.level.
func (c LogConfig) Severity() (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.Level)) {
		return 0, fmt.Errorf("log.level: %q: want debug, info, warn or error", c.Level)
	}
	return level, nil
}

// Logger is the log this configuration's format asks for, written to w at
// level (a *slog.LevelVar lets a reload change it).
func (c LogConfig) Logger(w io.Writer, level slog.Leveler) (*slog.Logger, error) {
	o := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("log.format: %q: want text or json", c.Format)
}

// SIPConfig is the sip section: the SIP server's configuration (package
// sip) and the gateway's admission limits of SIP calls.
type SIPConfig struct {
	sip.Config `yaml:",inline"`
	// MaxCalls bounds the concurrent SIP calls (answered, or admitted and
	// being answered); more get 503 with Retry-After. A second INVITE with
	// a live call's Call-ID gets 482.
	MaxCalls int `yaml:"max_calls"`
	// MaxCallsPerSource bounds the concurrent calls from one IP address;
	// 0: no bound.
	MaxCallsPerSource int `yaml:"max_calls_per_source"`
}

// Validate checks the section; an error names the key within it.
func (c *SIPConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.MaxCalls <= 0 {
		return errors.New("max_calls: out of range")
	}
	if c.MaxCallsPerSource < 0 {
		return errors.New("max_calls_per_source: out of range")
	}
	return nil
}

// RedactPolicy is what `redact` asks for.
func (c *Config) RedactPolicy() (redact.Policy, error) {
	p, err := redact.Parse(strings.Join(c.Redact, ","))
	if err != nil {
		return p, fmt.Errorf("redact: %w", err)
	}
	return p, nil
}

// HotwordPhrases are asr.hotwords and the phrases of asr.hotwords_file.
func (a ASRConfig) HotwordPhrases() ([]asr.Phrase, error) {
	out, err := asr.ParsePhrases(strings.Join(a.Hotwords, ","))
	if err != nil {
		return nil, fmt.Errorf("asr.hotwords: %w", err)
	}
	if a.HotwordsFile != "" {
		more, err := asr.ReadPhrases(a.HotwordsFile)
		if err != nil {
			return nil, fmt.Errorf("asr.hotwords_file: %w", err)
		}
		out = append(out, more...)
	}
	return out, nil
}

// KeywordPhrases are asr.keywords.
func (a ASRConfig) KeywordPhrases() ([]asr.Phrase, error) {
	out, err := asr.ParsePhrases(strings.Join(a.Keywords, ","))
	if err != nil {
		return nil, fmt.Errorf("asr.keywords: %w", err)
	}
	return out, nil
}

// ASRConfig is the recognizer.
type ASRConfig struct {
	ModelDir     string             `yaml:"model_dir"`
	Encoder      string             `yaml:"encoder"`
	Decoder      string             `yaml:"decoder"`
	Joiner       string             `yaml:"joiner"`
	ORTLib       string             `yaml:"ort_lib"`
	Provider     string             `yaml:"provider"`
	DeviceIDs    []int              `yaml:"device_ids"`
	CUDAOptions  map[string]string  `yaml:"cuda_options"`
	GPURetry     time.Duration      `yaml:"gpu_retry"`
	Threads      int                `yaml:"threads"`
	MaxBatch     int                `yaml:"max_batch"`
	MaxWait      time.Duration      `yaml:"max_wait"`
	Workers      int                `yaml:"workers"`
	RunTimeout   time.Duration      `yaml:"run_timeout"`
	FinalTimeout time.Duration      `yaml:"final_timeout"`
	MaxStreams   string             `yaml:"max_streams"`
	MaxLag       time.Duration      `yaml:"max_lag"`
	Headroom     float64            `yaml:"headroom"`
	Decoding     string             `yaml:"decoding"`
	ActivePaths  int                `yaml:"num_active_paths"`
	Hotwords     []string           `yaml:"hotwords"`
	HotwordsFile string             `yaml:"hotwords_file"`
	HotwordScore float64            `yaml:"hotwords_score"`
	Keywords     []string           `yaml:"keywords"`
	Endpoint     asr.EndpointConfig `yaml:"endpoint"`
	VADModel     string             `yaml:"vad_model"`
}

// RedisConfig is transcript delivery.
type RedisConfig struct {
	Addr           string        `yaml:"addr"`
	Cluster        bool          `yaml:"cluster"`
	Prefix         string        `yaml:"prefix"`
	Shards         int           `yaml:"shards"`
	CallMaxLen     int64         `yaml:"call_maxlen"`
	FirehoseMaxLen int64         `yaml:"firehose_maxlen"`
	Expire         time.Duration `yaml:"expire"`
	SpoolMaxBytes  int64         `yaml:"spool_max_bytes"`
	SpoolFile      string        `yaml:"spool_file"`
}

// WebRTCConfig is browser ingest over WHIP, served on the HTTP address.
type WebRTCConfig struct {
	Enabled        bool          `yaml:"enabled"`
	Path           string        `yaml:"path"`
	Token          string        `yaml:"token"`
	MaxSessions    int           `yaml:"max_sessions"`
	ICEPorts       string        `yaml:"ice_ports"`
	PublicIPs      []string      `yaml:"public_ips"`
	Loopback       bool          `yaml:"loopback"`
	OfferRate      float64       `yaml:"offer_rate"`
	OfferBurst     int           `yaml:"offer_burst"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	MediaTimeout   time.Duration `yaml:"media_timeout"`
}

// HTTPConfig is the health, readiness and metrics endpoint, the live
// transcript events and the browser page.
type HTTPConfig struct {
	Addr            string        `yaml:"addr"`
	TLSCertFile     string        `yaml:"tls_cert_file"`
	TLSKeyFile      string        `yaml:"tls_key_file"`
	Page            bool          `yaml:"page"`
	MaxEventStreams int           `yaml:"max_event_streams"`
	MaxConnections  int           `yaml:"max_connections"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	MetricsToken    string        `yaml:"metrics_token"`
}

// Defaults returns the configuration configs/callscribe.yaml spells out.
func Defaults() Config {
	return Config{
		SIP: SIPConfig{Config: sip.DefaultConfig(), MaxCalls: 1000},
		ASR: ASRConfig{Provider: "cpu", DeviceIDs: []int{}, CUDAOptions: map[string]string{}, GPURetry: asr.DefaultGPURetry, Threads: 1,
			RunTimeout: asr.DefaultRunTimeout, FinalTimeout: 30 * time.Second, MaxStreams: "auto", MaxLag: DefaultMaxLag,
			Headroom: asr.DefaultHeadroom, Decoding: asr.Greedy, ActivePaths: asr.DefaultActivePaths, HotwordScore: asr.DefaultHotwordsScore, Hotwords: []string{}, Keywords: []string{}, Endpoint: asr.DefaultEndpointConfig()},
		Redis: RedisConfig{Addr: transcript.DefaultAddr, Prefix: transcript.DefaultPrefix, Shards: 1,
			CallMaxLen: transcript.DefaultCallMaxLen, FirehoseMaxLen: transcript.DefaultFirehoseMaxLen,
			Expire: transcript.DefaultExpire, SpoolMaxBytes: transcript.DefaultSpoolMaxBytes},
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080", Page: true, MaxEventStreams: 100, MaxConnections: 1000,
			ReadTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second},
		WebRTC: WebRTCConfig{Enabled: true, Path: webrtc.DefaultPath, MaxSessions: 100, OfferRate: 5, OfferBurst: 20, PublicIPs: []string{}, Loopback: true,
			ConnectTimeout: webrtc.DefaultConnectTimeout, MediaTimeout: webrtc.DefaultMediaTimeout},
		Drain: 30 * time.Second, Redact: []string{}, Log: LogConfig{Format: "text", Level: "info"},
	}
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors;
// an error names the key and its line.
func LoadConfig(path string) (Config, error) {
	c := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		var doc yaml.Node
		if yaml.Unmarshal(b, &doc) == nil {
			if key, line, kerr, ok := locate(&doc); ok {
				return c, fmt.Errorf("config %s: %s (line %d): %w", path, key, line, kerr)
			}
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// limits are the admission limits the configuration sets (Calls).
func (c *Config) limits() Limits {
	maxCalls := map[string]int{"sip": c.SIP.MaxCalls}
	if c.WebRTC.Enabled {
		maxCalls["webrtc"] = c.WebRTC.MaxSessions
	}
	maxStreams, _ := c.ASR.Streams() // checked by Validate; 0: the measured capacity
	return Limits{MaxCalls: maxCalls, MaxPerPeer: map[string]int{"sip": c.SIP.MaxCallsPerSource}, MaxStreams: maxStreams, MaxLag: c.ASR.MaxLag}
}

// InstanceName is instance, or by default the host name and the first SIP
// listen address: stable across restarts of the same gateway.
func (c *Config) InstanceName() string {
	if c.Instance != "" {
		return c.Instance
	}
	host, _ := os.Hostname()
	for _, a := range []string{c.SIP.UDP, c.SIP.TCP, c.SIP.TLS} {
		if a != "" {
			return host + "/" + a
		}
	}
	return host
}

// Streams parses asr.max_streams: 0 for auto (the measured capacity), else
// the fixed bound.
func (c *ASRConfig) Streams() (int, error) {
	if c.MaxStreams == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(c.MaxStreams)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("asr.max_streams: %q: want auto or a positive number", c.MaxStreams)
	}
	return n, nil
}

// ICEPortRange parses webrtc.ice_ports; empty means any port.
func (c *WebRTCConfig) ICEPortRange() (uint16, uint16, error) {
	if c.ICEPorts == "" {
		return 0, 0, nil
	}
	lo, hi, ok := strings.Cut(c.ICEPorts, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a <= 0 || b > 65535 || b < a {
		return 0, 0, fmt.Errorf("webrtc.ice_ports: %q: want LO-HI, e.g. 50000-50999", c.ICEPorts)
	}
	return uint16(a), uint16(b), nil
}

// Validate checks every field; the error names the first bad one.
func (c *Config) Validate() error {
	addr := func(field, v string, optional bool) error {
		if v == "" && optional {
			return nil
		}
		if _, err := netip.ParseAddrPort(v); err != nil {
			return fmt.Errorf("%s: %q: want IP:PORT", field, v)
		}
		return nil
	}
	// Redis may be a name (a Kubernetes service, a managed instance).
	hostPort := func(field, v string) error {
		host, port, err := net.SplitHostPort(v)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%s: %q: want HOST:PORT", field, v)
		}
		return nil
	}
	if err := c.SIP.Validate(); err != nil {
		return fmt.Errorf("sip.%w", err)
	}
	checks := []error{hostPort("redis.addr", c.Redis.Addr), addr("http.addr", c.HTTP.Addr, false)}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if (c.HTTP.TLSCertFile == "") != (c.HTTP.TLSKeyFile == "") {
		return errors.New("http.tls_cert_file, http.tls_key_file: set both or neither")
	}
	if c.ASR.Decoding != asr.Greedy && c.ASR.Decoding != asr.ModifiedBeamSearch {
		return fmt.Errorf("asr.decoding: %q: want %s or %s", c.ASR.Decoding, asr.Greedy, asr.ModifiedBeamSearch)
	}
	switch c.ASR.Endpoint.Mode {
	case asr.EndpointRules, asr.EndpointVAD:
	default:
		return fmt.Errorf("asr.endpoint.mode: %q: want rules or vad", c.ASR.Endpoint.Mode)
	}
	if c.ASR.Endpoint.VADMinSilence < 0.05 || c.ASR.Endpoint.VADMinSilence > 5 {
		return fmt.Errorf("asr.endpoint.vad_min_silence: %v: want 0.05 to 5 (seconds)", c.ASR.Endpoint.VADMinSilence)
	}
	if c.ASR.ActivePaths < 1 || c.ASR.ActivePaths > 64 {
		return fmt.Errorf("asr.num_active_paths: %d: want 1 to 64", c.ASR.ActivePaths)
	}
	if _, err := c.ASR.Streams(); err != nil {
		return err
	}
	positive := []struct {
		field string
		ok    bool
	}{
		{"asr.final_timeout", c.ASR.FinalTimeout > 0},
		{"asr.max_lag", c.ASR.MaxLag > 0}, {"asr.headroom", c.ASR.Headroom > 0 && c.ASR.Headroom <= 1},
		{"webrtc.offer_rate", c.WebRTC.OfferRate >= 0}, {"webrtc.offer_burst", c.WebRTC.OfferBurst >= 0},
		{"asr.threads", c.ASR.Threads > 0}, {"asr.max_batch", c.ASR.MaxBatch >= 0}, {"asr.max_wait", c.ASR.MaxWait >= 0},
		{"asr.gpu_retry", c.ASR.GPURetry > 0}, {"asr.device_ids", !slices.ContainsFunc(c.ASR.DeviceIDs, func(d int) bool { return d < 0 })},
		{"asr.workers", c.ASR.Workers >= 0}, {"asr.run_timeout", c.ASR.RunTimeout > 0},
		{"redis.shards", c.Redis.Shards > 0}, {"redis.call_maxlen", c.Redis.CallMaxLen > 0},
		{"redis.firehose_maxlen", c.Redis.FirehoseMaxLen > 0}, {"redis.expire", c.Redis.Expire > 0},
		{"redis.spool_max_bytes", c.Redis.SpoolMaxBytes > 0}, {"drain", c.Drain >= 0},
		{"http.max_event_streams", c.HTTP.MaxEventStreams > 0}, {"http.max_connections", c.HTTP.MaxConnections > 0},
		{"http.read_timeout", c.HTTP.ReadTimeout > 0}, {"http.idle_timeout", c.HTTP.IdleTimeout > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s: out of range", p.field)
		}
	}
	if c.WebRTC.Enabled {
		if !strings.HasPrefix(c.WebRTC.Path, "/") || strings.HasSuffix(c.WebRTC.Path, "/") || c.WebRTC.Path == "/" {
			return fmt.Errorf("webrtc.path: %q: want a path like /whip", c.WebRTC.Path)
		}
		if c.WebRTC.MaxSessions <= 0 || c.WebRTC.ConnectTimeout <= 0 || c.WebRTC.MediaTimeout <= 0 {
			return errors.New("webrtc.max_sessions, webrtc.connect_timeout, webrtc.media_timeout: must be positive")
		}
		if _, _, err := c.WebRTC.ICEPortRange(); err != nil {
			return err
		}
		for _, ip := range c.WebRTC.PublicIPs {
			if _, err := netip.ParseAddr(ip); err != nil {
				return fmt.Errorf("webrtc.public_ips: %q: want an IP address", ip)
			}
		}
	}
	hot, err := c.ASR.HotwordPhrases()
	if err != nil {
		return err
	}
	if len(hot) > 0 && c.ASR.Decoding != asr.ModifiedBeamSearch {
		return fmt.Errorf("asr.hotwords: need asr.decoding: %s", asr.ModifiedBeamSearch)
	}
	if c.ASR.HotwordScore <= 0 || c.ASR.HotwordScore > asr.MaxPhraseScore {
		return fmt.Errorf("asr.hotwords_score: %v: want (0, %d]", c.ASR.HotwordScore, asr.MaxPhraseScore)
	}
	if _, err := c.ASR.KeywordPhrases(); err != nil {
		return err
	}
	if _, err := c.RedactPolicy(); err != nil {
		return err
	}
	if c.ASR.Provider != "cpu" && c.ASR.Provider != "cuda" {
		return fmt.Errorf("asr.provider: %q: want cpu or cuda", c.ASR.Provider)
	}
	if strings.ContainsAny(c.Instance, " {}\t\r\n") {
		return fmt.Errorf("instance: %q: want a name without spaces or braces", c.Instance)
	}
	if c.Redis.Prefix == "" || strings.ContainsAny(c.Redis.Prefix, " {}") {
		return fmt.Errorf("redis.prefix: %q: want a non-empty key prefix without spaces or braces", c.Redis.Prefix)
	}
	if _, err := c.Log.Severity(); err != nil {
		return err
	}
	if _, err := c.Log.Logger(io.Discard, slog.LevelInfo); err != nil {
		return err
	}
	return nil
}
