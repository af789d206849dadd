package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// speak says text with espeak-ng and returns it as 8 kHz samples.
func speak(t *testing.T, voice, rate, gap, text string) []float32 {
	t.Helper()
	dir := t.TempDir()
	raw, wav := filepath.Join(dir, "raw.wav"), filepath.Join(dir, "8k.wav")
	if out, err := exec.Command("espeak-ng", "-v", voice, "-s", rate, "-g", gap, "-w", raw, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v %s", err, out)
	}
	if out, err := exec.Command("sox", "-q", raw, "-r", "8000", "-b", "16", "-c", "1", wav, "pad", "0.3", "0.5").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	a, err := media.ReadWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	return a.Samples
}

// A spoken digit, as the recognizer writes it, or a number in figures.
var digitLike = regexp.MustCompile(`\b(ZERO|OH|ONE|TWO|THREE|FOUR|FIVE|SIX|SEVEN|EIGHT|NINE|TWELVE|TWENTY|one|two|three|four|five|six|seven|eight|nine)\b|[0-9]{2,}`)

// Redaction through the gateway process: a call (header X-Callscribe-Redact:
// pci,ssn) says a valid card number, its expiry, its security code and an
// SSN (espeak-ng); nothing of them is on Redis — every field of every event
// is scanned — nor in the spool file or the log, and the markers are there.
// A call with pci only that says a price and an extension keeps them.
func TestRedactionThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	spool := filepath.Join(t.TempDir(), "spool.jsonl")
	config := configFile(t, "redis:\n  spool_file: "+spool+"\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	secret := speak(t, "en-us+m3", "140", "5", "my card number is four five three nine, one four eight eight, zero three four three, six four six seven. "+
		"it expires twelve twenty six, and the security code is seven one four. "+
		"my social security number is five two one, four four, eight three six two.")
	plain := speak(t, "en-us+m3", "140", "5", "the price is twenty nine dollars. my extension is two oh five. thank you.")
	ph := siptest.NewPhone(t)
	ph.PT = 0
	if code := ph.Talk(t, g.sip, siptest.PCMU(secret), sipmsg.NewHeader("X-Callscribe-Redact", "pci, ssn"),
		sipmsg.NewHeader("X-Call-Ref", "secret")); code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	if code := ph.Talk(t, g.sip, siptest.PCMU(plain), sipmsg.NewHeader("X-Callscribe-Redact", "pci"),
		sipmsg.NewHeader("X-Call-Ref", "plain")); code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	calls := map[string][]map[string]any{}
	for _, ref := range []string{"secret", "plain"} {
		calls[ref] = endedCall(t, rd.Addr, 20*time.Second, ref, func(start map[string]any) bool { return start["hdr:X-Call-Ref"] == ref })
	}
	var finals, kinds []string
	for _, e := range calls["secret"] {
		for k, v := range e {
			switch k {
			case "ts", "seq", "start_ms", "end_ms", "duration_ms", "utt", "conf", "v", "stats", "call_id", "sip_call_id", "from", "to",
				"hdr:X-Call-Ref", "hdr:X-Callscribe-Redact":
				continue // numbers of the protocol, not of the caller
			}
			text := fmt.Sprint(v)
			if k == "words" || k == "display_words" { // the words, not their times
				var ws []struct {
					Word string `json:"word"`
				}
				if err := json.Unmarshal([]byte(text), &ws); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				text = ""
				for _, w := range ws {
					text += w.Word + " "
				}
			}
			if m := digitLike.FindString(text); m != "" {
				t.Errorf("%s event, field %s: %q holds %q", e["type"], k, v, m)
			}
		}
		if e["type"] == "final" {
			finals = append(finals, fmt.Sprint(e["display"]))
			kinds = append(kinds, fmt.Sprint(e["redacted"]))
		}
	}
	all := strings.Join(finals, " ")
	t.Logf("secret call, display: %q (redacted %v)", all, kinds)
	if !strings.Contains(all, "[CARD]") || !strings.Contains(all, "[SSN]") {
		t.Errorf("markers missing: %q", all)
	}
	if b, err := os.ReadFile(spool); err == nil && digitLike.Match(b) {
		t.Errorf("the spool file holds digits: %s", b)
	}
	if m := regexp.MustCompile(`\b(FOUR|FIVE|THREE|NINE|SIX|SEVEN) (FOUR|FIVE|THREE|NINE|SIX|SEVEN|EIGHT|ONE|TWO)\b`).FindString(g.out.String()); m != "" {
		t.Errorf("the log holds %q", m)
	}
	// What the plain call said stays as recognized (the recognizer's own
	// rendering of espeak-ng's digits varies; the unit tests hold the
	// false-positive cases word for word).
	var plainText []string
	for _, e := range calls["plain"] {
		if e["type"] == "final" {
			plainText = append(plainText, fmt.Sprint(e["text"]))
			if _, ok := e["redacted"]; ok {
				t.Errorf("plain call redacted: %v", e)
			}
		}
	}
	pt := strings.Join(plainText, " ")
	t.Logf("plain call: %q", pt)
	if strings.Contains(pt, "[") || !strings.Contains(pt, "EXTENSION") {
		t.Errorf("a price and an extension in pci mode: %q", pt)
	}
}

