package gateway

// A Setting is a configuration key with more than its place in the file:
// a flag or an environment variable of callscribe serve sets it, or a
// running gateway applies a new value on reload (SIGHUP). Settings is the
// one table of them: callscribe serve makes its flags and reads the
// environment from it, Reload and Reloadable read it, and the reference
// (docs/configuration.md) is generated from it.
type Setting struct {
	// Keys are the configuration keys it sets: one, or more that take the
	// same value (-sip sets sip.udp and sip.tcp).
	Keys []string
	// Flag is callscribe serve's flag, without its dash; empty: none (the
	// tokens: a command line is visible to every user of the host).
	Flag string
	// Env is the environment variable, read over the file and under the
	// flags; empty: none.
	Env string
	// Help says what a flag sets, for its usage line.
	Help string
	// Live: a reload applies a new value to the running gateway; the other
	// keys need a restart.
	Live bool
}

// Settings is the table of the keys that flags and environment variables
// set and of those a reload applies, in the order serve lists its flags.
func Settings() []Setting {
	return []Setting{
		{Keys: []string{"sip.udp", "sip.tcp"}, Flag: "sip", Env: "CALLSCRIBE_SIP", Help: "SIP listen `address`, UDP and TCP"},
		{Keys: []string{"http.addr"}, Flag: "http", Env: "CALLSCRIBE_HTTP", Help: "HTTP listen `address`: health, readiness, metrics, events, WHIP, page"},
		{Keys: []string{"redis.addr"}, Flag: "redis", Env: "CALLSCRIBE_REDIS", Help: "Redis `address`"},
		{Keys: []string{"asr.model_dir"}, Flag: "model", Env: "CALLSCRIBE_MODEL", Help: "model `directory`"},
		{Keys: []string{"sip.rtp_ports"}, Flag: "rtp-ports", Env: "CALLSCRIBE_RTP_PORTS", Help: "RTP port range `LO-HI`"},
		{Keys: []string{"sip.media_ip"}, Flag: "media-ip", Env: "CALLSCRIBE_MEDIA_IP", Help: "`address` of the RTP sockets, announced in SDP"},
		{Keys: []string{"asr.provider"}, Flag: "provider", Env: "CALLSCRIBE_PROVIDER", Help: "execution `provider`: cpu or cuda"},
		{Keys: []string{"asr.workers"}, Flag: "workers", Env: "CALLSCRIBE_WORKERS", Help: "engines run in parallel, and second-pass recognizers: a `number`; 0: one per CPU the process may use"},
		{Keys: []string{"asr.final_model"}, Flag: "final-model", Env: "CALLSCRIBE_FINAL_MODEL", Help: "second pass for finals: none, moonshine-tiny, moonshine-base or a model `directory`"},
		{Keys: []string{"asr.max_streams"}, Flag: "max-streams", Env: "CALLSCRIBE_MAX_STREAMS", Help: "recognition streams admitted: auto or a `number`", Live: true},
		{Keys: []string{"asr.max_lag"}, Flag: "max-lag", Env: "CALLSCRIBE_MAX_LAG", Help: "no call is admitted while decoding lags more than this `duration`", Live: true},
		{Keys: []string{"log.format"}, Flag: "log-format", Env: "CALLSCRIBE_LOG_FORMAT", Help: "log lines as text or json"},
		{Keys: []string{"log.level"}, Flag: "log-level", Env: "CALLSCRIBE_LOG_LEVEL", Help: "least severity logged: debug, info, warn, error", Live: true},
		{Keys: []string{"drain"}, Flag: "drain", Help: "on SIGTERM, how long (a `duration`) calls may go on before they are ended"},
		{Keys: []string{"webrtc.token"}, Env: "CALLSCRIBE_WEBRTC_TOKEN", Help: "bearer token of WHIP, /events and pause/resume", Live: true},
		{Keys: []string{"http.metrics_token"}, Env: "CALLSCRIBE_METRICS_TOKEN", Help: "bearer token of /metrics", Live: true},
		{Keys: []string{"audiohook.api_key"}, Env: "CALLSCRIBE_AUDIOHOOK_API_KEY", Help: "API key of the Genesys AudioHook integration"},
		{Keys: []string{"audiohook.client_secret"}, Env: "CALLSCRIBE_AUDIOHOOK_CLIENT_SECRET", Help: "client secret (base64) of the Genesys AudioHook integration"},
		{Keys: []string{"http.board_token"}, Env: "CALLSCRIBE_BOARD_TOKEN", Help: "bearer token of the live-calls board (/calls)", Live: true},
		{Keys: []string{"twilio.auth_token"}, Env: "CALLSCRIBE_TWILIO_AUTH_TOKEN", Help: "Twilio auth token: X-Twilio-Signature checked"},
		{Keys: []string{"twilio.bearer_token"}, Env: "CALLSCRIBE_TWILIO_BEARER_TOKEN", Help: "bearer token of the Twilio door"},
		{Keys: []string{"stream.token"}, Env: "CALLSCRIBE_STREAM_TOKEN", Help: "bearer token of the audio-fork and jambonz doors"},
		{Keys: []string{"redis.username"}, Env: "CALLSCRIBE_REDIS_USERNAME", Help: "Redis ACL user (AUTH)"},
		{Keys: []string{"redis.password"}, Env: "CALLSCRIBE_REDIS_PASSWORD", Help: "Redis password (AUTH)"},
		{Keys: []string{"sip.users"}, Live: true},
		{Keys: []string{"sip.allow_cidrs"}, Live: true},
		{Keys: []string{"sip.max_calls"}, Live: true},
		{Keys: []string{"sip.max_calls_per_source"}, Live: true},
		{Keys: []string{"webrtc.max_sessions"}, Live: true},
		{Keys: []string{"audiosocket.max_calls"}, Live: true},
		{Keys: []string{"audiosocket.max_calls_per_address"}, Live: true},
		{Keys: []string{"asr.hotwords"}, Live: true},
		{Keys: []string{"asr.hotwords_file"}, Live: true},
		{Keys: []string{"asr.hotwords_score"}, Live: true},
		{Keys: []string{"asr.keywords"}, Live: true},
		{Keys: []string{"redact"}, Live: true},
	}
}
