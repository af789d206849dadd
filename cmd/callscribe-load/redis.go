package main

import (
	"flag"
	"os"

	"github.com/callscribe/callscribe/transcript"
)

// redisFlags declares the Redis flags every load takes and returns the
// follower options they give, for maxFollows reads at once. The password
// is $CALLSCRIBE_REDIS_PASSWORD, as the gateway's: a command line is
// visible to every user of the host.
func redisFlags(fs *flag.FlagSet) func(maxFollows int) transcript.FollowerOptions {
	addr := fs.String("redis", "127.0.0.1:6379", "the gateway's Redis")
	var c transcript.Conn
	fs.StringVar(&c.Username, "redis-user", os.Getenv("CALLSCRIBE_REDIS_USERNAME"), "Redis ACL user; the password is $CALLSCRIBE_REDIS_PASSWORD")
	fs.BoolVar(&c.TLS, "redis-tls", false, "speak TLS to Redis")
	fs.StringVar(&c.TLSCAFile, "redis-ca", "", "PEM `file` of the CAs of Redis's certificate (default: the system's roots)")
	return func(maxFollows int) transcript.FollowerOptions {
		c.Password = os.Getenv("CALLSCRIBE_REDIS_PASSWORD")
		return transcript.FollowerOptions{Addr: *addr, Conn: c, MaxFollows: maxFollows}
	}
}
