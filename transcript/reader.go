package transcript

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reader consumes the firehose, every shard of it, as a member of a Redis
// consumer group: what a contact-center application imports. Delivery is
// at least once: an event read and not acknowledged is read again by this
// consumer after a restart (its pending entries come first), and entries
// left pending by a consumer that died are claimed by a live one after
// ClaimIdle. A duplicate written by the publisher (the same call_id and seq
// under another entry id) is acknowledged and not handed over, by whichever
// member of the group meets it, across restarts: the group's record of
// delivered events lives in Redis.
type Reader struct {
	client    redis.UniversalClient
	keys      Keys
	streams   []string
	group     string
	consumer  string
	cluster   bool
	claimIdle time.Duration
	seenTTL   time.Duration

	// Per stream: the pending entries of this consumer still to re-read
	// ("" once done), and where the next claim scan starts.
	pending []string
	claimAt []string
	claimed time.Time // last claim scan
	rot     int       // the stream a blocking read waits on (cluster)
}

// ReaderOptions name the streams and the group member.
type ReaderOptions struct {
	Addr    string // default 127.0.0.1:6379
	Cluster bool   // Addr is a node of a Redis Cluster
	Conn           // the user, the password and TLS
	Prefix  string // default "stt"
	// Shards is the number of firehose shards (redis.shards of the
	// gateways); the reader reads all of them. Default 1.
	Shards   int
	Group    string // consumer group, created if missing; required
	Consumer string // this member's name; required, stable across restarts
	// FromStart makes a new group read the streams from their beginning
	// instead of only new events.
	FromStart bool
	// ClaimIdle is how long an entry may stay pending on another consumer
	// before this one claims it (XAUTOCLAIM); default 30 s.
	ClaimIdle time.Duration
	// SeenTTL is how long the group remembers a call's delivered events
	// after the last one (dedupe); default 24 h.
	SeenTTL time.Duration
}

// seenScript records that a group delivered a call's event: a seq seen for
// the first time, or again under the same entry id (a redelivery of an
// unacknowledged entry), is handed over (1); the same seq under another
// entry id is a duplicate (0).
var seenScript = redis.NewScript(`
local ok = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ok == 1 then return 1 end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
return 0
`)

// NewReader joins (creating if need be) the consumer group on every shard.
func NewReader(ctx context.Context, o ReaderOptions) (*Reader, error) {
	if o.Group == "" || o.Consumer == "" {
		return nil, errors.New("transcript: reader needs a group and a consumer name")
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.SeenTTL <= 0 {
		o.SeenTTL = 24 * time.Hour
	}
	keys := Keys{Prefix: o.Prefix, Shards: max(o.Shards, 1)}
	client, err := o.Conn.NewClient(o.Addr, o.Cluster, redis.UniversalOptions{})
	if err != nil {
		return nil, err
	}
	r := &Reader{client: client,
		keys: keys, streams: keys.Firehoses(), group: o.Group, consumer: o.Consumer, cluster: o.Cluster,
		claimIdle: o.ClaimIdle, seenTTL: o.SeenTTL}
	start := "$"
	if o.FromStart {
		start = "0"
	}
	for _, s := range r.streams {
		err := r.client.XGroupCreateMkStream(ctx, s, r.group, start).Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") { // the group exists already
			r.client.Close()
			return nil, fmt.Errorf("transcript: create group %s on %s: %w", r.group, s, err)
		}
		r.pending = append(r.pending, "0")
		r.claimAt = append(r.claimAt, "0-0")
	}
	return r, nil
}

// Message is an event read with the id to Ack it by.
type Message struct {
	ID     string
	Stream string
	Event  Event
}

// Read waits up to block for events (at most count) and returns them: first
// this consumer's own unacknowledged ones (after a restart), then entries
// claimed from consumers idle past ClaimIdle, then new ones. Call Ack once
// each is handled.
func (r *Reader) Read(ctx context.Context, count int, block time.Duration) ([]Message, error) {
	for {
		msgs, err := r.next(ctx, count, block)
		if err != nil || len(msgs) == 0 {
			return nil, err
		}
		out, err := r.dedupe(ctx, msgs)
		if err != nil || len(out) > 0 {
			return out, err
		}
		// All duplicates: read on.
	}
}

