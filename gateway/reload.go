package gateway

import (
	"fmt"
	"reflect"
)

// Reload reads a configuration with read (it must validate it) and applies
// what a running gateway can take from it (Reloadable): the SIP digest
// users and allowed sources, the WHIP (and /events, pause/resume) and
// metrics tokens, the configured hotwords, keywords and their score, the
// redaction, and the admission limits. New calls and requests meet them;
// calls in progress keep what they started with. Reload returns the
// configuration read and the sections whose other changes it did not apply
// (they need a restart); on an error nothing changed. Reloads are counted by result
// (callscribe_config_reloads_total). The log's level and format are the
// caller's, which owns the logger. One goroutine at a time.
func (s *Service) Reload(read func() (Config, error)) (Config, []string, error) {
	next, restart, err := s.reload(read)
	if err != nil {
		s.reloads[1].Add(1)
		return next, nil, err
	}
	s.reloads[0].Add(1)
	return next, restart, nil
}

func (s *Service) reload(read func() (Config, error)) (Config, []string, error) {
	next, err := read()
	if err != nil {
		return next, nil, err
	}
	hot, err := next.ASR.HotwordPhrases()
	if err != nil {
		return next, nil, fmt.Errorf("asr.%w", err)
	}
	kw, err := next.ASR.KeywordPhrases()
	if err != nil {
		return next, nil, fmt.Errorf("asr.%w", err)
	}
	policy, err := next.RedactPolicy()
	if err != nil {
		return next, nil, err
	}
	s.sip.SetAccess(next.SIP.Users, next.SIP.AllowCIDRs)
	if s.whip != nil {
		s.whip.SetToken(next.WebRTC.Token)
	}
	s.events.SetToken(next.WebRTC.Token)
	tok := next.HTTP.MetricsToken
	s.metricsToken.Store(&tok)
	s.calls.SetConfigured(hot, kw, float32(next.ASR.HotwordScore), policy)
	s.calls.SetLimits(next.limits())

	var restart []string
	was, now := withoutLive(s.cfg), withoutLive(next)
	for _, sec := range []struct {
		name     string
		was, now any
	}{
		{"sip", was.SIP, now.SIP}, {"asr", was.ASR, now.ASR}, {"redis", was.Redis, now.Redis}, {"http", was.HTTP, now.HTTP},
		{"webrtc", was.WebRTC, now.WebRTC}, {"drain", was.Drain, now.Drain}, {"instance", was.Instance, now.Instance},
	} {
		if !reflect.DeepEqual(sec.was, sec.now) {
			restart = append(restart, sec.name)
		}
	}
	return next, restart, nil
}

// liveSetting is a setting Reload applies, by name, with how to clear it
// from a configuration.
type liveSetting struct {
	name  string
	clear func(*Config)
}

// liveSettings are what Reload applies (the log is the caller's).
func liveSettings() []liveSetting {
	return []liveSetting{
		{"sip.users", func(c *Config) { c.SIP.Users = nil }},
		{"sip.allow_cidrs", func(c *Config) { c.SIP.AllowCIDRs = nil }},
		{"sip.max_calls", func(c *Config) { c.SIP.MaxCalls = 0 }},
		{"sip.max_calls_per_source", func(c *Config) { c.SIP.MaxCallsPerSource = 0 }},
		{"webrtc.token", func(c *Config) { c.WebRTC.Token = "" }},
		{"webrtc.max_sessions", func(c *Config) { c.WebRTC.MaxSessions = 0 }},
		{"http.metrics_token", func(c *Config) { c.HTTP.MetricsToken = "" }},
		{"asr.hotwords", func(c *Config) { c.ASR.Hotwords = nil }},
		{"asr.hotwords_file", func(c *Config) { c.ASR.HotwordsFile = "" }},
		{"asr.hotwords_score", func(c *Config) { c.ASR.HotwordScore = 0 }},
		{"asr.keywords", func(c *Config) { c.ASR.Keywords = nil }},
		{"asr.max_streams", func(c *Config) { c.ASR.MaxStreams = "" }},
		{"asr.max_lag", func(c *Config) { c.ASR.MaxLag = 0 }},
		{"redact", func(c *Config) { c.Redact = nil }},
	}
}

// Reloadable names the settings Reload applies.
func Reloadable() []string {
	var names []string
	for _, l := range liveSettings() {
		names = append(names, l.name)
	}
	return names
}

// withoutLive is c without what Reload applies, to compare what is left.
func withoutLive(c Config) Config {
	for _, l := range liveSettings() {
		l.clear(&c)
	}
	return c
}
