package gateway

import (
	"net/netip"
	"strings"
	"testing"
)

// The audiosocket section: off, anything goes; on, the allowlist is
// required (the protocol has no authentication) and each bad key is named;
// its limits reach admission under the source audiosocket.
func TestAudioSocketSection(t *testing.T) {
	c := DefaultAudioSocketConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("off: %v", err)
	}
	c.Enabled = true
	for _, bad := range []struct {
		key  string
		edit func(*AudioSocketConfig)
	}{
		{"allow_cidrs", func(*AudioSocketConfig) {}},
		{"kind11", func(c *AudioSocketConfig) { c.Kind11 = "slin8" }},
		{"kind10", func(c *AudioSocketConfig) { c.Kind10 = "opus" }},
		{"listen", func(c *AudioSocketConfig) { c.Listen = "9092" }},
		{"max_calls", func(c *AudioSocketConfig) { c.MaxCalls = 0 }},
		{"idle_timeout", func(c *AudioSocketConfig) { c.IdleTimeout = -1 }},
		{"start_timeout", func(c *AudioSocketConfig) { c.StartTimeout = 0 }},
		{"max_connections_per_address", func(c *AudioSocketConfig) { c.MaxConnectionsPerAddress = -1 }},
		{"max_calls_per_address", func(c *AudioSocketConfig) { c.MaxCallsPerAddress = -1 }},
	} {
		d := c
		if bad.key != "allow_cidrs" {
			d.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		}
		bad.edit(&d)
		if err := d.Validate(); err == nil || !strings.HasPrefix(err.Error(), bad.key+":") {
			t.Errorf("%s: %v", bad.key, err)
		}
	}
	c.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	c.MaxCallsPerAddress = 3
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l := Limits{MaxCalls: map[string]int{}}
	c.limits(&l)
	if l.MaxCalls["audiosocket"] != 200 || l.MaxPerPeer["audiosocket"] != 3 {
		t.Errorf("limits %+v", l)
	}
}
