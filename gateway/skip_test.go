package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
)

// Skipping silence through the gateway: a call with long silences between
// its sentences gets finals as accurate as without skipping, the words both
// find at the same places on the call's clock, and its keyword alert. (The
// texts may differ: a stream that skipped the call's first 4 s starts its
// first sentence from a fresh state, not one that heard 4 s of silence.)
func TestSkipSilenceThroughTheGateway(t *testing.T) {
	var x []float32
	quiet := func(s float64) { x = append(x, make([]float32, int(s*16000))...) }
	quiet(4)
	for _, name := range []string{"u00-16k.wav", "u02-16k.wav"} {
		a, err := media.ReadWAVFile("../asr/testdata/parity/" + name)
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, a.Samples...)
		quiet(6)
	}
	run := func(skip bool) []map[string]any {
		if err := asr.InitRuntime("", "cpu"); err != nil {
			t.Fatal(err)
		}
		info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: asrtest.ModelDir(t)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := asr.NewBatcher(info, asr.BatcherOptions{Endpoint: asr.DefaultEndpointConfig(), SkipSilence: skip})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		evs := sayOnCall(t, b, CallsOptions{Keywords: []asr.Phrase{{Text: "help you today"}}}, "", x)
		st := b.Stats()
		t.Logf("skip %v: %d chunks encoded, %d skipped", skip, st.Chunks, st.Skipped)
		if skip && st.Skipped < st.Chunks {
			t.Errorf("%d chunks skipped, %d encoded, in a call silent two thirds of the time", st.Skipped, st.Chunks)
		}
		return evs
	}
	off, on := run(false), run(true)
	type word struct {
		Word    string `json:"word"`
		StartMs int64  `json:"start_ms"`
	}
	words := func(evs []map[string]any) (ws []word, alerts int) {
		for _, e := range evs {
			switch e["type"] {
			case "final":
				var w []word
				if err := json.Unmarshal([]byte(e["words"].(string)), &w); err != nil {
					t.Fatal(err)
				}
				ws = append(ws, w...)
			case "keyword":
				alerts++
			}
		}
		return ws, alerts
	}
	a, alertsOff := words(off)
	b, alertsOn := words(on)
	t.Logf("finals without skipping %q, with %q", finalTexts(off), finalTexts(on))
	// Each word without skipping against the same word nearest in time
	// with: most are found, none moved by more than a few encoder frames.
	found := 0
	for _, w := range a {
		best := int64(1000)
		for _, v := range b {
			if d := v.StartMs - w.StartMs; v.Word == w.Word && max(d, -d) < max(best, -best) {
				best = d
			}
		}
		switch {
		case best == 1000:
			t.Logf("%q at %d ms without skipping: not found with", w.Word, w.StartMs)
		case best > 200 || best < -200:
			t.Errorf("%q at %d ms without skipping, %d ms off with", w.Word, w.StartMs, best)
		default:
			found++
		}
	}
	if len(a) < 15 || found < len(a)*6/10 {
		t.Errorf("%d of %d words found again with skipping", found, len(a))
	}
	// Where the texts differ, skipping is no less accurate.
	const ref = "thank you for calling customer support how can I help you today my account number is four five six seven eight nine"
	eOff, n := asr.WordErrors(asr.ScoringText(ref), asr.ScoringText(strings.Join(finalTexts(off), " ")))
	eOn, _ := asr.WordErrors(asr.ScoringText(ref), asr.ScoringText(strings.Join(finalTexts(on), " ")))
	t.Logf("%d errors in %d words without skipping, %d with", eOff, n, eOn)
	if eOn > eOff+2 {
		t.Errorf("%d errors in %d words without skipping, %d with", eOff, n, eOn)
	}
	if alertsOff == 0 || alertsOn != alertsOff {
		t.Errorf("keyword alerts: %d without skipping, %d with", alertsOff, alertsOn)
	}
}
