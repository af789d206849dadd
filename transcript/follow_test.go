package transcript

import (
	"context"
	"testing"
	"time"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

func TestFollowerReadsOneCallFromAnyPoint(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := newPublisher(t, Options{Addr: rd.Addr})
	defer p.Close()
	f, err := NewFollower(FollowerOptions{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// A follow that starts before the call exists gets its first event.
	got := make(chan []Message, 1)
	go func() {
		ms, err := f.Read(ctx, "a", "", 10, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- ms
	}()
	time.Sleep(100 * time.Millisecond)
	p.Publish(Event{Type: CallStart, CallID: "a", Fields: map[string]string{"source": "webrtc"}})
	p.Publish(Event{Type: CallStart, CallID: "b"}) // another call: not seen
	p.Publish(Event{Type: Final, CallID: "a", Fields: map[string]string{"leg": "browser", "utt": "0", "text": "hello"}})
	p.Flush(ctx)
	first := <-got
	if len(first) == 0 || first[0].Event.Type != CallStart || first[0].Event.Fields["source"] != "webrtc" {
		t.Fatalf("first read: %+v", first)
	}
	all, err := f.Read(ctx, "a", "0", 10, time.Second)
	if err != nil || len(all) != 2 || all[1].Event.Fields["text"] != "hello" || all[1].Event.Seq != 2 {
		t.Fatalf("from the start: %+v %v", all, err)
	}
	// Going on from the last id: nothing until something comes.
	last := all[1].ID
	if ms, err := f.Read(ctx, "a", last, 10, 100*time.Millisecond); err != nil || len(ms) != 0 {
		t.Fatalf("after the last: %+v %v", ms, err)
	}
	if ended, _ := f.Ended(ctx, "a", last); ended {
		t.Fatal("ended before call.end")
	}
	p.Publish(Event{Type: CallEnd, CallID: "a", Fields: map[string]string{"reason": "bye"}})
	p.Flush(ctx)
	ms, err := f.Read(ctx, "a", last, 10, time.Second)
	if err != nil || len(ms) != 1 || ms[0].Event.Type != CallEnd {
		t.Fatalf("call.end: %+v %v", ms, err)
	}
	if ended, _ := f.Ended(ctx, "a", last); ended {
		t.Error("call.end lies after the id given, yet Ended says the reader has it")
	}
	if ended, err := f.Ended(ctx, "a", ms[0].ID); !ended || err != nil {
		t.Errorf("Ended at call.end = %v, %v", ended, err)
	}
	if ended, _ := f.Ended(ctx, "nope", ""); ended {
		t.Error("a call with no stream has ended")
	}
}

func TestIDLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"1-0", "1-1", true}, {"1-1", "1-0", false}, {"9-5", "10-0", true}, {"10-0", "9-5", false}, {"3-3", "3-3", false}} {
		if idLess(c.a, c.b) != c.less {
			t.Errorf("idLess(%s, %s) != %v", c.a, c.b, c.less)
		}
	}
}
