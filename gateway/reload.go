package gateway

import (
	"reflect"
)

// Reload reads a configuration with read (it must validate it) and applies
// what a running gateway can take from it: the SIP digest users and
// allowed sources, the WHIP (and /events, pause/resume) and metrics
// tokens, the configured hotwords, keywords and their score, the
// redaction, and the admission limits (sip.max_calls,
// max_calls_per_source, webrtc.max_sessions, asr.max_streams, max_lag).
// New calls and requests meet them; calls in progress keep what they
// started with. Reload returns the configuration
// read and the sections whose other changes it did not apply (they need a
// restart); on an error nothing changed. Reloads are counted by result
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
		return next, nil, err
	}
	kw, err := next.ASR.KeywordPhrases()
	if err != nil {
		return next, nil, err
	}
	policy, err := next.RedactPolicy()
	if err != nil {
		return next, nil, err
	}
	cidrs, err := next.SIP.CIDRs()
	if err != nil {
		return next, nil, err
	}
	s.sip.SetAccess(next.SIP.Users, cidrs)
	if s.whip != nil {
		s.whip.SetToken(next.WebRTC.Token)
	}
	s.events.SetToken(next.WebRTC.Token)
	tok := next.HTTP.MetricsToken
	s.metricsToken.Store(&tok)
	s.calls.SetConfigured(hot, kw, float32(next.ASR.HotwordScore), policy)
	s.calls.SetLimits(next.limits())

	var restart []string
	was, now := reloadable(s.cfg), reloadable(next)
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
	// What was applied is now the running configuration; the rest stays
	// as started.
	s.cfg.SIP.Users, s.cfg.SIP.AllowCIDRs = next.SIP.Users, next.SIP.AllowCIDRs
	s.cfg.WebRTC.Token, s.cfg.HTTP.MetricsToken = next.WebRTC.Token, next.HTTP.MetricsToken
	s.cfg.ASR.Hotwords, s.cfg.ASR.HotwordsFile, s.cfg.ASR.HotwordScore = next.ASR.Hotwords, next.ASR.HotwordsFile, next.ASR.HotwordScore
	s.cfg.ASR.Keywords, s.cfg.Redact, s.cfg.Log = next.ASR.Keywords, next.Redact, next.Log
	s.cfg.SIP.MaxCalls, s.cfg.SIP.MaxCallsPerSource, s.cfg.WebRTC.MaxSessions = next.SIP.MaxCalls, next.SIP.MaxCallsPerSource, next.WebRTC.MaxSessions
	s.cfg.ASR.MaxStreams, s.cfg.ASR.MaxLag = next.ASR.MaxStreams, next.ASR.MaxLag
	return next, restart, nil
}

// reloadable is c without what Reload applies (and the log, which the
// caller applies), to compare what is left.
func reloadable(c Config) Config {
	c.SIP.Users, c.SIP.AllowCIDRs = nil, nil
	c.WebRTC.Token, c.HTTP.MetricsToken = "", ""
	c.ASR.Hotwords, c.ASR.HotwordsFile, c.ASR.HotwordScore, c.ASR.Keywords = nil, "", 0, nil
	c.Redact, c.Log = nil, LogConfig{}
	c.SIP.MaxCalls, c.SIP.MaxCallsPerSource, c.WebRTC.MaxSessions, c.ASR.MaxStreams, c.ASR.MaxLag = 0, 0, 0, "", 0
	return c
}
