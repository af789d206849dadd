// Command callscribe-tail follows transcripts on Redis as they arrive: what
// a contact-center developer runs first.
//
//	callscribe-tail [-redis ADDR] [-call ID] [-json] [-calls N]
//
// On a terminal, partials rewrite the current line and finals print; to a
// pipe, finals and call events print. -json prints raw events.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/internal/redisflags"
	"github.com/callscribe/callscribe/transcript"
)

func main() {
	addr := flag.String("redis", envOr("CALLSCRIBE_REDIS", "127.0.0.1:6379"), "Redis address")
	call := flag.String("call", "", "follow one call's stream (default: the firehose)")
	prefix := flag.String("prefix", transcript.DefaultPrefix, "key prefix")
	shard := flag.Int("shard", 0, "firehose shard")
	asJSON := flag.Bool("json", false, "print raw events as JSON lines")
	calls := flag.Int("calls", 0, "exit after this many call.end events (0: run until interrupted)")
	fromStart := flag.Bool("from-start", false, "print what is already on the stream first")
	cluster := flag.Bool("cluster", false, "the Redis address is a node of a Redis Cluster")
	conn := redisflags.Conn(flag.CommandLine)
	flag.Parse()
	keys := transcript.Keys{Prefix: *prefix}
	key := keys.Firehose(*shard)
	if *call != "" {
		key = keys.Call(*call)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rc, err := conn().NewClient(*addr, *cluster, redis.UniversalOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "callscribe-tail: %v\n", err)
		os.Exit(2)
	}
	defer rc.Close()
	if err := tail(ctx, rc, key, *asJSON, *calls, *fromStart, isTerminal(os.Stdout), os.Stdout); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "callscribe-tail: %v\n", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func tail(ctx context.Context, rc redis.UniversalClient, key string, asJSON bool, calls int, fromStart, tty bool, w io.Writer) error {
	last := "$"
	if fromStart {
		last = "0"
	}
	seen := map[string]int64{} // call_id -> last seq printed (at-least-once delivery)
	ended := 0
	partialShown := false
	for {
		res, err := rc.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Block: 2 * time.Second, Count: 100}).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(os.Stderr, "callscribe-tail: %v (retrying)\n", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				v := m.Values
				id, _ := v["call_id"].(string)
				var seq int64
				fmt.Sscan(fmt.Sprint(v["seq"]), &seq)
				if seq <= seen[id] {
					continue // a duplicate
				}
				seen[id] = seq
				if asJSON {
					b, _ := json.Marshal(v)
					fmt.Fprintln(w, string(b))
				} else {
					partialShown = show(w, v, tty, partialShown)
				}
				if v["type"] == transcript.CallEnd {
					ended++
					if calls > 0 && ended >= calls {
						return nil
					}
				}
			}
		}
	}
}

// show prints one event for people; it returns whether a partial line is
// open on the terminal.
func show(w io.Writer, v map[string]any, tty, open bool) bool {
	id, leg := fmt.Sprint(v["call_id"]), fmt.Sprint(v["leg"])
	clear := func() {
		if open {
			fmt.Fprint(w, "\r\033[K")
		}
	}
	switch v["type"] {
	case transcript.Partial:
		if tty {
			clear()
			fmt.Fprintf(w, "[%s %s] %s", short(id), leg, v["text"])
			return true
		}
		return false
	case transcript.Final:
		clear()
		text := v["text"]
		if d, ok := v["display"]; ok && d != "" {
			text = d // formatted for people
		}
		note := ""
		if p, ok := v["second_pass"]; ok {
			note = fmt.Sprintf(" (%v)", p) // which recognizer's words
		}
		if g, ok := v["gap_ms"]; ok {
			note += fmt.Sprintf(" (%v ms of audio not recognized)", g)
		}
		fmt.Fprintf(w, "[%s %s] %s%s\n", short(id), leg, text, note)
	case transcript.CallStart:
		clear()
		var hdrs []string
		for k, x := range v {
			if len(k) > 4 && k[:4] == "hdr:" {
				hdrs = append(hdrs, fmt.Sprintf("%s=%v", k[4:], x))
			}
		}
		sort.Strings(hdrs)
		fmt.Fprintf(w, "call %s started: %s -> %s (%s) %v\n", short(id), v["from"], v["to"], v["codec"], hdrs)
	case transcript.DTMF:
		clear()
		fmt.Fprintf(w, "[%s %s] DTMF %s\n", short(id), leg, v["digit"])
	case transcript.Pause, transcript.Resume:
		clear()
		fmt.Fprintf(w, "call %s: transcription %sd (%s) at %v ms\n", short(id), v["type"], v["by"], v["at_ms"])
	case transcript.Keyword:
		clear()
		fmt.Fprintf(w, "[%s %s] KEYWORD %q heard as %q at %v ms\n", short(id), leg, v["phrase"], v["text"], v["start_ms"])
	case transcript.CallEnd:
		clear()
		fmt.Fprintf(w, "call %s ended: %s after %s ms\n", short(id), v["reason"], v["duration_ms"])
	}
	return false
}

// short keeps long call ids (UUIDs) readable.
func short(id string) string {
	if len(id) > 24 {
		return id[:8] + "…" + id[len(id)-8:]
	}
	return id
}
