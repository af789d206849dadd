package transcript

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mix is how much of their time the calls of a fleet (the gateways that
// share a Redis prefix) talk, as a gateway's recognizer measured it: the
// share of the streams' chunks it encoded (Talk) and the share its VAD
// heard (Heard). A gateway that starts takes it as its first estimate, so
// that a burst of quiet calls at start is not counted as all talkers.
type Mix struct {
	Talk, Heard float64
	Streams     int       // the streams it was measured on
	At          time.Time // when
	Instance    string    // the gateway that measured it
}

// valid tells whether the shares are shares: talk in (0, 1] (a fleet
// always encodes something), heard in [0, 1].
func (m Mix) valid() bool { return m.Talk > 0 && m.Talk <= 1 && m.Heard >= 0 && m.Heard <= 1 }

// MixTTL is how long a shared mix is kept after its last update: a fleet
// idle for longer starts again from the safe guess (every stream talks).
const MixTTL = 24 * time.Hour

// ShareMix records m as the fleet's latest mix (Keys.Mix, expiring after
// MixTTL). The last writer wins: the gateways of a fleet serve calls of the
// same kind.
func (p *Publisher) ShareMix(ctx context.Context, m Mix) error {
	if !m.valid() {
		return fmt.Errorf("transcript: mix out of range: talk %v, heard %v", m.Talk, m.Heard)
	}
	key := p.keys.Mix()
	_, err := p.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, key, "talk", strconv.FormatFloat(m.Talk, 'g', -1, 64), "heard", strconv.FormatFloat(m.Heard, 'g', -1, 64),
			"streams", m.Streams, "at", m.At.UnixMilli(), "instance", m.Instance)
		pipe.Expire(ctx, key, MixTTL)
		return nil
	})
	return err
}

// ErrNoMix: no gateway of the fleet has shared a mix within MixTTL.
var ErrNoMix = errors.New("transcript: no shared mix")

// SharedMix is the fleet's latest mix (ShareMix); ErrNoMix when there is
// none, an error when Redis cannot say or the record is not one.
func (p *Publisher) SharedMix(ctx context.Context) (Mix, error) {
	h, err := p.client.HGetAll(ctx, p.keys.Mix()).Result()
	if err != nil {
		return Mix{}, err
	}
	if len(h) == 0 {
		return Mix{}, ErrNoMix
	}
	var m Mix
	var at int64
	m.Talk, err = strconv.ParseFloat(h["talk"], 64)
	if err == nil {
		m.Heard, err = strconv.ParseFloat(h["heard"], 64)
	}
	if err == nil {
		m.Streams, err = strconv.Atoi(h["streams"])
	}
	if err == nil {
		at, err = strconv.ParseInt(h["at"], 10, 64)
	}
	if err != nil || !m.valid() {
		return Mix{}, fmt.Errorf("transcript: %s is not a mix: %v", p.keys.Mix(), h)
	}
	m.At, m.Instance = time.UnixMilli(at), h["instance"]
	return m, nil
}
