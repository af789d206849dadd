package asr

import "testing"

func TestEndpointRules(t *testing.T) {
	c := DefaultEndpointConfig()
	for _, tc := range []struct {
		name            string
		frames, silence int
		want            bool
	}{
		{"short silence, no speech", 200, 200, false},
		{"rule1: 2.4 s of silence alone", 240, 240, true},
		{"rule2: 1.2 s after speech", 300, 120, true},
		{"rule2 needs speech", 120, 120, false},
		{"speech, 1.1 s silence", 300, 110, false},
		{"rule3: 20 s utterance", 2000, 0, true},
		{"19.9 s utterance", 1990, 0, false},
	} {
		if got := c.IsEndpoint(tc.frames, tc.silence); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
	c.Enabled = false
	if c.IsEndpoint(5000, 5000) {
		t.Error("disabled endpointing fired")
	}
}
