package transcript

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reader consumes the firehose as a member of a Redis consumer group: what
// a contact-center application imports. Events come in order per call; an
// event delivered twice (at-least-once publishing) is handed over once.
type Reader struct {
	client   redis.UniversalClient
	stream   string
	group    string
	consumer string
	lastSeq  map[string]int64
}

// ReaderOptions name the stream and the group member.
type ReaderOptions struct {
	Addr     string // default 127.0.0.1:6379
	Cluster  bool   // Addr is a node of a Redis Cluster
	Prefix   string // default "stt"
	Shard    int    // firehose shard, default 0
	Group    string // consumer group, created if missing; required
	Consumer string // this member's name; required
	// FromStart makes a new group read the stream from its beginning
	// instead of only new events.
	FromStart bool
}

// NewReader joins (creating if need be) the consumer group.
func NewReader(ctx context.Context, o ReaderOptions) (*Reader, error) {
	if o.Group == "" || o.Consumer == "" {
		return nil, errors.New("transcript: reader needs a group and a consumer name")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:6379"
	}
	if o.Prefix == "" {
		o.Prefix = "stt"
	}
	r := &Reader{client: redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{o.Addr}, IsClusterMode: o.Cluster}),
		group: o.Group, consumer: o.Consumer,
		stream: o.Prefix + ":events:" + strconv.Itoa(o.Shard), lastSeq: map[string]int64{}}
	start := "$"
	if o.FromStart {
		start = "0"
	}
	err := r.client.XGroupCreateMkStream(ctx, r.stream, r.group, start).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") { // the group exists already
		r.client.Close()
		return nil, fmt.Errorf("transcript: create group %s on %s: %w", r.group, r.stream, err)
	}
	return r, nil
}

// Message is an event read with the id to Ack it by.
type Message struct {
	ID    string
	Event Event
}

// Read waits up to block for events (at most count) and returns them. Call
// Ack once each is handled; unacked ones are delivered again after a
// restart (read with pending first).
func (r *Reader) Read(ctx context.Context, count int, block time.Duration) ([]Message, error) {
	res, err := r.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.group, Consumer: r.consumer,
		Streams: []string{r.stream, ">"}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transcript: read %s: %w", r.stream, err)
	}
	var out []Message
	var dups []string
	for _, s := range res {
		for _, m := range s.Messages {
			ev := decode(m.Values)
			if ev.Seq <= r.lastSeq[ev.CallID] {
				dups = append(dups, m.ID) // delivered before: acknowledge, do not hand over
				continue
			}
			r.lastSeq[ev.CallID] = ev.Seq
			if ev.Type == CallEnd {
				delete(r.lastSeq, ev.CallID)
			}
			out = append(out, Message{ID: m.ID, Event: ev})
		}
	}
	if len(dups) > 0 {
		r.client.XAck(ctx, r.stream, r.group, dups...)
	}
	return out, nil
}

// Ack marks messages handled.
func (r *Reader) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return r.client.XAck(ctx, r.stream, r.group, ids...).Err()
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
