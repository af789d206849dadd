package media

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestPortRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PortRange
		ok   bool
	}{
		{"20000-30000", PortRange{20000, 30000}, true},
		{" 50000 - 50999 ", PortRange{50000, 50999}, true},
		{"5000-5000", PortRange{5000, 5000}, true},
		{"", PortRange{}, true},
		{"30000-2000", PortRange{}, false},
		{"0-10", PortRange{}, false},
		{"1-65536", PortRange{}, false},
		{"20000", PortRange{}, false},
		{"a-b", PortRange{}, false},
	} {
		got, err := ParsePortRange(tc.in)
		if got != tc.want || (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrPortRange)) {
			t.Errorf("%q: %v %v", tc.in, got, err)
		}
		if tc.ok && got.String() != "" && got.String() != tc.want.String() {
			t.Errorf("%q: String %q", tc.in, got.String())
		}
	}
	// In YAML, as a configuration writes it; and back.
	var c struct {
		Ports PortRange `yaml:"ports"`
		None  PortRange `yaml:"none"`
	}
	if err := yaml.Unmarshal([]byte("ports: \"20000-30000\"\nnone: \"\"\n"), &c); err != nil || c.Ports != (PortRange{20000, 30000}) || !c.None.IsZero() {
		t.Errorf("yaml: %+v %v", c, err)
	}
	if err := yaml.Unmarshal([]byte("ports: 3-1\n"), &c); !errors.Is(err, ErrPortRange) {
		t.Errorf("yaml 3-1: %v", err)
	}
	if b, err := yaml.Marshal(c); err != nil || string(b) != "ports: 20000-30000\nnone: \"\"\n" {
		t.Errorf("marshal: %q %v", b, err)
	}
}
