package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/audiosocket/audiosockettest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// Asterisk's prompts said on the 8 kHz AudioSocket call, and what they
// say.
var audioSocketPrompts = []struct{ name, text string }{
	{"tt-weasels", "weasels have eaten our phone system"},
	{"vm-intro", "please leave your message after the tone when done hang up or press the pound key"},
	{"conf-onlyperson", "you are currently the only person in this conference"},
	{"queue-thankyou", "thank you for your patience"},
	{"all-circuits-busy-now", "all circuits are busy now"},
	{"vm-nobodyavail", "nobody is available to take your call at the moment"},
}

// writeWAV writes samples at rate to a WAV file in the test's directory,
// for `callscribe transcribe` to hear what a call said.
func writeWAV(t *testing.T, samples []float32, rate int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("said-%d.wav", rate))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := media.WriteWAV(f, media.Audio{SampleRate: rate, Samples: samples}); err != nil {
		t.Fatal(err)
	}
	return path
}

// audioSocketCall is one call the test places, as Asterisk would.
type audioSocketCall struct {
	name   string
	kind   byte
	rate   int
	said   []float32
	ref    string
	digits map[int]byte // frame index → digit sent before it
	end    string       // hangup, close (the channel hung up), vanish (silent, open)
	// pause and then: after said, nothing is sent for pause (a hold),
	// then then is said.
	pause  time.Duration
	then   []float32
	reason string // call.end's
	codec  string
}

// corpusCalls are more 8 kHz calls for a measurement: with
// CALLSCRIBE_PROMPT_REFS naming a file of NAME.wav<TAB>text lines (the
// Asterisk prompts' references, docs/performance.md), every prompt in it
// is said, in calls of about a minute, n of them at once. Without it,
// none.
func corpusCalls(t *testing.T) []*audioSocketCall {
	t.Helper()
	path := os.Getenv("CALLSCRIBE_PROMPT_REFS")
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls []*audioSocketCall
	var cur *audioSocketCall
	for _, line := range strings.Split(string(b), "\n") {
		name, text, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if cur == nil || len(cur.said) > 60*8000 {
			cur = &audioSocketCall{name: fmt.Sprintf("corpus %d", len(calls)+1), kind: audiosockettest.Slin, rate: 8000,
				end: "hangup", reason: "bye", codec: "slin"}
			calls = append(calls, cur)
		}
		cur.said = append(cur.said, prompts(t, strings.TrimSuffix(name, ".wav"), 700*time.Millisecond)...)
		cur.ref += " " + text
	}
	return calls
}

