package sip

import (
	"strings"
	"testing"
	"time"
)

// keepalive_misses failures in a row end a call, an answer in between
// starts the count over; a Config built by hand takes the default, and
// the file's 0 is refused.
func TestKeepaliveMisses(t *testing.T) {
	for _, misses := range []int{1, 2, 3} {
		k := newKeepalive(time.Second, misses)
		for i := 1; i < misses; i++ {
			if k.settle(true) {
				t.Fatalf("%d misses: gone after %d", misses, i)
			}
		}
		if misses > 1 {
			k.settle(false) // the peer answered: the count starts over
			for i := 1; i < misses; i++ {
				if k.settle(true) {
					t.Fatalf("%d misses: gone after an answer and %d", misses, i)
				}
			}
		}
		if !k.settle(true) {
			t.Errorf("%d misses: not gone after %d", misses, misses)
		}
	}
	var c Config
	c.defaults()
	if c.KeepaliveMisses != DefaultKeepaliveMisses || DefaultConfig().KeepaliveMisses != 2 {
		t.Errorf("default %d, DefaultConfig %d", c.KeepaliveMisses, DefaultConfig().KeepaliveMisses)
	}
	c = DefaultConfig()
	c.KeepaliveMisses = 0
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "keepalive_misses:") {
		t.Errorf("keepalive_misses 0: %v", err)
	}
}
