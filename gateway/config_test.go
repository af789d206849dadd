package gateway

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The shipped file documents exactly the defaults.
func TestShippedConfigIsTheDefaults(t *testing.T) {
	c, err := LoadConfig("../configs/callscribe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := Defaults(); !reflect.DeepEqual(c, d) {
		file, code := reflect.ValueOf(c), reflect.ValueOf(d)
		for _, k := range configKeys() {
			if f, d := file.FieldByIndex(k.index).Interface(), code.FieldByIndex(k.index).Interface(); k.leaf && !reflect.DeepEqual(f, d) {
				t.Errorf("%s: %v in the file, %v in the code", k.path, f, d)
			}
		}
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sip:\n  rtp_ports: 30000-2000\n", "sip.rtp_ports"},
		{"sip:\n  codecs: [G729]\n", "sip.codecs"},
		{"sip:\n  udp: nowhere\n", "sip.udp"},
		{"sip:\n  allow_cidrs: [10.0.0.0/33]\n", "sip.allow_cidrs"},
		{"asr:\n  provider: tpu\n", "asr.provider"},
		{"asr:\n  max_batch: -1\n", "asr.max_batch"},
		{"asr:\n  device_ids: [0, -1]\n", "asr.device_ids"},
		{"asr:\n  gpu_retry: 0s\n", "asr.gpu_retry"},
		{"redis:\n  addr: ''\n", "redis.addr"},
		{"redis:\n  addr: redis\n", "redis.addr"},
		{"redis:\n  addr: redis:99999\n", "redis.addr"},
		{"http:\n  max_event_streams: 0\n", "http.max_event_streams"},
		{"sip:\n  agent_aors: ['[agents']\n", "sip.agent_aors"},
		{"sip:\n  leg_names_header: 'X Leg'\n", "sip.leg_names_header"},
		{"asr:\n  hotwords: [\"acme\"]\n", "asr.hotwords: need asr.decoding"},
		{"asr:\n  decoding: modified_beam_search\n  hotwords: [\"a;b\"]\n", "asr.hotwords"},
		{"asr:\n  keywords: [\"x:99\"]\n", "asr.keywords"},
		{"asr:\n  decoding: beam\n", "asr.decoding"},
		{"sip:\n  srtp: maybe\n", "sip.srtp"},
		{"redact: [cards]\n", "redact"},
		{"log:\n  format: xml\n", "log.format"},
		{"log:\n  level: loud\n", "log.level"},
		{"log:\n  level: info+2\n", "log.level"},
		{"sip:\n  tls: 127.0.0.1:5061\n", "sip.tls_cert_file"},
		{"sip:\n  media_timeout: soon\n", "sip.media_timeout (line 2)"}, // a type error names its key and line
		{"sipp:\n  udp: x\n", "sipp (line 1): unknown key"},
		{"sip:\n  udpp: x\n", "sip.udpp (line 2): unknown key"},
		{"sip:\n  tls_client:\n    verify: maybe\n", "sip.tls_client.verify (line 3)"},
		{"webrtc:\n  ice_ports: 9-1\n", "webrtc.ice_ports (line 2)"},
		{"webrtc:\n  path: whip\n", "webrtc.path"},
		{"webrtc:\n  max_sessions: 0\n", "webrtc.max_sessions"},
		{"redis:\n  shards: 0\n", "redis.shards"},
		{"redis:\n  prefix: 'a b'\n", "redis.prefix"},
		{"asr:\n  endpoint:\n    mode: sometimes\n", "asr.endpoint.mode"},
		{"asr:\n  endpoint:\n    rule1:\n      min_trailing_silence: long\n", "asr.endpoint.rule1.min_trailing_silence (line 4)"},
		{"asr:\n  max_streams: many\n", "asr.max_streams"},
		{"http:\n  addr: localhost\n", "http.addr"},
		{"drain: -1s\n", "drain"},
		{"instance: 'a b'\n", "instance"},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		c, err := LoadConfig(path)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want it to name %s", tc.yaml, err, tc.want)
		}
	}
}

func TestRedisByName(t *testing.T) {
	c := Defaults()
	c.Redis.Addr = "redis.callscribe.svc:6379"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// A section WHIP does not serve is not checked: a file that turns WHIP off
// may leave its limit at 0, as it could before the section was webrtc's.
func TestDisabledWebRTCIsNotChecked(t *testing.T) {
	c := Defaults()
	c.WebRTC.Enabled, c.WebRTC.MaxSessions = false, 0
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// Flags and environment variables set a key from text, and a value that
// does not parse is named by its key.
func TestSetFromText(t *testing.T) {
	c := Defaults()
	for key, text := range map[string]string{"sip.rtp_ports": "40000-40999", "asr.max_lag": "1h", "drain": "2s",
		"sip.udp": "0.0.0.0:5080", "asr.max_streams": "12"} {
		if err := c.Set(key, text); err != nil {
			t.Errorf("%s %q: %v", key, text, err)
		}
	}
	if c.SIP.RTPPorts.Lo != 40000 || c.ASR.MaxLag != time.Hour || c.Drain != 2*time.Second || c.SIP.UDP != "0.0.0.0:5080" || c.ASR.MaxStreams != "12" {
		t.Errorf("%+v", c)
	}
	for key, text := range map[string]string{"sip.rtp_ports": "9-1", "asr.max_lag": "soon", "sip": "x", "nothing": "x"} {
		if err := c.Set(key, text); err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s %q: %v", key, text, err)
		}
	}
}

// A reload applies the table's live keys and names the sections whose
// other changes need a restart; the log is the caller's.
func TestReloadNeedsRestart(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   []string
	}{
		{func(c *Config) { c.SIP.Users = map[string]string{"alice": "x"} }, nil},
		{func(c *Config) { c.SIP.AllowCIDRs = nil; c.SIP.MaxCalls = 5 }, nil},
		{func(c *Config) {
			c.ASR.Hotwords = []string{"acme"}
			c.ASR.MaxLag = time.Hour
			c.Redact = []string{"pci"}
		}, nil},
		{func(c *Config) { c.WebRTC.Token, c.HTTP.MetricsToken = "a", "b" }, nil},
		{func(c *Config) { c.Log.Level, c.Log.Format = "debug", "json" }, nil},
		{func(c *Config) { c.SIP.InviteRate = 50 }, []string{"sip"}},
		{func(c *Config) { c.SIP.TLSClient.Verify = new(false) }, []string{"sip"}},
		{func(c *Config) { c.ASR.Engine.Threads = 2; c.Drain = time.Second }, []string{"asr", "drain"}},
		{func(c *Config) { c.WebRTC.ICEPorts.Lo, c.WebRTC.ICEPorts.Hi = 1, 2; c.Redis.Shards = 2 }, []string{"redis", "webrtc"}},
	} {
		now := Defaults()
		tc.change(&now)
		if got := needRestart(Defaults(), now); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", now, got, tc.want)
		}
	}
	if live := Reloadable(); !slices.Contains(live, "log.level") || !slices.Contains(live, "sip.users") || slices.Contains(live, "sip.invite_rate") {
		t.Errorf("Reloadable: %v", live)
	}
}
