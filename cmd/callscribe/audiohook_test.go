package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/audiohook"
	"github.com/callscribe/callscribe/audiohook/audiohooktest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

const (
	ahKey    = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
	ahSecret = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
)

// pcm8k reads one of the model's recordings at 8 kHz as 16-bit samples.
func pcm8k(t *testing.T, name string) []int16 {
	t.Helper()
	a := testWAV(t, name)
	x, err := media.Resample(a.Samples, a.SampleRate, 8000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(x)+8000) // and a second of silence
	for i, v := range x {
		out[i] = int16(max(min(v, 1), -1) * 32767)
	}
	return out
}

// AudioHook sessions through a real gateway (real redis-server, the real
// model), the key and secret from the environment: a stereo session whose
// customer and agent say a recording each and a mono one; each leg's finals
// land on Redis close to the reference, and the same texts come back to
// the client as transcript events before closed.
func TestAudioHookEndToEnd(t *testing.T) {
	rd := transcripttest.Start(t)
	cfg := configFile(t, "audiohook:\n  enabled: true\n")
	g := startGatewayEnv(t, []string{"CALLSCRIBE_AUDIOHOOK_API_KEY=" + ahKey, "CALLSCRIBE_AUDIOHOOK_CLIENT_SECRET=" + ahSecret},
		rd.Addr, "-config", cfg)
	g.waitReady(t, 200)
	ref := map[string]string{}
	for _, name := range []string{"0.wav", "8k.wav"} {
		ref[name] = referenceText(t, testModelDir(t), name)
	}
	cases := []struct {
		name   string
		media  audiohook.Media
		speech []string // per channel
	}{
		{"stereo", audiohook.Media{Type: "audio", Format: "PCMU", Channels: []string{"external", "internal"}, Rate: 8000}, []string{"8k.wav", "0.wav"}},
		{"mono", audiohook.Media{Type: "audio", Format: "L16", Channels: []string{"internal"}, Rate: 8000}, []string{"8k.wav"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := audiohooktest.Dial(context.Background(), audiohooktest.Options{URL: "ws://" + g.http + "/audiohook",
				APIKey: ahKey, Secret: ahSecret, Media: []audiohook.Media{tc.media}, CustomConfig: map[string]any{"queue": "support"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Hangup()
			if m, err := c.Open(); err != nil || m.Type != "opened" {
				t.Fatalf("open: %v %+v", err, m)
			}
			var chans [][]int16
			for _, s := range tc.speech {
				chans = append(chans, pcm8k(t, s))
			}
			n := 0
			for _, ch := range chans {
				n = max(n, len(ch))
			}
			for i := range chans {
				chans[i] = append(chans[i], make([]int16, n-len(chans[i]))...)
			}
			frames := audiohooktest.Frames(tc.media.Format, chans, 200)
			samples := make([]int, len(frames))
			for i := range samples {
				samples[i] = min(1600, n-1600*i)
			}
			if err := c.Stream(frames, samples, 200, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Close(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
			evs := waitCallEnd(t, rd.Addr, c.SessionID())
			start := evs[0]
			if start["source"] != "audiohook" || start["ani"] != "+15555551234" || start["custom_config"] != `{"queue":"support"}` ||
				start["conversation_id"] == "" || start["language"] != "en-US" {
				t.Fatalf("call.start: %v", start)
			}
			back := map[int][]string{}
			for _, tr := range c.Transcripts() {
				back[tr.ChannelID] = append(back[tr.ChannelID], tr.Alternatives[0].Interpretations[0].Transcript)
			}
			for i, ch := range tc.media.Channels {
				leg := audiohook.LegName(ch)
				var texts, displays []string
				for _, e := range evs {
					if e["type"] == "final" && e["leg"] == leg && e["text"] != "" {
						texts = append(texts, e["text"].(string))
						displays = append(displays, e["display"].(string))
					}
				}
				errs, words := asr.WordErrors(ref[tc.speech[i]], strings.Join(texts, " "))
				t.Logf("%s %s: WER %.1f%% (%d/%d): %s", tc.name, leg, 100*float64(errs)/float64(words), errs, words, strings.Join(texts, " "))
				if errs*100 > words*35 { // callscribe transcribe of the same 8 kHz audio: 27% on 8k.wav, 6% on 0.wav
					t.Errorf("%s: %q, reference %q", leg, texts, ref[tc.speech[i]])
				}
				if strings.Join(back[i], "|") != strings.Join(displays, "|") {
					t.Errorf("%s: sent back %q, on Redis %q", leg, back[i], displays)
				}
			}
		})
	}
}

// waitCallEnd waits for a call's call.end on Redis and returns its events.
func waitCallEnd(t *testing.T, redisAddr, callID string) []map[string]any {
	t.Helper()
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		evs := callEvents(t, redisAddr)["stt:call:{"+callID+"}"]
		if len(evs) > 0 && evs[len(evs)-1]["type"] == "call.end" {
			return evs
		}
	}
	t.Fatalf("no call.end for %s", callID)
	return nil
}
