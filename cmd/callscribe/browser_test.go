package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// wer is the word error rate of hyp against ref.
func wer(ref, hyp string) float64 {
	e, n := asr.WordErrors(ref, hyp)
	return float64(e) / float64(max(n, 1))
}

// chromium finds the browser scripts/setup installs.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run scripts/setup (it installs Debian's chromium)")
	return ""
}

// The page at / in headless Chromium, its microphone a WAV file of speech:
// it starts by itself (?autostart=1), sends the audio over WHIP, and shows
// the transcript it follows over SSE (partials changing as the words come,
// then the final); Stop hangs up. The finals on Redis are within a word
// error rate of 20% of the recording's reference text (the file itself
// gives 1 error in 18 words; Chrome's audio processing and Opus add 0-1),
// and the page shows exactly those finals. Then the page follows a
// recorded two-party call (SIPREC) and labels each final with its speaker.
func TestBrowserPageTranscribesMicrophone(t *testing.T) {
	browser := chromium(t)
	rd := transcripttest.Start(t)
	config := configFile(t, "webrtc:\n  token: page-secret\nsip:\n  agent_aors: ['*@agents.example.com']\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)

	// The fake microphone plays the file once (%noloop): speech, then 3 s
	// of silence so that the endpoint closes the utterance.
	dir := testModelDir(t)
	a := testWAV(t, "0.wav")
	ref := referenceText(t, dir, "0.wav")
	a.Samples = append(a.Samples, make([]float32, 3*a.SampleRate)...)
	var buf bytes.Buffer
	if err := media.WriteWAV(&buf, a); err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(t.TempDir(), "speech.wav")
	os.WriteFile(wav, buf.Bytes(), 0o644)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav+"%noloop"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 120*time.Second)
	defer cancel()

	type pageState struct {
		State, Ended, Error, Partial, Call string
		Finals                             []string
	}
	read := func() pageState {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`({
			State: document.body.dataset.state || "", Ended: document.body.dataset.ended || "",
			Error: document.getElementById("error").textContent, Partial: [...document.querySelectorAll("#partials .text")].map(p => p.textContent).join(""),
			Call: document.getElementById("call").textContent,
			Finals: [...document.querySelectorAll("#finals .final .text")].map(p => p.textContent)})`))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return s
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+g.http+"/?autostart=1&token=page-secret")); err != nil {
		t.Fatal(err)
	}
	// Speech plays in real time; wait for a final on the page and for the
	// recording's silence to have passed.
	var s pageState
	var partials []string // as the page showed them while the words came
	start := time.Now()
	for s = read(); len(s.Finals) == 0 || time.Since(start) < time.Duration(len(a.Samples))*time.Second/time.Duration(a.SampleRate); s = read() {
		if s.Error != "" || time.Since(start) > 40*time.Second {
			t.Fatalf("page: %+v", s)
		}
		if s.Partial != "" && (len(partials) == 0 || partials[len(partials)-1] != s.Partial) {
			partials = append(partials, s.Partial)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(partials) < 3 {
		t.Errorf("the page showed %d partials as the words came: %q", len(partials), partials)
	}
	t.Logf("page before stop: %+v", s)
	if err := chromedp.Do(ctx, chromedp.Click("#toggle")); err != nil {
		t.Fatal(err)
	}
	for s = read(); s.Ended == ""; s = read() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no call.end on the page: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.Ended != "bye" || s.Error != "" || s.Partial != "" {
		t.Errorf("page after stop: %+v", s)
	}
	// The call on Redis: a webrtc call with a browser leg.
	events := callEvents(t, rd.Addr)
	if len(events) != 1 {
		t.Fatalf("%d calls on Redis", len(events))
	}
	var finals []string
	for _, evs := range events {
		if evs[0]["type"] != "call.start" || evs[0]["source"] != "webrtc" || evs[0]["codec"] != "opus" ||
			!strings.Contains(s.Call, evs[0]["call_id"].(string)) {
			t.Errorf("call.start %v, page shows %q", evs[0], s.Call)
		}
		for _, e := range evs {
			if e["type"] == "final" && e["text"] != "" {
				if e["leg"] != "browser" {
					t.Errorf("final on leg %v", e["leg"])
				}
				finals = append(finals, e["text"].(string))
			}
		}
	}
	got := strings.Join(finals, " ")
	w := wer(ref, got)
	t.Logf("finals on Redis: %q (WER %.3f against %q)", got, w, ref)
	if w > 0.2 {
		t.Errorf("WER %.3f > 0.2: %q, reference %q", w, got, ref)
	}
	if shown := strings.Join(s.Finals, " "); shown != got {
		t.Errorf("the page shows %q, Redis has %q", shown, got)
	}
	m := metricsText(t, g.http)
	t.Logf("gateway: %s, %s, %s", metric(m, `callscribe_result_latency_seconds_sum{type="final"}`),
		metric(m, `callscribe_result_latency_seconds_count{type="final"}`), metric(m, "process_cpu_seconds_total"))

	// /?call=ID follows a call without a microphone: this one, ended.
	callID := strings.TrimPrefix(s.Call, "call ")
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+g.http+"/?token=page-secret&call="+callID)); err != nil {
		t.Fatal(err)
	}
	for s = read(); s.Ended == ""; s = read() {
		if time.Since(start) > 70*time.Second {
			t.Fatalf("following the ended call: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if shown := strings.Join(s.Finals, " "); shown != got || s.Ended != "bye" {
		t.Errorf("following the call: %+v", s)
	}

	// A recorded contact-center call (SIPREC, two parties) followed on the
	// page: each final carries its speaker.
	customer := testWAV(t, "8k.wav")
	agent8k, _ := media.Resample(a.Samples[:len(a.Samples)-3*a.SampleRate], a.SampleRate, 8000)
	talked, err := siptest.NewPhone(t).Record(g.sip, siptest.RecordingMetadata("sip:+15551234@trunk.example.com", "sip:agent7@agents.example.com"),
		siptest.PCMU(customer.Samples), siptest.PCMU(agent8k))
	if err != nil || talked.Code != 200 {
		t.Fatalf("recording session: %d %v", talked.Code, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+g.http+"/?token=page-secret&call="+url.QueryEscape(talked.CallID))); err != nil {
		t.Fatal(err)
	}
	for s = read(); s.Ended == ""; s = read() {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("following the recorded call: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	whoSaid, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(["customer", "agent"].map(leg =>
		[leg, [...document.querySelectorAll("#finals .final")].filter(p => p.querySelector(".who").textContent === leg)
			.map(p => p.querySelector(".text").textContent).join(" ")]))`))
	if err != nil {
		t.Fatal(err)
	}
	var byLeg = map[string][]string{}
	for _, e := range callEvents(t, rd.Addr)["stt:call:{"+talked.CallID+"}"] {
		if e["type"] == "final" && e["text"] != "" {
			byLeg[e["leg"].(string)] = append(byLeg[e["leg"].(string)], e["text"].(string))
		}
	}
	for _, leg := range []string{"customer", "agent"} {
		if got := strings.Join(byLeg[leg], " "); got == "" || whoSaid[leg] != got {
			t.Errorf("%s: the page shows %q, Redis has %q", leg, whoSaid[leg], got)
		}
	}

	// A refused call is shown to the person: here a wrong token (401).
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+g.http+"/?autostart=1&token=wrong")); err != nil {
		t.Fatal(err)
	}
	for s = read(); s.Error == ""; s = read() {
		if time.Since(start) > 110*time.Second {
			t.Fatalf("no error shown: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(s.Error, "refused the call (401)") || s.State != "idle" || len(s.Finals) != 0 {
		t.Errorf("page after a refused call: %+v", s)
	}
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// metric is the line of the named series in a /metrics text.
func metric(text, name string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return name + " missing"
}

// referenceText is the reference transcript of a test WAV (trans.txt).
func referenceText(t *testing.T, dir, wav string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "test_wavs", "trans.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, text, ok := strings.Cut(line, " "); ok && name == wav {
			return strings.TrimSpace(text)
		}
	}
	t.Fatalf("no reference text for %s", wav)
	return ""
}
