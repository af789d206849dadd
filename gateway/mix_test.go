package gateway

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
)

// A gateway whose calls talk part of the time shares their mix on Redis,
// and a gateway that starts takes it as its first estimate: it admits more
// than it would with every stream counted as talking.
func TestFleetMix(t *testing.T) {
	var delay atomic.Int64
	opts := asr.BatcherOptions{MaxBatch: 4, Workers: 1, SkipSilence: true, Calibrate: true, Endpoint: asr.DefaultEndpointConfig()}
	b := delayedBatcher(t, opts, &delay)
	_, pub, calls, srv := testGateway(t, b, CallsOptions{MaxStreams: -1},
		sip.Config{UDP: "127.0.0.1:0", RTPPorts: media.PortRange{Lo: 39000, Hi: 39499}})
	s := &Service{cfg: Defaults(), log: slog.Default(), batcher: b, pub: pub, calls: calls}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.shareMix(quit, 100*time.Millisecond, 1) })
	stop := sync.OnceFunc(func() {
		close(quit)
		wg.Wait()
	})
	defer stop()
	ctx := context.Background()
	if _, err := pub.SharedMix(ctx); err == nil {
		t.Fatal("a mix shared before any call")
	}
	// Two calls: 9 s of silence (the mix is shared once mostly measured,
	// after about 7 s), then words.
	a := asrtest.WAV(t, "8k.wav")
	audio := append(make([]float32, 9*8000), a.Samples[:16000]...)
	placed := siptest.PlaceCalls(2, srv.Addrs()[0].String(), siptest.PCMU(audio), 0)
	var m transcript.Mix
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if m, err = pub.SharedMix(ctx); err == nil && m.Talk < 0.9 { // it starts at 1 (all talking)
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no quiet mix shared while the calls ran: %+v, %v", m, err)
		}
	}
	if _, err := placed.Wait(); err != nil {
		t.Fatal(err)
	}
	stop() // what Redis holds is the last share
	if m.Talk <= 0 || m.Streams < 1 || m.Instance != s.cfg.InstanceName() {
		t.Errorf("shared %+v", m)
	}
	// A gateway that starts: its estimate follows the shared mix.
	b2 := delayedBatcher(t, opts, &delay)
	talking := b2.TalkingCapacity()
	if c := b2.Capacity(); c != talking {
		t.Fatalf("fresh: capacity %d, %d with everyone talking", c, talking)
	}
	s2 := &Service{cfg: Defaults(), log: slog.Default(), batcher: b2, pub: pub}
	s2.seedMix()
	shared, err := pub.SharedMix(ctx)
	if err != nil {
		t.Fatal(err)
	}
	talk, _, settled := b2.Mix()
	if settled || math.Abs(talk-shared.Talk) > 1e-9 || b2.Capacity() <= talking {
		t.Errorf("seeded with %+v: talk %.3f settled %v, capacity %d (%d with everyone talking)", shared, talk, settled, b2.Capacity(), talking)
	}
}
