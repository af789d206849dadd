package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

// Keyword alerts and hotwords through the gateway process (modified beam
// search): a SIP call says "my credit card was charged twice ..." with the
// call's own hotwords and keywords in headers; the keyword event arrives
// on Redis before call.end, once, with the times of the phrase's words.
// A call whose phrase list cannot be read is refused 400, saying why in
// the reason phrase.
func TestKeywordAlertsThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "asr:\n  decoding: modified_beam_search\n  keywords: [\"wonderful day\"]\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	a, err := media.ReadWAVFile("../../asr/testdata/parity/u13-8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	ph := siptest.NewPhone(t)
	ph.PT = 0
	if code := ph.Talk(t, g.sip, siptest.PCMU(a.Samples), sipmsg.NewHeader("X-Callscribe-Hotwords", "credit card:2"),
		sipmsg.NewHeader("X-Callscribe-Keywords", "credit card, charged twice")); code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	evs := onlyCall(t, rd.Addr)
	var hits []map[string]any
	var final string
	var words string
	for _, e := range evs {
		switch e["type"] {
		case "keyword":
			hits = append(hits, e)
		case "final":
			final += fmt.Sprint(e["text"]) + " "
			words = fmt.Sprint(e["words"])
			// The text for people: sentence case, the words' times kept.
			if d := fmt.Sprint(e["display"]); !strings.HasPrefix(d, "My credit card was charged") ||
				len(wordTimes(t, fmt.Sprint(e["display_words"]))) == 0 {
				t.Errorf("display %q, display_words %v", d, e["display_words"])
			}
		}
	}
	t.Logf("final %q; keyword events %v", final, hits)
	if !strings.Contains(final, "CREDIT CARD") {
		t.Fatalf("final %q lacks the hotword", final)
	}
	credit := 0
	for _, h := range hits {
		if h["phrase"] == "wonderful day" {
			t.Errorf("a phrase not said: %v", h)
		}
		if h["phrase"] != "credit card" {
			continue
		}
		credit++
		var start, end int
		fmt.Sscan(fmt.Sprint(h["start_ms"]), &start)
		fmt.Sscan(fmt.Sprint(h["end_ms"]), &end)
		// The final's words say where CREDIT starts and CARD ends.
		ws := wordTimes(t, words)
		if h["text"] != "CREDIT CARD" || h["leg"] != "caller" || abs(start-ws["CREDIT"][0]) > 100 || abs(end-ws["CARD"][1]) > 100 {
			t.Errorf("keyword %v; words %v", h, ws)
		}
	}
	if credit != 1 {
		t.Errorf("%d credit card events, want 1", credit)
	}

	// A WHIP offer with a list that cannot be read: 400 with the reason.
	wc := webrtctest.NewClient(t)
	res, err := http.Post("http://"+g.http+"/whip?hotwords="+url.QueryEscape("drop;table"), "application/sdp", strings.NewReader(wc.Offer(t)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "hotwords") {
		t.Errorf("WHIP with bad hotwords: %d %s", res.StatusCode, body)
	}

	// A SIP INVITE with a list that cannot be read: 400 with the reason.
	conn, err := net.Dial("udp", g.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
	msg := fmt.Sprintf("INVITE sip:gw@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-kw1\r\nMax-Forwards: 70\r\n"+
		"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:gw@%s>\r\nCall-ID: bad-hotwords\r\nCSeq: 1 INVITE\r\nContact: <sip:t@%s>\r\n"+
		"X-Callscribe-Hotwords: drop;table\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		g.sip, local, g.sip, local, len(sdp), sdp)
	conn.Write([]byte(msg))
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal("no answer to a bad hotwords list")
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if strings.HasPrefix(line, "SIP/2.0 1") {
			continue
		}
		if !strings.HasPrefix(line, "SIP/2.0 400 ") || !strings.Contains(line, "hotwords") {
			t.Errorf("answer %q", line)
		}
		break
	}
}

// wordTimes reads a final's words: word → [start, end] ms.
func wordTimes(t *testing.T, words string) map[string][2]int {
	t.Helper()
	var ws []struct {
		Word    string `json:"word"`
		StartMs int    `json:"start_ms"`
		EndMs   int    `json:"end_ms"`
	}
	if err := jsonUnmarshal(words, &ws); err != nil {
		t.Fatalf("words %q: %v", words, err)
	}
	out := map[string][2]int{}
	for _, w := range ws {
		out[w.Word] = [2]int{w.StartMs, w.EndMs}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// VAD endpointing through the gateway process (asr.endpoint.mode: vad): a
// call's speech is marked by speech.start and speech.end events on Redis,
// and its final carries the words the rules mode gives.
func TestVADEndpointingThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "asr:\n  endpoint:\n    mode: vad\n    vad_min_silence: 0.3\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	ph := siptest.NewPhone(t)
	ph.PT = 0
	if code := ph.Talk(t, g.sip, siptest.PCMU(a.Samples)); code != 200 {
		t.Fatalf("INVITE %d", code)
	}
	evs := onlyCall(t, rd.Addr)
	var order []string
	var finals []string
	for _, e := range evs {
		switch e["type"] {
		case "speech.start", "speech.end", "call.end":
			order = append(order, fmt.Sprint(e["type"]))
		case "final":
			order = append(order, "final")
			finals = append(finals, fmt.Sprint(e["text"]))
		}
	}
	got := strings.Join(order, " ")
	if !strings.HasPrefix(got, "speech.start") || !strings.Contains(got, "speech.end") || !strings.HasSuffix(got, "call.end") {
		t.Errorf("events %s", got)
	}
	if f := strings.Join(finals, " "); !strings.Contains(f, "APPREHENSION") {
		t.Errorf("finals %q", f)
	}
}

// onlyCall waits for the one call on Redis to end and returns its events.
func onlyCall(t *testing.T, redisAddr string) []map[string]any {
	t.Helper()
	return endedCall(t, redisAddr, 20*time.Second, "at all", func(map[string]any) bool { return true })
}
