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
		rdr.Ack(ctx, m)
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

// readAll reads until a read comes back empty.
func readAll(t *testing.T, ctx context.Context, r *Reader) []Message {
	t.Helper()
	var got []Message
	for {
		ms, err := r.Read(ctx, 3, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return got
		}
		got = append(got, ms...)
	}
}

func seqs(ms []Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Event.Seq)
	}
	return out
}

// At least once across restarts and crashes: a consumer restarted under
// its name gets what it had not acknowledged; what a dead consumer held is
// claimed by a live one; a publisher's duplicate is dropped by any member,
// also after a restart; one reader covers every shard.
func TestReaderAtLeastOnce(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := ReaderOptions{Addr: rd.Addr, Shards: 4, Group: "app", Consumer: "a1", ClaimIdle: 300 * time.Millisecond}
	a1, err := NewReader(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, Options{Addr: rd.Addr, Shards: 4})
	defer p.Close()
	for i := range 12 { // calls spread over the shards
		p.Publish(NewFinal(fmt.Sprint("call-", i), Utterance{Leg: "caller", Text: fmt.Sprint("t", i)}))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	shards := map[string]bool{}
	got := readAll(t, ctx, a1)
	for _, m := range got {
		shards[m.Stream] = true
	}
	if len(got) != 12 || len(shards) < 2 {
		t.Fatalf("%d events from %d shards", len(got), len(shards))
	}
	if err := a1.Ack(ctx, got[:4]...); err != nil {
		t.Fatal(err)
	}
	a1.Close() // a restart: 8 unacknowledged

	a1, err = NewReader(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	again := readAll(t, ctx, a1)
	if len(again) != 8 {
		t.Fatalf("after a restart %d events came again, want the 8 unacknowledged", len(again))
	}
	for i, m := range again {
		if m.ID != got[4+i].ID && !contains(got[4:], m.ID) {
			t.Errorf("redelivered %s, not one of the unacknowledged", m.ID)
		}
	}
	// a1 dies holding them; a2 claims them once they are idle.
	o2 := o
	o2.Consumer = "a2"
	a2, err := NewReader(ctx, o2)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	time.Sleep(o.ClaimIdle) // let them go idle
	claimed := readAll(t, ctx, a2)
	if len(claimed) != 8 {
		t.Fatalf("a2 claimed %d, want 8", len(claimed))
	}
	a2.Ack(ctx, claimed...)
	// Duplicates of delivered events, as a retried pipeline leaves them.
	c := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer c.Close()
	for _, m := range got[:2] {
		c.XAdd(ctx, &redis.XAddArgs{Stream: m.Stream, Values: []any{"v", "1", "type", Final, "call_id", m.Event.CallID,
			"seq", fmt.Sprint(m.Event.Seq), "ts", "1", "text", "dup"}})
	}
	if ms := readAll(t, ctx, a2); len(ms) != 0 {
		t.Errorf("duplicates came through: %v", seqs(ms))
	}
	for _, s := range p.Keys().Firehoses() {
		if pending, _ := c.XPending(ctx, s, "app").Result(); pending != nil && pending.Count != 0 {
			t.Errorf("%s: %d pending", s, pending.Count)
		}
	}
}

func contains(ms []Message, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}
