package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callscribe/callscribe/transcript"
)

// The fleet's mix (asr.share_mix): how much of their time the calls talk
// is a property of the traffic, not of one gateway, so the gateways of a
// Redis prefix keep their latest measure there, and one that starts takes
// it as its first estimate instead of counting every stream as a talker.

// How often a gateway shares its mix, and on how many streams at least:
// fewer calls say little about the traffic.
const (
	mixShareEvery   = 10 * time.Second
	mixMinStreams   = 8
	mixRedisTimeout = 2 * time.Second
)

// seedMix starts the recognizer's mix at the fleet's, if Redis has one.
func (s *Service) seedMix() {
	ctx, cancel := context.WithTimeout(context.Background(), mixRedisTimeout)
	defer cancel()
	m, err := s.pub.SharedMix(ctx)
	switch {
	case errors.Is(err, transcript.ErrNoMix):
		return
	case err != nil:
		s.log.Warn("callscribe: the fleet's mix not read: every stream counts as talking until measured", "err", err)
		return
	}
	s.batcher.SeedMix(m.Talk, m.Heard)
	s.log.Info(fmt.Sprintf("callscribe: capacity ≈ %d streams at the fleet's mix (%.0f%% of chunks encoded)", s.batcher.Capacity(), 100*m.Talk),
		"measured_by", m.Instance, "streams", m.Streams, "age", time.Since(m.At).Round(time.Second))
}

// shareMix writes the recognizer's mix to Redis every period while it is
// mostly its own calls' measure (settled) and the calls hold at least
// minStreams streams, until quit.
func (s *Service) shareMix(quit <-chan struct{}, every time.Duration, minStreams int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		talk, heard, settled := s.batcher.Mix()
		n := s.calls.Streams()
		if !settled || n < minStreams {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), mixRedisTimeout)
		err := s.pub.ShareMix(ctx, transcript.Mix{Talk: talk, Heard: heard, Streams: n, At: time.Now(), Instance: s.cfg.InstanceName()})
		cancel()
		if err != nil {
			s.log.Debug("callscribe: the mix not shared", "err", err)
		}
	}
}
