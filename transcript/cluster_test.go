package transcript

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// On a Redis Cluster: calls' streams spread over the nodes (the hash tag
// keeps each call's on one), the firehose shards too; consumer groups on
// all shards see every event once; a call is followed from any node.
func TestRedisCluster(t *testing.T) {
	nodes := transcripttest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newPublisher(t, Options{Addr: nodes[1], Cluster: true, Shards: 4})
	defer p.Close()
	const calls = 20
	for i := range calls {
		id := fmt.Sprint("call-", i)
		p.Publish(Event{Type: CallStart, CallID: id, Fields: map[string]string{"source": "sip"}})
		p.Publish(Event{Type: Final, CallID: id, Fields: map[string]string{"leg": "caller", "utt": "0", "text": fmt.Sprint("text ", i)}})
		p.Publish(Event{Type: CallEnd, CallID: id, Fields: map[string]string{"reason": "bye"}})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Keys on more than one node.
	holding := 0
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n})
		if size, _ := c.DBSize(ctx).Result(); size > 0 {
			holding++
		}
		c.Close()
	}
	if holding < 2 {
		t.Errorf("keys on %d of %d nodes", holding, len(nodes))
	}
	got := 0
	r, err := NewReader(ctx, ReaderOptions{Addr: nodes[0], Cluster: true, Shards: 4, Group: "app", Consumer: "a", FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ms, err := r.Read(ctx, 100, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		got += len(ms)
	}
	r.Close()
	if got != 3*calls {
		t.Errorf("%d events through the consumer groups, want %d", got, 3*calls)
	}
	f, err := NewFollower(FollowerOptions{Addr: nodes[2], Cluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := f.Read(ctx, "call-7", "", 10, time.Second)
	if err != nil || len(ms) != 3 || ms[1].Event.Fields["text"] != "text 7" || ms[2].Event.Type != CallEnd {
		t.Fatalf("follow: %+v %v", ms, err)
	}
	if ended, err := f.Ended(ctx, "call-7", ms[2].ID); !ended || err != nil {
		t.Errorf("ended %v %v", ended, err)
	}
}
