package transcript

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// A mix shared by one gateway is what another of the same prefix reads,
// kept for MixTTL; another prefix has none; a record that is not a mix is
// an error, not a guess.
func TestShareMix(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx := context.Background()
	a := newPublisher(t, Options{Addr: rd.Addr, Prefix: "fleet"})
	defer a.Close()
	b := newPublisher(t, Options{Addr: rd.Addr, Prefix: "fleet"})
	defer b.Close()
	other := newPublisher(t, Options{Addr: rd.Addr, Prefix: "other"})
	defer other.Close()
	if _, err := b.SharedMix(ctx); !errors.Is(err, ErrNoMix) {
		t.Fatalf("before any share: %v", err)
	}
	for _, bad := range []Mix{{Talk: 0, Heard: 0.1}, {Talk: 1.2, Heard: 0.1}, {Talk: 0.5, Heard: -0.1}} {
		if err := a.ShareMix(ctx, bad); err == nil {
			t.Errorf("ShareMix(%+v) took it", bad)
		}
	}
	at := time.Now().Truncate(time.Millisecond)
	if err := a.ShareMix(ctx, Mix{Talk: 0.00001, Heard: 0, Streams: 8, At: at, Instance: "gw-0"}); err != nil {
		t.Fatal(err)
	}
	if m, err := b.SharedMix(ctx); err != nil || m.Talk != 0.00001 { // written in full, not rounded to 0
		t.Errorf("a quiet fleet's mix read back as %+v, %v", m, err)
	}
	if err := a.ShareMix(ctx, Mix{Talk: 0.5312, Heard: 0.25, Streams: 90, At: at, Instance: "gw-1"}); err != nil {
		t.Fatal(err)
	}
	m, err := b.SharedMix(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Talk != 0.5312 || m.Heard != 0.25 || m.Streams != 90 || !m.At.Equal(at) || m.Instance != "gw-1" {
		t.Errorf("read back %+v", m)
	}
	if _, err := other.SharedMix(ctx); !errors.Is(err, ErrNoMix) {
		t.Errorf("another prefix: %v", err)
	}
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	if ttl := rc.TTL(ctx, "fleet:mix").Val(); ttl <= MixTTL-time.Minute || ttl > MixTTL {
		t.Errorf("fleet:mix expires in %v, want %v", ttl, MixTTL)
	}
	rc.HSet(ctx, "other:mix", "talk", "lots", "heard", "0.1", "streams", "3", "at", "1")
	if m, err := other.SharedMix(ctx); err == nil || errors.Is(err, ErrNoMix) {
		t.Errorf("a record that is not a mix read as %+v, %v", m, err)
	}
}
