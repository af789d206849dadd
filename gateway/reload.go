package gateway

import (
	"fmt"
	"reflect"
	"strings"
)

// Reload reads a configuration with read (it must validate it) and applies
// what a running gateway can take from it (the live keys of Settings): the
// SIP digest users and allowed sources, the WHIP (and /events,
// pause/resume), metrics and board tokens, the configured hotwords, keywords and
// their score, the redaction, and the admission limits. New calls and
// requests meet them; calls in progress keep what they started with.
// Reload returns the configuration read and the sections whose other
// changes it did not apply (they need a restart); on an error nothing
// changed. Reloads are counted by result (callscribe_config_reloads_total).
// The log's level and format are the caller's, which owns the logger. One
// goroutine at a time.
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
	s.board.SetToken(next.HTTP.BoardToken)
	s.calls.SetConfigured(hot, kw, float32(next.ASR.HotwordScore), policy)
	s.calls.SetLimits(next.limits())

	return next, needRestart(s.cfg, next), nil
}

// needRestart names the sections (and top-level keys) whose changes from
// was to now a reload does not apply. The log is the caller's.
func needRestart(was, now Config) []string {
	var restart []string
	w, n := reflect.ValueOf(withoutLive(was)), reflect.ValueOf(withoutLive(now))
	for _, k := range configKeys() {
		if strings.Contains(k.path, ".") || k.path == "log" {
			continue
		}
		if !reflect.DeepEqual(w.FieldByIndex(k.index).Interface(), n.FieldByIndex(k.index).Interface()) {
			restart = append(restart, k.path)
		}
	}
	return restart
}

// Reloadable names the keys a reload applies (Settings' live ones): those
// Reload applies, and log.level, which the caller that owns the log
// applies.
func Reloadable() []string {
	var keys []string
	for _, s := range Settings() {
		if s.Live {
			keys = append(keys, s.Keys...)
		}
	}
	return keys
}

// withoutLive is c without what a reload applies, to compare what is left.
func withoutLive(c Config) Config {
	v := reflect.ValueOf(&c).Elem()
	for _, key := range Reloadable() {
		if k, ok := keyNamed(key); ok {
			f := v.FieldByIndex(k.index)
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return c
}
