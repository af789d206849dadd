package transcript

import (
	"testing"
	"time"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

func TestSubscriptionsSeeWhatIsPublished(t *testing.T) {
	rd := transcripttest.Start(t)
	p := newPublisher(t, Options{Addr: rd.Addr, Expire: time.Hour})
	one := p.Subscribe("c1", 10)
	all := p.Subscribe("", 10)
	small := p.Subscribe("", 1)
	p.Publish(Event{Type: CallStart, CallID: "c1", Fields: map[string]string{"source": "sip"}})
	p.Publish(Event{Type: CallStart, CallID: "c2", Fields: map[string]string{"source": "sip"}})
	p.Publish(Event{Type: Final, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "HELLO"}})
	got := func(s *Subscription) (ev []Event) {
		for {
			select {
			case e := <-s.C():
				ev = append(ev, e)
			default:
				return ev
			}
		}
	}
	if ev := got(one); len(ev) != 2 || ev[0].Seq != 1 || ev[1].Seq != 2 || ev[1].Fields["text"] != "HELLO" || ev[1].TS == 0 {
		t.Errorf("c1's subscription got %+v", ev)
	}
	if ev := got(all); len(ev) != 3 || ev[1].CallID != "c2" {
		t.Errorf("every call's subscription got %+v", ev)
	}
	if ev := got(small); len(ev) != 1 || small.Lost() != 2 {
		t.Errorf("a full subscription got %d and lost %d, want 1 and 2", len(ev), small.Lost())
	}
	one.Close()
	one.Close()
	if _, open := <-one.C(); open {
		t.Error("C open after Close")
	}
	p.Close()
	if _, open := <-all.C(); open {
		t.Error("C open after the publisher closed")
	}
	if late := p.Subscribe("c1", 1); late != nil {
		if _, open := <-late.C(); open {
			t.Error("a subscription to a closed publisher is open")
		}
		late.Close()
	}
}