// Calls from Asterisk's AudioSocket(), as our spec-written client places
// them, through a gateway process (real model, real redis-server), at the
// pace of a call: 8 kHz slin (kind 0x10) with two digits and a hangup
// message; 16 kHz (kind 0x12) ended by closing the socket, as Asterisk
// does when the channel hangs up; one that stops sending for 3 s (a hold),
// whose words after it keep their times on the call's clock; and a peer
// that goes silent with its connection open, ended by idle_timeout. Each call's events are on Redis
// from call.start (source audiosocket, one leg caller, its codec) to
// call.end (bye, bye, bye, timeout); the digits arrive; the finals' word error
// rate, over all the calls' words, is within 5 points of `callscribe
// transcribe` on the same audio (measured on the Asterisk prompts: the
// same, docs/interop.md), each call's within 10.
func TestAudioSocketThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	as := freePort(t, "tcp")
	g := startGateway(t, rd.Addr, "-config", configFile(t, fmt.Sprintf(
		"audiosocket:\n  enabled: true\n  listen: %q\n  allow_cidrs: [127.0.0.0/8]\n  idle_timeout: 4s\n", as)))
	g.waitReady(t, 200)

	var parts []any
	var refs []string
	for _, p := range audioSocketPrompts {
		parts = append(parts, p.name, 700*time.Millisecond)
		refs = append(refs, p.text)
	}
	wide := testWAV(t, "0.wav")
	calls := []*audioSocketCall{
		{name: "8 kHz", kind: audiosockettest.Slin, rate: 8000, said: prompts(t, parts...), ref: strings.Join(refs, " "),
			digits: map[int]byte{100: '4', 101: '2'}, end: "hangup", reason: "bye", codec: "slin"},
		{name: "16 kHz", kind: audiosockettest.Slin16, rate: 16000, said: wide.Samples,
			ref: referenceText(t, testModelDir(t), "0.wav"), end: "close", reason: "bye", codec: "slin16"},
		{name: "held", kind: audiosockettest.Slin, rate: 8000, said: prompts(t, "conf-onlyperson", 300*time.Millisecond),
			pause: 3 * time.Second, then: prompts(t, "all-circuits-busy-now", 300*time.Millisecond),
			ref: "you are currently the only person in this conference all circuits are busy now", end: "hangup", reason: "bye", codec: "slin"},
		{name: "vanishing", kind: audiosockettest.Slin, rate: 8000, said: prompts(t, "conf-onlyperson", 300*time.Millisecond),
			ref: "you are currently the only person in this conference", end: "vanish", reason: "timeout", codec: "slin"},
	}
	calls = append(calls, corpusCalls(t)...)
	ids := make([]string, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		cl, err := audiosockettest.Dial(as)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		ids[i] = cl.CallID()
		wg.Go(func() {
			if err := cl.Hello(); err != nil {
				t.Errorf("%s: %v", c.name, err)
				return
			}
			err := cl.Stream(c.kind, audiosockettest.PCM(c.said), audiosockettest.FrameBytes(c.rate), true, func(i int) error {
				if d, ok := c.digits[i]; ok {
					return cl.Digit(d)
				}
				return nil
			})
			if err == nil && c.then != nil {
				time.Sleep(c.pause)
				err = cl.Stream(c.kind, audiosockettest.PCM(c.then), audiosockettest.FrameBytes(c.rate), true, nil)
			}
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			switch c.end {
			case "hangup":
				cl.Hangup()
			case "close":
				cl.Close()
			case "vanish": // the gateway ends it and says why
				if k, p, err := cl.Read(10 * time.Second); err != nil || k != audiosockettest.Error || string(p) != "idle" {
					t.Errorf("%s: got %#x %q (%v), want an error message idle", c.name, k, p, err)
				}
			}
		})
	}
	wg.Wait()
	var errs, fileErrs, words int
	for i, c := range calls {
		var evs []map[string]any
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
			evs = callEvents(t, rd.Addr)["stt:call:{"+ids[i]+"}"]
			if len(evs) > 0 && evs[len(evs)-1]["type"] == "call.end" {
				break
			}
		}
		if len(evs) == 0 || evs[len(evs)-1]["type"] != "call.end" {
			t.Fatalf("%s: no call.end on Redis: %v", c.name, evs)
		}
		if s := evs[0]; s["type"] != "call.start" || s["source"] != "audiosocket" || s["legs"] != "caller" {
			t.Errorf("%s: call.start %v", c.name, s)
		}
		said := c.said
		if c.then != nil { // what was said, the pause as silence
			said = slices.Concat(c.said, make([]float32, c.pause.Milliseconds()*int64(c.rate)/1000), c.then)
			checkHeldWords(t, evs, len(c.said)*1000/c.rate, c.pause)
		}
		fileText := transcribeText(t, writeWAV(t, said, c.rate))
		finals, digits := checkCall(t, evs, c.codec, c.reason, c.ref, wer(c.ref, fileText))
		if want := string([]byte{c.digits[100], c.digits[101]}); len(c.digits) > 0 && digits != want {
			t.Errorf("%s: digits %q, want %q", c.name, digits, want)
		}
		e, n := asr.WordErrors(c.ref, finals)
		fe, _ := asr.WordErrors(c.ref, fileText)
		errs, fileErrs, words = errs+e, fileErrs+fe, words+n
		t.Logf("%s: %d errors in %d words through AudioSocket, %d by callscribe transcribe on the same audio", c.name, e, n, fe)
	}
	got, file := float64(errs)/float64(words), float64(fileErrs)/float64(words)
	t.Logf("all calls: WER %.3f through AudioSocket, %.3f by callscribe transcribe on the same audio (%d words)", got, file, words)
	if got > file+0.05 {
		t.Errorf("WER %.3f through AudioSocket, %.3f by transcribe on the same audio", got, file)
	}
	m := metricsText(t, g.http)
	if l, want := metric(m, `callscribe_calls_started_total{source="audiosocket"}`), fmt.Sprintf(`callscribe_calls_started_total{source="audiosocket"} %d`, len(calls)); l != want {
		t.Errorf("%s, want %s", l, want)
	}
}

// checkHeldWords checks that the words said after a pause in sending
// have their times on the call's clock: their final starts after the
// audio before the pause and the pause (within the 1 s a pause may go
// unnoticed), not right after the audio before it.
func checkHeldWords(t *testing.T, evs []map[string]any, beforeMs int, pause time.Duration) {
	t.Helper()
	for _, e := range evs {
		if e["type"] != "final" || !strings.Contains(fmt.Sprint(e["text"]), "CIRCUITS") {
			continue
		}
		var start int
		fmt.Sscan(fmt.Sprint(e["start_ms"]), &start)
		if lo, hi := beforeMs+int(pause.Milliseconds())-1000, beforeMs+int(pause.Milliseconds())+1500; start < lo || start > hi {
			t.Errorf("the words after a %v pause start at %d ms, want %d-%d", pause, start, lo, hi)
		}
		return
	}
	t.Errorf("no final with the words after the pause: %v", evs)
}

// transcribeText is what `callscribe transcribe` hears in a WAV.
func transcribeText(t *testing.T, wav string) string {
	t.Helper()
	var out, errb strings.Builder
	if code := run([]string{"transcribe", "-model", testModelDir(t), wav}, &out, &errb); code != 0 {
		t.Fatalf("transcribe: %s", errb.String())
	}
	_, text, _ := strings.Cut(strings.TrimSpace(out.String()), "\t")
	return text
}
