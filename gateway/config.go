package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

//go:generate go test -run ^TestConfigurationReference$ -update-reference .

// Config is everything `callscribe serve` can be told: the YAML file
// configs/callscribe.yaml spells out (Defaults). Each section is owned by
// the package that uses it, which declares, defaults and validates its
// keys; the gateway embeds them and adds what it alone uses. The keys'
// reference, docs/configuration.md, is generated from these types.
type Config struct {
	// SIP is calls over SIP and their media.
	SIP SIPConfig `yaml:"sip"`
	// ASR is the recognizer.
	ASR ASRConfig `yaml:"asr"`
	// Redis is transcript delivery.
	Redis transcript.Options `yaml:"redis"`
	// HTTP is health, readiness, metrics, the live events, WHIP and the
	// browser page.
	HTTP HTTPConfig `yaml:"http"`
	// WebRTC is browser calls over WHIP.
	WebRTC WebRTCConfig `yaml:"webrtc"`
	// AudioHook is Genesys Cloud AudioHook sessions (doors.go).
	AudioHook AudioHookConfig `yaml:"audiohook"`
	// Twilio is Twilio Media Streams.
	Twilio TwilioConfig `yaml:"twilio"`
	// Stream is audio-fork WebSockets and jambonz's speech-to-text API.
	Stream StreamConfig `yaml:"stream"`
	// AudioSocket is Asterisk AudioSocket connections.
	AudioSocket AudioSocketConfig `yaml:"audiosocket"`
	// Drain is how long calls may go on after SIGTERM before they are
	// ended.
	Drain time.Duration `yaml:"drain"`
	// Instance is this gateway's name: the calls it has open are kept in
	// Redis under it, so that after a crash the same instance, started
	// again, ends them with call.end reason restart. Give each gateway its
	// own, stable across restarts (a Kubernetes StatefulSet pod name);
	// empty: the host name and the SIP address.
	Instance string `yaml:"instance"`
	// Redact is what no transcript may contain, for every call (package
	// redact): pci (card numbers of 12-19 spoken digits, with expiry dates
	// and security codes near them), ssn (nine digits), numbers or
	// numbers:N (any run of N digits or more, default 4). Replaced by
	// markers ([CARD], [SSN], [NUMBER]) in partials and finals (text,
	// words, display) before anything is published or spooled; the events
	// say "redacted": the kinds; DTMF digits are masked. A call adds its
	// own with sip.redact_header or the WHIP query parameter/header redact.
	Redact []string `yaml:"redact"`
	// Log is how the gateway writes its log (to stderr).
	Log LogConfig `yaml:"log"`
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

// ASRConfig is the asr section: the recognizer's model files and batcher
// (package asr), and what the gateway adds to run it: the ONNX Runtime
// library, admission by measured capacity, the last finals' deadline and
// every call's phrase lists.
type ASRConfig struct {
	asr.ModelFiles `yaml:",inline"`
	// ORTLib is libonnxruntime.so; empty: the setup cache — with provider
	// cuda the GPU build ($CALLSCRIBE_ORT_GPU_LIB or .cache/onnxruntime-gpu/,
	// fetched by scripts/setup --gpu), else $CALLSCRIBE_ORT_LIB or
	// .cache/onnxruntime/.
	ORTLib             string `yaml:"ort_lib"`
	asr.BatcherOptions `yaml:",inline"`
	// ShareMix: with skip_silence, the share of their time the calls talk,
	// as this gateway measures it, is kept in Redis (<prefix>:mix, shared
	// by the gateways of one prefix, kept a day after its last update),
	// and a gateway that starts takes the last one as its first estimate
	// (until its own calls have been measured, about 10 s), so that it
	// admits a burst of quiet calls at start as what they are rather than
	// as talkers. Off: a gateway counts every stream as talking until it
	// has measured its own.
	ShareMix bool `yaml:"share_mix"`
	// FinalTimeout is how long, after a call ends, its remaining audio may
	// take to be recognized before call.end goes out without the rest
	// (counted).
	FinalTimeout time.Duration `yaml:"final_timeout"`
	// FinalModel is the second pass for finals: none, moonshine-tiny,
	// moonshine-base (fetched by scripts/setup), or a directory holding a
	// Moonshine export of the same shape. Each final's audio is recognized
	// again, batched across calls, on the same provider, and its words
	// replace the streaming model's (docs/recognition.md); the capacity
	// estimate counts its cost. moonshine-tiny by default: it takes a
	// third of the first pass's errors for about as much CPU again
	// (README, Figures); none runs the first pass alone.
	FinalModel string `yaml:"final_model"`
	// FinalModelTimeout: a final whose second pass has not come back this
	// long after it was asked for is published from the first pass
	// (counted in callscribe_second_pass_fallbacks_total).
	FinalModelTimeout time.Duration `yaml:"final_model_timeout"`
	// FinalMaxSegment: a final's audio longer than this is cut at its
	// quietest moments into pieces no longer for the second pass (the model
	// makes text up on long segments).
	FinalMaxSegment time.Duration `yaml:"final_max_segment"`
	// MaxStreams bounds the recognition streams of the calls admitted (a
	// call brings one per leg): auto, the recognizer's measured capacity,
	// or a fixed number. A call that would exceed it is refused with 503
	// and Retry-After (SIP and WHIP); OPTIONS and /readyz say so too.
	MaxStreams string `yaml:"max_streams"`
	// MaxLag refuses every call while decoding lags more than this behind
	// real time.
	MaxLag time.Duration `yaml:"max_lag"`
	// Hotwords are phrases the recognizer should favour (contextual
	// biasing; needs modified_beam_search), "phrase[:score]" each. A
	// phrase's score is its bonus per token (default hotwords_score). A
	// call adds its own with the SIP header sip.hotwords_header or the WHIP
	// query parameter/header hotwords; a list that cannot be read (more
	// than 256 phrases, over 100 bytes, characters other than letters,
	// digits, apostrophes and spaces, a bad score) refuses the call with
	// 400.
	Hotwords []string `yaml:"hotwords"`
	// HotwordsFile is a file of more hotwords, one per line (# comments).
	HotwordsFile string `yaml:"hotwords_file"`
	// HotwordScore is a hotword's bonus per token when it names none.
	HotwordScore float64 `yaml:"hotwords_score"`
	// Keywords are keyword alerts: a keyword event when a partial first
	// holds one of these phrases (once per occurrence); calls add their own
	// (sip.keywords_header, WHIP keywords).
	Keywords []string `yaml:"keywords"`
}

// Validate checks the section; an error names the key within it.
func (a *ASRConfig) Validate() error {
	if err := a.BatcherOptions.Validate(); err != nil {
		return err
	}
	if _, err := a.Streams(); err != nil {
		return err
	}
	if a.FinalTimeout <= 0 {
		return errors.New("final_timeout: out of range")
	}
	if a.MaxLag <= 0 {
		return errors.New("max_lag: out of range")
	}
	if a.FinalModel == "" {
		return errors.New("final_model: want none, moonshine-tiny, moonshine-base or a directory")
	}
	if a.FinalModelTimeout <= 0 || a.FinalModelTimeout > a.FinalTimeout {
		return errors.New("final_model_timeout: out of range (0 to final_timeout)")
	}
	if a.FinalMaxSegment < time.Second || a.FinalMaxSegment > 30*time.Second {
		return errors.New("final_max_segment: out of range (1s to 30s)")
	}
	hot, err := a.HotwordPhrases()
	if err != nil {
		return err
	}
	if len(hot) > 0 && a.Decoding != asr.ModifiedBeamSearch {
		return fmt.Errorf("hotwords: need asr.decoding: %s", asr.ModifiedBeamSearch)
	}
	if a.HotwordScore <= 0 || a.HotwordScore > asr.MaxPhraseScore {
		return fmt.Errorf("hotwords_score: %v: want (0, %d]", a.HotwordScore, asr.MaxPhraseScore)
	}
	_, err = a.KeywordPhrases()
	return err
}

// HotwordPhrases are hotwords and the phrases of hotwords_file.
func (a *ASRConfig) HotwordPhrases() ([]asr.Phrase, error) {
	out, err := asr.ParsePhrases(strings.Join(a.Hotwords, ","))
	if err != nil {
		return nil, fmt.Errorf("hotwords: %w", err)
	}
	if a.HotwordsFile != "" {
		more, err := asr.ReadPhrases(a.HotwordsFile)
		if err != nil {
			return nil, fmt.Errorf("hotwords_file: %w", err)
		}
		out = append(out, more...)
	}
	return out, nil
}

// KeywordPhrases are keywords.
func (a *ASRConfig) KeywordPhrases() ([]asr.Phrase, error) {
	out, err := asr.ParsePhrases(strings.Join(a.Keywords, ","))
	if err != nil {
		return nil, fmt.Errorf("keywords: %w", err)
	}
	return out, nil
}

// Streams parses max_streams: 0 for auto (the measured capacity), else
// the fixed bound.
func (a *ASRConfig) Streams() (int, error) {
	if a.MaxStreams == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(a.MaxStreams)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("max_streams: %q: want auto or a positive number", a.MaxStreams)
	}
	return n, nil
}

