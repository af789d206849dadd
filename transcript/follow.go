package transcript

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Follower reads single calls' streams (stt:call:{id}) from any point:
// what a live view of one call follows. Unlike Reader it keeps no group
// state; the caller remembers the last id it has seen.
type Follower struct {
	client redis.UniversalClient
	keys   Keys
}

// FollowerOptions name the Redis server and bound the concurrent follows.
type FollowerOptions struct {
	Addr    string // default 127.0.0.1:6379
	Cluster bool   // Addr is a node of a Redis Cluster
	Conn           // the user, the password and TLS
	Prefix  string // default "stt"
	// MaxFollows is how many Reads may block at once (one connection
	// each); default 100.
	MaxFollows int
}

// Follower are the options of a follower of the Redis these options
// publish to, with maxFollows Reads at once.
func (o Options) Follower(maxFollows int) FollowerOptions {
	return FollowerOptions{Addr: o.Addr, Cluster: o.Cluster, Conn: o.Conn, Prefix: o.Prefix, MaxFollows: maxFollows}
}

// NewFollower returns a follower; it connects on first use.
func NewFollower(o FollowerOptions) (*Follower, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.MaxFollows <= 0 {
		o.MaxFollows = 100
	}
	// A blocked XREAD holds its connection: the pool has one per follow,
	// and a spare for the quick reads.
	client, err := o.Conn.NewClient(o.Addr, o.Cluster, redis.UniversalOptions{PoolSize: o.MaxFollows + 2,
		PoolTimeout: 2 * time.Second, ContextTimeoutEnabled: true})
	if err != nil {
		return nil, err
	}
	return &Follower{keys: Keys{Prefix: o.Prefix}, client: client}, nil
}

// Read returns the call's events after the entry id after ("0" or "" for
// the beginning), at most count, waiting up to block for the first. None
// and no error when block passes. Message.ID is the position to go on from.
func (f *Follower) Read(ctx context.Context, callID, after string, count int, block time.Duration) ([]Message, error) {
	if after == "" {
		after = "0"
	}
	key := f.keys.Call(callID)
	res, err := f.client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, after}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transcript: follow %s: %w", key, err)
	}
	var out []Message
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, Message{ID: m.ID, Event: decode(m.Values)})
		}
	}
	return out, nil
}

// Ended tells whether the call's stream holds its call.end at or before the
// entry id upto ("" for anywhere): nothing more will come after it.
func (f *Follower) Ended(ctx context.Context, callID, upto string) (bool, error) {
	key := f.keys.Call(callID)
	res, err := f.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return false, fmt.Errorf("transcript: follow %s: %w", key, err)
	}
	if len(res) == 0 || decode(res[0].Values).Type != CallEnd {
		return false, nil
	}
	return upto == "" || !idLess(upto, res[0].ID), nil
}

// idLess compares stream entry ids "ms-seq".
func idLess(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || am == bm && as < bs
}

// Ping checks that Redis answers.
func (f *Follower) Ping(ctx context.Context) error { return f.client.Ping(ctx).Err() }

// Close closes the connections; blocked Reads return an error.
func (f *Follower) Close() error { return f.client.Close() }
