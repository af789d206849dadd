package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type timedWord struct {
	Word    string `json:"word"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"`
}

// finalWords are the words of a call's finals.
func finalWords(t *testing.T, evs []map[string]any) [][]timedWord {
	t.Helper()
	var out [][]timedWord
	for _, e := range evs {
		if e["type"] != "final" {
			continue
		}
		var ws []timedWord
		if err := json.Unmarshal([]byte(e["words"].(string)), &ws); err != nil {
			t.Fatal(err)
		}
		out = append(out, ws)
	}
	return out
}

// A leg's words are on the call's clock, whatever gap its media timeline
// jumps over (hold, silence suppression, a resynchronised source): the
// same sentence said before and after a gap of 2 s, 12 s and 5 min has its
// words that much later, within 100 ms; the first words are placed by
// when the leg's first audio arrived after call.start. The recognizer is
// given at most bridgeMs of silence for a gap, not the gap.
func TestLegTimelineFollowsCallClock(t *testing.T) {
	b := newBatcher(t)
	a := asrtest.WAV(t, "0.wav")
	x, err := media.ResampleFilter(a.Samples, a.SampleRate, 16000, media.FilterKaldi)
	if err != nil {
		t.Fatal(err)
	}
	x = append(x, make([]float32, 16000)...) // the utterance ends before the gap
	for _, gap := range []time.Duration{2 * time.Second, 12 * time.Second, 5 * time.Minute} {
		t.Run(gap.String(), func(t *testing.T) {
			rd, pub, calls, _ := testGateway(t, b, CallsOptions{MaxStreams: -1, MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			calls.now = clock.Now
			tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
			if err != nil {
				t.Fatal(err)
			}
			tk.Start(nil)
			const firstMs = 700 // the leg's first audio, 20 ms long, arrives then
			clock.Add(firstMs * time.Millisecond)
			sink := tk.Sink(0)
			feed := func(at0 int64) {
				for i := 0; i < len(x); i += 320 {
					sink.WriteAudio(at0+int64(i), x[i:min(i+320, len(x))])
					time.Sleep(time.Millisecond)
				}
			}
			feed(0)
			jump := int64(len(x)) + gap.Milliseconds()*16
			feed(jump)
			tk.DTMF(0, media.DTMF{Digit: '5', StartMs: (jump+int64(len(x)))/16 + 100, DurationMs: 80})
			tk.End("bye", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			settle(t, ctx, calls, pub)
			evs := onlyCallEvents(t, rd.Addr)
			digits := 0
			for _, e := range evs {
				if e["type"] == "dtmf" {
					digits++
					var at int64
					fmt.Sscan(e["start_ms"].(string), &at)
					if want := firstMs - 20 + (jump+int64(len(x)))/16 + 100; at < want-100 || at > want+100 {
						t.Errorf("digit at %d ms, want %d", at, want)
					}
				}
			}
			if digits != 1 {
				t.Errorf("%d digits", digits)
			}
			finals := finalWords(t, evs)
			if len(finals) != 2 {
				t.Fatalf("%d finals, want the sentence twice: %v", len(finals), finals)
			}
			var ref []asr.Word
			for _, r := range reference16k(t, b, x) {
				if r.Kind == asr.Final {
					ref = append(ref, r.Words...)
				}
			}
			if len(ref) == 0 || len(finals[0]) != len(ref) || len(finals[1]) != len(ref) {
				t.Fatalf("words %d and %d, alone %d", len(finals[0]), len(finals[1]), len(ref))
			}
			first := int64(firstMs - 20)
			for i, w := range ref {
				if d := finals[0][i].StartMs - (first + w.StartMs); d < -100 || d > 100 {
					t.Errorf("before the gap: %q at %d ms, want %d", w.Text, finals[0][i].StartMs, first+w.StartMs)
				}
				if d := finals[1][i].StartMs - (first + jump/16 + w.StartMs); d < -100 || d > 100 {
					t.Errorf("after the gap: %q at %d ms, want %d", w.Text, finals[1][i].StartMs, first+jump/16+w.StartMs)
				}
			}
			if fed, most := tk.(*call).legs[0].fed, int64(2*len(x)+bridgeMs*16); fed > most {
				t.Errorf("the recognizer was given %d samples, at most %d expected", fed, most)
			}
		})
	}
}

// reference16k is what the recognizer gives for x alone.
func reference16k(t *testing.T, b *asr.Batcher, x []float32) []asr.Result {
	t.Helper()
	res, err := asr.DecodeAll(b, [][]float32{x}, 100)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// Audio lost on the way (an AudioHook client's discarded span) is skipped,
// not bridged: a sentence whose middle second is followed by a 500 ms skip
// gives the finals it gives alone (VAD endpointing would end an utterance
// at 500 ms of silence), the recognizer is given the sentence and nothing
// more, and the words after the skip are 500 ms later on the call's clock.
func TestLegSkipKeepsTheUtterance(t *testing.T) {
	b := batcherWith(t, asr.EndpointVAD)
	a := asrtest.WAV(t, "0.wav")
	x, err := media.ResampleFilter(a.Samples, a.SampleRate, 16000, media.FilterKaldi)
	if err != nil {
		t.Fatal(err)
	}
	x = append(x, make([]float32, 16000)...)
	var ref []asr.Result
	for _, r := range reference16k(t, b, x) {
		if r.Kind == asr.Final && len(r.Words) > 0 {
			ref = append(ref, r)
		}
	}
	if len(ref) == 0 || len(ref[0].Words) < 4 {
		t.Fatalf("reference finals %v", ref)
	}
	// Cut inside the first final, in its middle word.
	mid := ref[0].Words[len(ref[0].Words)/2]
	cut := (mid.StartMs + mid.EndMs) / 2 * 16
	const skip = 500 * 16
	rd, pub, calls, _ := testGateway(t, b, CallsOptions{MaxStreams: -1, MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
	tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "audiohook", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(nil)
	sink := tk.Sink(0)
	feed := func(from, to, at0 int64) {
		for i := from; i < to; i += 320 {
			sink.WriteAudio(at0+i, x[i:min(i+320, to)])
			time.Sleep(time.Millisecond)
		}
	}
	feed(0, cut, 0)
	sink.(interface{ SkipAudio(int64) }).SkipAudio(cut + skip)
	feed(cut, int64(len(x)), skip)
	tk.End("bye", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	evs := onlyCallEvents(t, rd.Addr)
	finals := finalWords(t, evs)
	if len(finals) != len(ref) {
		t.Fatalf("%d finals, alone %d: %v", len(finals), len(ref), finals)
	}
	if fed := tk.(*call).legs[0].fed; fed != int64(len(x)) {
		t.Errorf("the recognizer was given %d samples, the sentence has %d", fed, len(x))
	}
	first := finals[0][0].StartMs - ref[0].Words[0].StartMs // where the leg's audio began on the call's clock
	for i, w := range ref[0].Words {
		if i >= len(finals[0]) {
			t.Fatalf("first final %v, alone %v", finals[0], ref[0].Words)
		}
		want := first + w.StartMs
		if w.StartMs*16 > cut {
			want += skip / 16
		}
		if i > len(ref[0].Words)/2 && (finals[0][i].StartMs < want-150 || finals[0][i].StartMs > want+150) {
			t.Errorf("after the skip: %q at %d ms, want %d", w.Text, finals[0][i].StartMs, want)
		}
	}
}

// onlyCallEvents is the events of the one call on the Redis at addr.
func onlyCallEvents(t *testing.T, addr string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, e := range transcripttest.CallStreams(t, addr) {
		evs = e
	}
	return evs
}
