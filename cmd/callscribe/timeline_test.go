package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// Through the gateway process: a caller says a sentence, goes on hold for
// 12 s — no packets, and its RTP clock paused, as a B2BUA's is — and says
// it again. The words after the hold are 12 s and the first sentence
// later than the same words before it, within 100 ms: word times are the
// call's clock, not the count of audio received.
func TestWordTimesFollowTheClockAcrossAHold(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr)
	g.waitReady(t, 200)
	a := testWAV(t, "0.wav")
	x, err := media.ResampleFilter(a.Samples, a.SampleRate, 8000, media.FilterSharp)
	if err != nil {
		t.Fatal(err)
	}
	x = append(x, make([]float32, 8000)...) // a second of silence ends the sentence
	x = x[:len(x)/160*160]
	ph := siptest.NewPhone(t)
	ph.PT = 0
	ph.HoldAfter, ph.Hold = time.Duration(len(x)/8)*time.Millisecond, 12*time.Second
	if code := ph.Talk(t, g.sip, siptest.PCMU(append(append([]float32{}, x...), x...))); code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	var finals [][]struct {
		Word    string `json:"word"`
		StartMs int64  `json:"start_ms"`
	}
	for _, e := range onlyCall(t, rd.Addr) {
		if e["type"] == "final" {
			var ws []struct {
				Word    string `json:"word"`
				StartMs int64  `json:"start_ms"`
			}
			if err := json.Unmarshal([]byte(fmt.Sprint(e["words"])), &ws); err != nil {
				t.Fatal(err)
			}
			finals = append(finals, ws)
		}
	}
	if len(finals) != 2 || len(finals[0]) == 0 || len(finals[0]) != len(finals[1]) {
		t.Fatalf("finals %v: want the sentence twice", finals)
	}
	want := ph.Hold.Milliseconds() + int64(len(x)/8)
	for i, w := range finals[0] {
		if d := finals[1][i].StartMs - w.StartMs; d < want-100 || d > want+100 {
			t.Errorf("%q at %d ms, then at %d ms: %d ms later, want %d", w.Word, w.StartMs, finals[1][i].StartMs, d, want)
		}
	}
}