// Pause and resume over HTTP (the WHIP token): between them the call's
// audio is not recognized; pause and resume events mark the span; an
// unknown call is 404, a wrong token 401.
func TestPauseResumeOverHTTP(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "webrtc:\n  token: s3cret\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	a := testWAV(t, "1.wav") // 16.7 s of speech
	x, err := media.ResampleFilter(a.Samples, a.SampleRate, 8000, media.FilterSharp)
	if err != nil {
		t.Fatal(err)
	}
	talked := make(chan int, 1)
	go func() {
		ph := siptest.NewPhone(t)
		ph.PT = 0
		talked <- ph.Talk(t, g.sip, siptest.PCMU(x))
	}()
	var id string
	for start := time.Now(); id == "" && time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		for _, evs := range callEvents(t, rd.Addr) {
			id = fmt.Sprint(evs[0]["call_id"])
		}
	}
	post := func(path, token string) int {
		code, _ := g.request(t, "POST", path, token)
		return code
	}
	time.Sleep(3 * time.Second)
	if code := post("/calls/"+id+"/pause", "wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code := post("/calls/nosuchcall/pause", "s3cret"); code != 404 {
		t.Errorf("unknown call: %d", code)
	}
	if code := post("/calls/"+id+"/pause", "s3cret"); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	time.Sleep(5 * time.Second)
	if code := post("/calls/"+id+"/resume", "s3cret"); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	if code := <-talked; code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	evs := onlyCall(t, rd.Addr)
	var pauseAt, resumeAt int
	var order []string
	var words []struct {
		Word    string `json:"word"`
		StartMs int    `json:"start_ms"`
	}
	for _, e := range evs {
		switch e["type"] {
		case "pause":
			fmt.Sscan(fmt.Sprint(e["at_ms"]), &pauseAt)
			order = append(order, "pause")
		case "resume":
			fmt.Sscan(fmt.Sprint(e["at_ms"]), &resumeAt)
			order = append(order, "resume")
		case "final":
			var ws []struct {
				Word    string `json:"word"`
				StartMs int    `json:"start_ms"`
			}
			json.Unmarshal([]byte(fmt.Sprint(e["words"])), &ws)
			words = append(words, ws...)
		}
	}
	if strings.Join(order, ",") != "pause,resume" || resumeAt-pauseAt < 4000 {
		t.Fatalf("events %v, paused %d..%d ms", order, pauseAt, resumeAt)
	}
	before, after := 0, 0
	for _, w := range words {
		switch {
		case w.StartMs < pauseAt:
			before++
		case w.StartMs > resumeAt:
			after++
		case w.StartMs > pauseAt+500 && w.StartMs < resumeAt-500:
			t.Errorf("word %q at %d ms, while paused (%d..%d)", w.Word, w.StartMs, pauseAt, resumeAt)
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("%d words before the pause, %d after the resume", before, after)
	}
}

