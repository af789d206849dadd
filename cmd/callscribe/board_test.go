package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callscribe/callscribe/internal/sipptest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

var boardScreenshot = flag.String("board-screenshot", "", "write a screenshot of the board with its calls live to this PNG file")

// The live-calls board in headless Chromium, with its own token (the page
// asks for it): 20 calls placed at once by sipp and a WHIP session from a
// second tab all appear on the board within a second of their call.start
// (the moment on Redis against the moment each row was drawn); a click
// follows a SIP call, whose partials show as it speaks and whose finals,
// once it ended, are the ones on Redis; every call leaves the board when
// it ends.
func TestBoardInChromium(t *testing.T) {
	browser := chromium(t)
	rd := transcripttest.Start(t)
	config := configFile(t, "http:\n  board_token: board-secret\nasr:\n  keywords: [\"these thoughts\"]\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)

	model := testModelDir(t)
	wav := filepath.Join(model, "test_wavs", "8k.wav")
	dir := sippDir(t, wav)
	// The browser's microphone: speech, looped while the tab lives.
	a := testWAV(t, "0.wav")
	var buf bytes.Buffer
	if err := media.WriteWAV(&buf, a); err != nil {
		t.Fatal(err)
	}
	mic := filepath.Join(t.TempDir(), "mic.wav")
	os.WriteFile(mic, buf.Bytes(), 0o644)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1600, 1000),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", mic),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 150*time.Second)
	defer cancel()

	type row struct {
		ID, State, Source, Last string
		Shown, Sent             int64
	}
	type board struct {
		Status, Error, Followed, FollowState, Partial, LoginWhy string
		Alerts, Hits                                            int
		Rows                                                    []row
		Finals                                                  []string
	}
	read := func() board {
		b, err := chromedp.Run(ctx, chromedp.Evaluate[board](`({
			Status: document.body.dataset.status || "", Error: document.getElementById("error").textContent,
			LoginWhy: document.getElementById("login-why").textContent,
			Followed: document.getElementById("follow").hidden ? "" : (document.getElementById("follow").dataset.id || ""),
			FollowState: document.getElementById("f-state").textContent,
			Partial: [...document.querySelectorAll("#legs .partial .text")].map(p => p.textContent).join(" "),
			Rows: [...document.querySelectorAll("#calls tr[data-id]")].map(tr => ({ID: tr.dataset.id, State: tr.dataset.state,
				Source: tr.querySelector(".source").textContent, Last: tr.querySelector(".last") ? tr.querySelector(".last").textContent : "",
				Shown: Number(tr.dataset.shown), Sent: Number(tr.dataset.sent)})),
			Alerts: document.querySelectorAll("#f-alerts li").length, Hits: document.querySelectorAll("#legs .final.hit mark").length,
			Finals: [...document.querySelectorAll("#legs .final .text")].map(p => p.textContent)})`))
		if err != nil {
			t.Fatalf("reading the board: %v", err)
		}
		return b
	}
	waitFor := func(what string, within time.Duration, ok func(board) bool) board {
		t.Helper()
		start := time.Now()
		for {
			b := read()
			if ok(b) {
				return b
			}
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v: %+v", what, within, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The page asks for the token; a wrong one is refused.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+g.http+"/calls")); err != nil {
		t.Fatal(err)
	}
	login := func(token string) {
		if err := chromedp.Do(ctx, chromedp.WaitVisible("#token"), chromedp.SendKeys("#token", token+"\r")); err != nil {
			t.Fatal(err)
		}
	}
	login("wrong")
	waitFor("the wrong token refused", 5*time.Second, func(b board) bool { return b.Status == "signed out" && b.LoginWhy != "" })
	login("board-secret")
	waitFor("the board open", 5*time.Second, func(b board) bool { return b.Status == "connected" })

	// 20 calls at once, and a browser's WHIP session in a second tab.
	sippDone := make(chan error, 1)
	go func() {
		sf, _ := filepath.Abs(filepath.Join("testdata", "sipp", "board_call.xml"))
		out, err := sipptest.Sipp(t, dir, "-sf", sf, "-s", "board", "-m", "20", "-l", "20", "-r", "20", "-nostdin",
			"-timeout", "90s", "-timeout_error", g.sip)
		if err != nil {
			t.Logf("sipp: %s", tail(out, 800))
		}
		sippDone <- err
	}()
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate("http://"+g.http+"/?autostart=1")); err != nil {
		t.Fatal(err)
	}
	b := waitFor("21 live calls on the board", 30*time.Second, func(b board) bool {
		n := 0
		for _, r := range b.Rows {
			if r.State == "live" {
				n++
			}
		}
		return n == 21
	})
	starts := map[string]int64{}
	for _, evs := range callEvents(t, rd.Addr) {
		if evs[0]["type"] == "call.start" {
			ts, _ := strconv.ParseInt(evs[0]["ts"].(string), 10, 64)
			starts[evs[0]["call_id"].(string)] = ts
		}
	}
	sources := map[string]int{}
	var sipID string
	worst := int64(0)
	for _, r := range b.Rows {
		sources[r.Source]++
		ts, ok := starts[r.ID]
		if !ok {
			t.Errorf("row %s: no call.start on Redis", r.ID)
			continue
		}
		worst = max(worst, r.Shown-ts)
		// Within a second on a machine to itself (75 ms measured); the bound
		// leaves room for make test's other packages sharing the cores.
		if r.Shown-ts > 3000 {
			t.Errorf("call %s shown %d ms after its call.start (sent by the gateway after %d ms)", r.ID, r.Shown-ts, r.Sent-ts)
		}
		if r.Source == "sip" && sipID == "" {
			sipID = r.ID
		}
	}
	t.Logf("21 calls on the board; the latest shown %d ms after its call.start", worst)
	if sources["sip"] != 20 || sources["webrtc"] != 1 {
		t.Errorf("sources on the board: %v", sources)
	}

	// Follow a SIP call: its words come as it speaks.
	if err := chromedp.Do(ctx, chromedp.Click(`#calls tr[data-id="`+sipID+`"]`)); err != nil {
		t.Fatal(err)
	}
	var partials []string
	start := time.Now()
	for b = read(); b.Followed != sipID || len(b.Finals) == 0 || len(partials) < 3 || b.Alerts == 0; b = read() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("following %s: partials %q, board %+v", sipID, partials, b)
		}
		if b.Partial != "" && (len(partials) == 0 || partials[len(partials)-1] != b.Partial) {
			partials = append(partials, b.Partial)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("following %s: partials %q, first final %q", sipID, partials, b.Finals[0])
	if b.Hits == 0 {
		t.Errorf("the keyword is not marked in the followed call's final: %+v", b)
	}
	if *boardScreenshot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*boardScreenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The SIP calls end (BYE), then the browser's: each leaves the board.
	if err := <-sippDone; err != nil {
		t.Fatalf("sipp: %v", err)
	}
	b = waitFor("the SIP calls leaving", 30*time.Second, func(b board) bool { return len(b.Rows) == 1 && b.Rows[0].Source == "webrtc" })
	b = waitFor("the followed call ended", 10*time.Second, func(b board) bool { return b.FollowState == "ended (bye)" })
	var onRedis []string
	for _, e := range callEvents(t, rd.Addr)["stt:call:{"+sipID+"}"] {
		if e["type"] == "final" && e["text"] != "" {
			if d, ok := e["display"].(string); ok {
				onRedis = append(onRedis, d)
			} else {
				onRedis = append(onRedis, e["text"].(string))
			}
		}
	}
	if got, want := strings.Join(b.Finals, " "), strings.Join(onRedis, " "); got != want || got == "" {
		t.Errorf("the followed call's finals: the board shows %q, Redis has %q", got, want)
	}
	if err := chromedp.Do(tab, chromedp.Click("#toggle")); err != nil {
		t.Fatal(err)
	}
	waitFor("the browser's call leaving", 30*time.Second, func(b board) bool { return len(b.Rows) == 0 })
	if b := read(); b.Error != "" || b.Status != "connected" {
		t.Errorf("board at the end: %+v", b)
	}
}
