package transcripttest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// CallStreams reads every call's stream (stt:call:{id}, the default
// prefix) from the Redis at addr: each entry's fields, in order, by key.
func CallStreams(t testing.TB, addr string) map[string][]map[string]any {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "stt:call:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]any{}
	for _, k := range keys {
		msgs, err := rc.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			out[k] = append(out[k], m.Values)
		}
	}
	return out
}