// WebRTCConfig is the webrtc section: browser calls over WHIP, served on
// the HTTP address (package webrtc), and the gateway's admission limit of
// them.
type WebRTCConfig struct {
	// Enabled serves browser calls over WHIP (RFC 9725) at http.addr +
	// path, and the browser page when http.page is on.
	Enabled       bool `yaml:"enabled"`
	webrtc.Config `yaml:",inline"`
	// MaxSessions bounds the concurrent browser sessions; more get 503.
	MaxSessions int `yaml:"max_sessions"`
}

// Validate checks the section when WHIP is enabled; an error names the
// key within it.
func (c *WebRTCConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.MaxSessions <= 0 {
		return errors.New("max_sessions: out of range")
	}
	return nil
}

// HTTPConfig is the http section: health, readiness and metrics, the live
// transcript events, and WHIP and the browser page when webrtc is enabled.
type HTTPConfig struct {
	// Addr is the HTTP listen address (IP:PORT): /healthz, /readyz,
	// /metrics, /events/<call_id> (a call's transcript events as
	// Server-Sent Events, read from its Redis stream), WHIP and the page.
	Addr string `yaml:"addr"`
	// TLSCertFile serves HTTPS with this certificate (PEM), and
	// tls_key_file. Browsers let a page use the microphone only over HTTPS
	// (or from localhost): serve the page to other machines with these
	// set, or behind a proxy that terminates TLS.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the private key (PEM) of tls_cert_file.
	TLSKeyFile string `yaml:"tls_key_file"`
	// Page serves the browser page at /: microphone to WHIP, live
	// transcript over SSE.
	Page bool `yaml:"page"`
	// MaxEventStreams bounds the concurrent /events followers (one Redis
	// connection each); more get 503.
	MaxEventStreams int `yaml:"max_event_streams"`
	// MaxConnections bounds the open HTTP connections (more wait to be
	// accepted).
	MaxConnections int `yaml:"max_connections"`
	// ReadTimeout is how long a request (headers and body) may take to
	// arrive. Event streams are not cut by it.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout is how long an idle keep-alive connection is kept.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MetricsToken is the bearer token /metrics requires; empty: open
	// (bind http.addr privately).
	MetricsToken string `yaml:"metrics_token"`
	// BoardToken is the bearer token of the live-calls board's data
	// (/api/calls, /api/board/stream, pause/resume there); the page at
	// /calls asks for it. Empty: only clients on the gateway's host are
	// served. Board streams count in max_event_streams.
	BoardToken string `yaml:"board_token"`
}

