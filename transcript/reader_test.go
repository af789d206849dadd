package transcript

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

func TestReaderGroupAckAndDedupe(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdr, err := NewReader(ctx, ReaderOptions{Addr: rd.Addr, Group: "app", Consumer: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	p := newPublisher(t, Options{Addr: rd.Addr})
	defer p.Close()
	for i := range 5 {
		p.Publish(Event{Type: Final, CallID: "c", Fields: map[string]string{"leg": "caller", "utt": fmt.Sprint(i), "text": fmt.Sprint("t", i)}})
	}
	p.Flush(ctx)
	// A duplicate as a retried pipeline would leave it: same call_id and seq.
	c := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer c.Close()
	c.XAdd(ctx, &redis.XAddArgs{Stream: "stt:events:0", Values: []any{"v", "1", "type", Final, "call_id", "c", "seq", "3", "ts", "1", "text", "t2"}})

	var got []Message
	for len(got) < 5 {
		ms, err := rdr.Read(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		got = append(got, ms...)
	}
	if len(got) != 5 {
		t.Fatalf("%d events", len(got))
	}
	for i, m := range got {
		if m.Event.Seq != int64(i+1) || m.Event.Fields["text"] != fmt.Sprint("t", i) || m.Event.Type != Final {
			t.Errorf("event %d: %+v", i, m.Event)
		}
	}
	if ms, _ := rdr.Read(ctx, 10, 200*time.Millisecond); len(ms) != 0 {
		t.Errorf("the duplicate came through: %+v", ms)
	}
	for _, m := range got[:3] {
		rdr.Ack(ctx, m.ID)
	}
	pending, err := c.XPending(ctx, "stt:events:0", "app").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 2 {
		t.Errorf("%d pending, want the 2 not acked", pending.Count)
	}
	if _, err := NewReader(ctx, ReaderOptions{Addr: rd.Addr}); err == nil {
		t.Error("reader without a group accepted")
	}
}
