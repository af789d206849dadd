package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/twilio/twiliotest"
)

// at8k is a test recording at 8 kHz, and a WAV of it for `transcribe`:
// the audio a Twilio stream carries.
func at8k(t *testing.T, name string) ([]float32, string) {
	t.Helper()
	a := testWAV(t, name)
	x := a.Samples
	if a.SampleRate != 8000 {
		var err error
		if x, err = media.Resample(x, a.SampleRate, 8000); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := media.WriteWAV(f, media.Audio{SampleRate: 8000, Samples: x}); err != nil {
		t.Fatal(err)
	}
	return x, path
}

// onsetMs is where speech starts in x (8 kHz): the first 20 ms whose RMS
// is a tenth of the loudest's.
func onsetMs(x []float32) int64 {
	rms := func(i int) float64 {
		var e float64
		for _, v := range x[i:min(i+160, len(x))] {
			e += float64(v) * float64(v)
		}
		return math.Sqrt(e / 160)
	}
	var top float64
	for i := 0; i < len(x); i += 160 {
		top = max(top, rms(i))
	}
	for i := 0; i < len(x); i += 160 {
		if rms(i) > top/10 {
			return int64(i / 8)
		}
	}
	return 0
}

// legFinals are the finals of one leg, joined, and its words' times.
func legFinals(evs []map[string]any, leg string) (text string, firstStart int64) {
	var texts []string
	firstStart = -1
	for _, e := range evs {
		if e["type"] != "final" || e["leg"] != leg {
			continue
		}
		texts = append(texts, fmt.Sprint(e["text"]))
		var words []struct {
			StartMs int64 `json:"start_ms"`
		}
		json.Unmarshal([]byte(fmt.Sprint(e["words"])), &words)
		if len(words) > 0 && firstStart < 0 {
			firstStart = words[0].StartMs
		}
	}
	return strings.Join(texts, " "), firstStart
}

// Twilio Media Streams through the gateway process, in real time, from the
// spec's client: a call with both tracks (the outbound track's messages
// arriving 300 ms behind its audio, stamped all the same) and digits, and
// a call with one track. Each leg's finals land on Redis within the word
// error rate `callscribe transcribe` gets from the same 8 kHz audio (plus
// 10 points here; the figures are logged); the outbound leg's words are
// where its timestamps put them on the call's clock, not where its late
// messages would; call.start carries the stream's metadata. A stream
// without the signature is refused before the upgrade, and counted.
func TestTwilioStreamsThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGatewayEnv(t, []string{"CALLSCRIBE_TWILIO_AUTH_TOKEN=secret"}, rd.Addr,
		"-config", configFile(t, "twilio:\n  enabled: true\n"))
	g.waitReady(t, 200)
	url := "ws://" + g.http + "/twilio"

	in, inWAV := at8k(t, "8k.wav")
	out, outWAV := at8k(t, "1.wav")
	mono, monoWAV := at8k(t, "0.wav")
	model := testModelDir(t)
	refs := map[string]string{inWAV: referenceText(t, model, "8k.wav"), outWAV: referenceText(t, model, "1.wav"),
		monoWAV: referenceText(t, model, "0.wav")}
	const outAt = 6000 // ms: the outbound track speaks after the inbound

	if st, err := twiliotest.Dial(context.Background(), twiliotest.Call{URL: url, StreamSid: "MZnosig"}); twiliotest.StatusOf(err) != 403 {
		if st != nil {
			st.Vanish()
		}
		t.Fatalf("no signature: %v", err)
	}

	var wg sync.WaitGroup
	play := func(c twiliotest.Call, at map[string]int64, audio map[string][]float32, lag map[string]time.Duration, digits string) {
		defer wg.Done()
		st, err := twiliotest.Dial(context.Background(), c)
		if err != nil {
			t.Error(err)
			return
		}
		defer st.Vanish()
		ctx := context.Background()
		// Each track from its own ms, with 1.5 s of silence after it.
		tracks := map[string][]float32{}
		for name, x := range audio {
			tracks[name] = append(append(make([]float32, at[name]*8), x...), make([]float32, 12000)...)
		}
		if err := st.Play(ctx, 0, tracks, lag, true); err != nil {
			t.Error(err)
			return
		}
		for i := range digits {
			st.DTMF("inbound", digits[i])
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if code, err := st.Stop(ctx); err != nil || code != 1000 {
			t.Errorf("stop: %v %v", code, err)
		}
	}
	wg.Add(2)
	go play(twiliotest.Call{URL: url, AuthToken: "secret", StreamSid: "MZstereo", CallSid: "CAstereo", AccountSid: "AC1",
		Tracks: []string{"inbound", "outbound"}, Params: map[string]string{"agent": "7"}},
		map[string]int64{"outbound": outAt}, map[string][]float32{"inbound": in, "outbound": out},
		map[string]time.Duration{"outbound": 300 * time.Millisecond}, "12")
	go play(twiliotest.Call{URL: url, AuthToken: "secret", StreamSid: "MZmono", CallSid: "CAmono"},
		nil, map[string][]float32{"inbound": mono}, nil, "")
	wg.Wait()

	byStream := func(sid string) []map[string]any {
		return endedCall(t, rd.Addr, 60*time.Second, sid, func(start map[string]any) bool { return start["stream_sid"] == sid })
	}
	stereo, monoEvs := byStream("MZstereo"), byStream("MZmono")
	start := stereo[0]
	for k, v := range map[string]string{"source": "twilio", "legs": "inbound,outbound", "codec": "PCMU", "call_sid": "CAstereo",
		"account_sid": "AC1", "tracks": "inbound,outbound", "param:agent": "7"} {
		if fmt.Sprint(start[k]) != v {
			t.Errorf("call.start %s = %v, want %s", k, start[k], v)
		}
	}
	// Both legs' finals in one text: order, call.start and call.end are
	// checked here, each leg is scored below.
	_, digits := checkCall(t, stereo, "PCMU", "bye", refs[inWAV]+" "+refs[outWAV], 1)
	if digits != "12" {
		t.Errorf("digits %q", digits)
	}
	checkCall(t, monoEvs, "PCMU", "bye", refs[monoWAV], transcribeWER(t, monoWAV, refs[monoWAV]))
	for _, c := range []struct {
		evs      []map[string]any
		leg, wav string
		atMs     int64
	}{
		{stereo, "inbound", inWAV, 0}, {stereo, "outbound", outWAV, outAt}, {monoEvs, "inbound", monoWAV, 0},
	} {
		text, first := legFinals(c.evs, c.leg)
		ref := refs[c.wav]
		door, file := wer(ref, text), transcribeWER(t, c.wav, ref)
		t.Logf("%s %s: WER through the door %.3f, transcribe %.3f (%q)", filepath.Base(c.wav), c.leg, door, file, text)
		if door > file+0.10 {
			t.Errorf("%s: WER %.3f through the door, %.3f from the file", c.leg, door, file)
		}
		x, _ := at8k(t, map[string]string{inWAV: "8k.wav", outWAV: "1.wav", monoWAV: "0.wav"}[c.wav])
		want := c.atMs + onsetMs(x)
		if d := first - want; d < -300 || d > 600 {
			t.Errorf("%s: first word at %d ms, its speech at %d ms", c.leg, first, want)
		}
	}
	if m := metric(metricsText(t, g.http), `callscribe_calls_rejected_total{reason="forbidden",source="twilio"}`); !strings.HasSuffix(m, " 1") {
		t.Errorf("refusal not counted: %s", m)
	}
}