func (r *Reader) next(ctx context.Context, count int, block time.Duration) ([]Message, error) {
	for i, s := range r.streams {
		if r.pending[i] == "" {
			continue
		}
		msgs, err := r.readGroup(ctx, []string{s, r.pending[i]}, count, -1)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			r.pending[i] = "" // history read: new entries from now on
			continue
		}
		r.pending[i] = msgs[len(msgs)-1].ID
		return msgs, nil
	}
	if time.Since(r.claimed) >= r.claimIdle/2 {
		r.claimed = time.Now()
		if msgs, err := r.claim(ctx, count); err != nil || len(msgs) > 0 {
			return msgs, err
		}
	}
	if !r.cluster || len(r.streams) == 1 {
		args := append(append([]string(nil), r.streams...), make([]string, len(r.streams))...)
		for i := range r.streams {
			args[len(r.streams)+i] = ">"
		}
		return r.readGroup(ctx, args, count, block)
	}
	// A cluster's shards may live on different nodes: one command each.
	for _, s := range r.streams {
		if msgs, err := r.readGroup(ctx, []string{s, ">"}, count, -1); err != nil || len(msgs) > 0 {
			return msgs, err
		}
	}
	r.rot = (r.rot + 1) % len(r.streams)
	return r.readGroup(ctx, []string{r.streams[r.rot], ">"}, count, block)
}

// readGroup runs XREADGROUP; block < 0 does not block.
func (r *Reader) readGroup(ctx context.Context, streams []string, count int, block time.Duration) ([]Message, error) {
	res, err := r.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.group, Consumer: r.consumer,
		Streams: streams, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transcript: read group %s: %w", r.group, err)
	}
	var out []Message
	for _, s := range res {
		for _, m := range s.Messages {
			if m.Values == nil { // acknowledged and trimmed meanwhile
				continue
			}
			out = append(out, Message{ID: m.ID, Stream: s.Stream, Event: decode(m.Values)})
		}
	}
	return out, nil
}

// claim takes over entries pending on other consumers for ClaimIdle.
func (r *Reader) claim(ctx context.Context, count int) ([]Message, error) {
	var out []Message
	for i, s := range r.streams {
		msgs, next, err := r.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: s, Group: r.group, Consumer: r.consumer,
			MinIdle: r.claimIdle, Start: r.claimAt[i], Count: int64(count)}).Result()
		if err != nil {
			return nil, fmt.Errorf("transcript: claim on %s: %w", s, err)
		}
		r.claimAt[i] = next
		for _, m := range msgs {
			if m.Values != nil {
				out = append(out, Message{ID: m.ID, Stream: s, Event: decode(m.Values)})
			}
		}
	}
	return out, nil
}

// dedupe hands over the messages the group has not delivered before and
// acknowledges the duplicates.
func (r *Reader) dedupe(ctx context.Context, msgs []Message) ([]Message, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(msgs))
	for i, m := range msgs {
		cmds[i] = seenScript.Eval(ctx, pipe, []string{r.keys.Seen(r.group, m.Event.CallID)},
			strconv.FormatInt(m.Event.Seq, 10), m.ID, r.seenTTL.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("transcript: dedupe: %w", err)
	}
	var out []Message
	dups := map[string][]string{}
	for i, m := range msgs {
		if v, _ := cmds[i].Int(); v == 1 {
			out = append(out, m)
		} else {
			dups[m.Stream] = append(dups[m.Stream], m.ID)
		}
	}
	for s, ids := range dups {
		if err := r.client.XAck(ctx, s, r.group, ids...).Err(); err != nil {
			return nil, fmt.Errorf("transcript: ack duplicates: %w", err)
		}
	}
	return out, nil
}

// Ack marks messages handled.
func (r *Reader) Ack(ctx context.Context, msgs ...Message) error {
	by := map[string][]string{}
	for _, m := range msgs {
		by[m.Stream] = append(by[m.Stream], m.ID)
	}
	for s, ids := range by {
		if err := r.client.XAck(ctx, s, r.group, ids...).Err(); err != nil {
			return fmt.Errorf("transcript: ack on %s: %w", s, err)
		}
	}
	return nil
}

// Close leaves the group's connection (the group stays).
func (r *Reader) Close() error { return r.client.Close() }

func decode(v map[string]any) Event {
	ev := Event{Fields: map[string]string{}}
	for k, x := range v {
		s, _ := x.(string)
		switch k {
		case "type":
			ev.Type = s
		case "call_id":
			ev.CallID = s
		case "seq":
			ev.Seq, _ = strconv.ParseInt(s, 10, 64)
		case "ts":
			ev.TS, _ = strconv.ParseInt(s, 10, 64)
		case "v":
		default:
			ev.Fields[k] = s
		}
	}
	return ev
}
