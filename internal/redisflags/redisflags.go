// Package redisflags gives the command-line tools the flags of a Redis
// connection (transcript.Conn): the ACL user, TLS, its CA file and server
// name. The password comes from $CALLSCRIBE_REDIS_PASSWORD, as the
// gateway's does, never from a flag every user of the host can read.
package redisflags

import (
	"flag"
	"os"

	"github.com/callscribe/callscribe/transcript"
)

// Conn declares the flags on fs and returns what they and the environment
// give, to call after fs is parsed.
func Conn(fs *flag.FlagSet) func() transcript.Conn {
	var c transcript.Conn
	fs.StringVar(&c.Username, "redis-user", os.Getenv("CALLSCRIBE_REDIS_USERNAME"), "Redis ACL user; the password is $CALLSCRIBE_REDIS_PASSWORD")
	fs.BoolVar(&c.TLS, "redis-tls", false, "speak TLS to Redis")
	fs.StringVar(&c.TLSCAFile, "redis-ca", "", "PEM `file` of the CAs of Redis's certificate (default: the system's roots)")
	fs.StringVar(&c.TLSServerName, "redis-server-name", "", "`name` Redis's certificate is checked for (default: the address's host)")
	return func() transcript.Conn {
		c.Password = os.Getenv("CALLSCRIBE_REDIS_PASSWORD")
		return c
	}
}