// Validate checks the section; an error names the key within it.
func (c *HTTPConfig) Validate() error {
	if _, err := netip.ParseAddrPort(c.Addr); err != nil {
		return fmt.Errorf("addr: %q: want IP:PORT", c.Addr)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file, tls_key_file: set both or neither")
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"max_event_streams", c.MaxEventStreams > 0}, {"max_connections", c.MaxConnections > 0},
		{"read_timeout", c.ReadTimeout > 0}, {"idle_timeout", c.IdleTimeout > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return nil
}

// LogConfig is the log section: how the gateway writes its log (to
// stderr).
type LogConfig struct {
	// Format is text (key=value lines) or json (one object a line, for a
	// log collector).
	Format string `yaml:"format"`
	// Level is the least severity written: debug, info, warn or error.
	Level string `yaml:"level"`
}

// Validate checks the section; an error names the key within it.
func (c *LogConfig) Validate() error {
	if _, err := c.Severity(); err != nil {
		return err
	}
	_, err := c.Logger(io.Discard, slog.LevelInfo)
	return err
}

// Severity parses level.
func (c *LogConfig) Severity() (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.Level)) {
		return 0, fmt.Errorf("level: %q: want debug, info, warn or error", c.Level)
	}
	return level, nil
}

// Logger is the log this configuration's format asks for, written to w at
// level (a *slog.LevelVar lets a reload change it).
func (c *LogConfig) Logger(w io.Writer, level slog.Leveler) (*slog.Logger, error) {
	o := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("format: %q: want text or json", c.Format)
}

