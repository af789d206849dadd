package main

import (
	"flag"

	"github.com/callscribe/callscribe/internal/redisflags"
	"github.com/callscribe/callscribe/transcript"
)

// redisFlags declares the Redis flags every load takes and returns the
// follower options they give, for maxFollows reads at once.
func redisFlags(fs *flag.FlagSet) func(maxFollows int) transcript.FollowerOptions {
	addr := fs.String("redis", "127.0.0.1:6379", "the gateway's Redis")
	conn := redisflags.Conn(fs)
	return func(maxFollows int) transcript.FollowerOptions {
		return transcript.FollowerOptions{Addr: *addr, Conn: conn(), MaxFollows: maxFollows}
	}
}
