package gateway

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
		t.Errorf("file:\n%+v\ndefaults:\n%+v", c, d)
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
		{"sip:\n  media_timeout: soon\n", "line 2"}, // a type error names its line
		{"sipp:\n  udp: x\n", "sipp"},               // unknown field
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