// Defaults returns the configuration configs/callscribe.yaml spells out:
// each section's owner's defaults, and the gateway's own.
func Defaults() Config {
	return Config{
		SIP: SIPConfig{Config: sip.DefaultConfig(), MaxCalls: 1000},
		ASR: ASRConfig{BatcherOptions: asr.DefaultBatcherOptions(), ShareMix: true, FinalTimeout: 30 * time.Second, MaxStreams: "auto",
			FinalModel: "moonshine-tiny", FinalModelTimeout: 3 * time.Second, FinalMaxSegment: 15 * time.Second,
			MaxLag: DefaultMaxLag, Hotwords: []string{}, HotwordScore: asr.DefaultHotwordsScore, Keywords: []string{}},
		Redis:  transcript.DefaultOptions(),
		Twilio: DefaultTwilioConfig(),
		Stream: DefaultStreamConfig(),
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080", Page: true, MaxEventStreams: 100, MaxConnections: 1000,
			ReadTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second},
		WebRTC:      WebRTCConfig{Enabled: true, Config: webrtc.DefaultConfig(), MaxSessions: 100},
		AudioHook:   DefaultAudioHookConfig(),
		AudioSocket: DefaultAudioSocketConfig(),
		Drain:       30 * time.Second, Redact: []string{}, Log: LogConfig{Format: "text", Level: "info"},
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

// Validate checks every key; the error names the first bad one by its
// path ("sip.rtp_ports: ...").
func (c *Config) Validate() error {
	for _, s := range []struct {
		key      string
		validate func() error
	}{
		{"sip", c.SIP.Validate}, {"asr", c.ASR.Validate}, {"redis", c.Redis.Validate},
		{"http", c.HTTP.Validate}, {"webrtc", c.WebRTC.Validate},
		{"audiohook", c.AudioHook.Validate}, {"twilio", c.Twilio.Validate}, {"stream", c.Stream.Validate},
		{"audiosocket", c.AudioSocket.Validate}, {"log", c.Log.Validate},
	} {
		if err := s.validate(); err != nil {
			return fmt.Errorf("%s.%w", s.key, err)
		}
	}
	if c.Drain < 0 {
		return errors.New("drain: out of range")
	}
	if strings.ContainsAny(c.Instance, " {}\t\r\n") {
		return fmt.Errorf("instance: %q: want a name without spaces or braces", c.Instance)
	}
	_, err := c.RedactPolicy()
	return err
}

// RedactPolicy is what redact asks for.
func (c *Config) RedactPolicy() (redact.Policy, error) {
	p, err := redact.Parse(strings.Join(c.Redact, ","))
	if err != nil {
		return p, fmt.Errorf("redact: %w", err)
	}
	return p, nil
}

// limits are the admission limits the configuration sets (Calls).
func (c *Config) limits() Limits {
	maxCalls := map[string]int{"sip": c.SIP.MaxCalls}
	if c.WebRTC.Enabled {
		maxCalls["webrtc"] = c.WebRTC.MaxSessions
	}
	maxStreams, _ := c.ASR.Streams() // checked by Validate; 0: the measured capacity
	l := Limits{MaxCalls: maxCalls, MaxPerPeer: map[string]int{"sip": c.SIP.MaxCallsPerSource}, MaxStreams: maxStreams, MaxLag: c.ASR.MaxLag}
	c.doorLimits(&l)
	return l
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