// prompts strings Asterisk's English prompts (a real voice, 8 kHz; package
// asterisk-core-sounds-en-wav) and pauses together: a string names a
// prompt, a duration is silence.
func prompts(t *testing.T, parts ...any) []float32 {
	t.Helper()
	var x []float32
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			a, err := media.ReadWAVFile(filepath.Join("/usr/share/asterisk/sounds/en_US_f_Allison", p+".wav"))
			if err != nil || a.SampleRate != 8000 {
				t.Fatalf("prompt %s (scripts/setup installs asterisk-core-sounds-en-wav): %v", p, err)
			}
			x = append(x, a.Samples...)
		case time.Duration:
			x = append(x, make([]float32, p.Milliseconds()*8)...)
		}
	}
	return x
}

// Through the gateway process, in real time: a caller reads a card number
// in four groups with 1.5 s pauses (each group its own utterance) and no
// digit of it is on Redis; each final's delay from its last word is
// logged, with how long redaction held it. A call that says no digits has
// every final published as it comes (held 0 s).
func TestCardInGroupsThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr, "-config", configFile(t, "redact: [pci]\n"))
	g.waitReady(t, 200)
	var cardCall []any
	for _, grp := range []string{"4539", "1488", "0343", "6467"} {
		for _, d := range grp {
			cardCall = append(cardCall, "digits/"+string(d))
		}
		cardCall = append(cardCall, 1500*time.Millisecond)
	}
	cardCall = append(cardCall, "auth-thankyou", time.Second)
	x := map[string][]float32{
		"card":  prompts(t, append([]any{"extension"}, cardCall...)...),
		"plain": prompts(t, "auth-thankyou", 1500*time.Millisecond, "extension", 1500*time.Millisecond, "auth-thankyou", time.Second),
	}
	for _, ref := range []string{"plain", "card"} {
		ph := siptest.NewPhone(t)
		ph.PT = 0
		if code := ph.Talk(t, g.sip, siptest.PCMU(x[ref]), sipmsg.NewHeader("X-Call-Ref", ref)); code != 200 {
			t.Fatalf("INVITE %d", code)
		}
		evs := endedCall(t, rd.Addr, 20*time.Second, ref, func(start map[string]any) bool { return start["hdr:X-Call-Ref"] == ref })
		var start int64
		var delays []string
		for _, e := range evs {
			var ts, end int64
			fmt.Sscan(fmt.Sprint(e["ts"]), &ts)
			fmt.Sscan(fmt.Sprint(e["end_ms"]), &end)
			switch e["type"] {
			case "call.start":
				start = ts
			case "final":
				delays = append(delays, fmt.Sprintf("%q %d ms", e["text"], ts-start-end))
				var words []struct{ Word string }
				jsonUnmarshal(fmt.Sprint(e["words"]), &words)
				said := fmt.Sprint(e["text"], " ", e["display"])
				for _, w := range words {
					said += " " + w.Word
				}
				if ref == "card" && digitLike.MatchString(said) {
					t.Errorf("digits in clear: %v", e)
				}
			}
		}
		t.Logf("%s call: finals published after their last word: %s", ref, strings.Join(delays, ", "))
		m := metricsText(t, g.http)
		held, zero := metric(m, "callscribe_redaction_hold_seconds_count"), metric(m, `callscribe_redaction_hold_seconds_bucket{le="0"}`)
		t.Logf("after the %s call: %s; %s", ref, held, zero)
		if ref == "plain" && (strings.Fields(held)[1] != strings.Fields(zero)[1] || strings.Fields(held)[1] == "0") {
			t.Errorf("a call without digits had finals held: %s; %s", held, zero)
		}
	}
}
