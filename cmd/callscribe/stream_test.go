package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// streamClient is a platform's side of an audio-fork or jambonz
// WebSocket, written from their documentation: it dials with the token
// and the subprotocol, sends JSON text frames and L16 audio in 20 ms
// frames at the pace of speech, and collects what the server sends back.
type streamClient struct {
	c   *websocket.Conn
	raw net.Conn // the TCP connection, to vanish without a close frame
}

func dialStream(t *testing.T, url, subprotocol, token string) *streamClient {
	t.Helper()
	sc := &streamClient{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, n, a)
		sc.raw = conn
		return conn, err
	}}}
	opts := &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}}
	if subprotocol != "" {
		opts.Subprotocols = []string{subprotocol}
	}
	c, _, err := websocket.Dial(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	sc.c = c
	t.Cleanup(func() { c.CloseNow() })
	return sc
}

func (sc *streamClient) text(t *testing.T, v any) {
	b, _ := json.Marshal(v)
	if err := sc.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Errorf("send %s: %v", b, err)
	}
}

// l16 interleaves the channels' samples (float, one rate) as 16-bit
// little-endian; a shorter channel is padded with silence.
func l16(channels ...[]float32) []byte {
	n := 0
	for _, c := range channels {
		n = max(n, len(c))
	}
	b := make([]byte, 0, n*2*len(channels))
	for i := range n {
		for _, c := range channels {
			var v float32
			if i < len(c) {
				v = c[i]
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(int16(max(-32768, min(32767, v*32768)))))
		}
	}
	return b
}

// audio sends b as 20 ms frames at the pace of speech.
func (sc *streamClient) audio(t *testing.T, b []byte, rate, channels int) {
	frame := rate / 50 * 2 * channels
	next := time.Now()
	for len(b) > 0 {
		n := min(frame, len(b))
		if err := sc.c.Write(context.Background(), websocket.MessageBinary, b[:n]); err != nil {
			t.Errorf("audio: %v", err)
			return
		}
		b = b[n:]
		next = next.Add(20 * time.Millisecond)
		time.Sleep(time.Until(next))
	}
}

// closed reads until the server closes and returns the close code and the
// JSON messages it sent.
func (sc *streamClient) closed(t *testing.T, within time.Duration) (websocket.StatusCode, []map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var msgs []map[string]any
	for {
		_, b, err := sc.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Errorf("no close from the server: %v", err)
			}
			return ce.Code, msgs
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("server sent %q", b)
		}
		msgs = append(msgs, m)
	}
}

// finalsOf is the text of a call's finals on one leg (all: "").
func finalsOf(evs []map[string]any, leg string) string {
	var texts []string
	for _, e := range evs {
		if e["type"] == "final" && (leg == "" || e["leg"] == leg) {
			texts = append(texts, fmt.Sprint(e["text"]))
		}
	}
	return strings.Join(texts, " ")
}

// Calls through the gateway process's stream door, all at once, in real
// time, each from a client written from its platform's documentation:
//   - a stereo mod_audio_fork at 16 kHz (audio.drachtio.org), a different
//     recording on each channel: each leg's finals on Redis are within 10
//     points of the WER `callscribe transcribe` gets from the same file;
//   - a mono jambonz listen fork at 8 kHz (audio.jambonz.org) with a DTMF
//     digit, a pause and a resume after its words, ended by its close;
//   - jambonz's speech-to-text API at 8 kHz: start, audio, stop; the
//     transcriptions come back over the socket (partials, as asked, then
//     finals that match Redis's) and the server closes it (1000);
//   - a fork whose peer vanishes mid-call (its TCP reset): call.end reason
//     error, with the finals of what it said before.
func TestStreamDoorThroughTheGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr, "-config", configFile(t, "stream:\n  enabled: true\n  token: fork-secret\n"))
	g.waitReady(t, 200)
	dir := testModelDir(t)
	w0, w1, w8 := testWAV(t, "0.wav"), testWAV(t, "1.wav"), testWAV(t, "8k.wav")
	if w0.SampleRate != 16000 || w1.SampleRate != 16000 || w8.SampleRate != 8000 {
		t.Fatalf("rates %d %d %d", w0.SampleRate, w1.SampleRate, w8.SampleRate)
	}
	tail := func(x []float32, rate int) []float32 {
		return append(append([]float32(nil), x...), make([]float32, 2*rate)...)
	}
	base := "ws://" + g.http

	var wg sync.WaitGroup
	var sttMsgs []map[string]any
	var sttCode websocket.StatusCode
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	run(func() {
		fork := dialStream(t, base+"/stream", "audio.drachtio.org", "fork-secret")
		fork.text(t, map[string]any{"uuid": "fs-stereo-1", "sampleRate": "16k", "mixType": "stereo", "from": "1000", "to": "1002"})
		fork.audio(t, l16(tail(w0.Samples, 16000), tail(w1.Samples, 16000)), 16000, 2)
		fork.c.Close(websocket.StatusNormalClosure, "")
	})
	run(func() {
		listen := dialStream(t, base+"/stream", "audio.jambonz.org", "fork-secret")
		listen.text(t, map[string]any{"callSid": "jz-listen-2", "sampleRate": 8000, "mixType": "mono", "direction": "inbound"})
		listen.audio(t, l16(tail(w8.Samples, 8000)), 8000, 1)
		listen.text(t, map[string]any{"event": "dtmf", "dtmf": "7", "duration": "250"})
		listen.text(t, map[string]any{"type": "pause"})
		listen.audio(t, l16(make([]float32, 4000)), 8000, 1)
		listen.text(t, map[string]any{"type": "resume"})
		listen.audio(t, l16(make([]float32, 4000)), 8000, 1)
		listen.c.Close(websocket.StatusNormalClosure, "")
	})
	run(func() {
		stt := dialStream(t, base+"/jambonz", "", "fork-secret")
		stt.text(t, map[string]any{"type": "start", "language": "en-US", "format": "raw", "encoding": "LINEAR16",
			"sampleRateHz": 8000, "interimResults": true, "options": map[string]any{"callSid": "jz-stt-3"}})
		stt.audio(t, l16(tail(w8.Samples, 8000)), 8000, 1)
		stt.text(t, map[string]any{"type": "stop"})
		sttCode, sttMsgs = stt.closed(t, 40*time.Second)
	})
	run(func() {
		gone := dialStream(t, base+"/stream", "", "fork-secret")
		gone.text(t, map[string]any{"call_id": "gone-4", "sampleRate": 16000})
		gone.audio(t, l16(w1.Samples[:5*16000]), 16000, 1) // five seconds, mid-sentence
		gone.raw.(*net.TCPConn).SetLinger(0)
		gone.raw.Close()
	})
	wg.Wait()

	calls := map[string][]map[string]any{}
	for _, id := range []string{"fs-stereo-1", "jz-listen-2", "jz-stt-3", "gone-4"} {
		calls[id] = endedCall(t, rd.Addr, 40*time.Second, id, func(start map[string]any) bool { return start["call_id"] == id })
	}
	check := func(id, source, legs, codec, reason string) []map[string]any {
		evs := calls[id]
		start, end := evs[0], evs[len(evs)-1]
		if start["source"] != source || start["legs"] != legs || start["codec"] != codec || end["reason"] != reason {
			t.Errorf("%s: call.start %v, call.end %v", id, start, end)
		}
		return evs
	}
	refWER := map[string]float64{}
	for _, wav := range []string{"0.wav", "1.wav", "8k.wav"} {
		refWER[wav] = transcribeWER(t, filepath.Join(dir, "test_wavs", wav), referenceText(t, dir, wav))
	}
	score := func(id, leg, wav string) {
		got := wer(referenceText(t, dir, wav), finalsOf(calls[id], leg))
		t.Logf("%s leg %q: WER %.3f, callscribe transcribe on %s %.3f (difference %+.1f points)", id, leg, got, wav, refWER[wav], 100*(got-refWER[wav]))
		if got > refWER[wav]+0.10 {
			t.Errorf("%s leg %q: WER %.3f, transcribe's %.3f: %q", id, leg, got, refWER[wav], finalsOf(calls[id], leg))
		}
	}
	check("fs-stereo-1", "stream", "caller,callee", "L16/16000", "bye")
	score("fs-stereo-1", "caller", "0.wav")
	score("fs-stereo-1", "callee", "1.wav")

	evs := check("jz-listen-2", "stream", "caller", "L16/8000", "bye")
	score("jz-listen-2", "caller", "8k.wav")
	var kinds []string
	for _, e := range evs {
		switch e["type"] {
		case "dtmf":
			kinds = append(kinds, "dtmf "+fmt.Sprint(e["digit"]))
		case "pause", "resume":
			kinds = append(kinds, fmt.Sprint(e["type"]))
		}
	}
	if strings.Join(kinds, ",") != "dtmf 7,pause,resume" {
		t.Errorf("jz-listen-2: dtmf, pause and resume events %v", kinds)
	}

	check("jz-stt-3", "jambonz", "caller", "L16/8000", "bye")
	score("jz-stt-3", "caller", "8k.wav")
	if sttCode != websocket.StatusNormalClosure {
		t.Errorf("jambonz: the server closed with %d", sttCode)
	}
	var partials, finals []string
	for _, m := range sttMsgs {
		alts, _ := m["alternatives"].([]any)
		if m["type"] != "transcription" || len(alts) != 1 {
			t.Errorf("jambonz message %v", m)
			continue
		}
		text := fmt.Sprint(alts[0].(map[string]any)["transcript"])
		if m["is_final"] == true {
			finals = append(finals, text)
		} else {
			partials = append(partials, text)
		}
	}
	sent, published := asr.ScoringText(strings.Join(finals, " ")), asr.ScoringText(finalsOf(calls["jz-stt-3"], ""))
	if len(partials) == 0 || sent == "" || sent != published {
		t.Errorf("jambonz: %d partials, finals sent %q, on Redis %q", len(partials), sent, published)
	}

	evs = check("gone-4", "stream", "caller", "L16/16000", "error")
	if words := strings.Fields(finalsOf(evs, "")); len(words) < 5 {
		t.Errorf("gone-4: finals %q", words)
	}

	m := metricsText(t, g.http)
	for _, series := range []string{`callscribe_calls_started_total{source="stream"} 3`, `callscribe_calls_started_total{source="jambonz"} 1`} {
		if !strings.Contains(m, series) {
			t.Errorf("metrics lack %s", series)
		}
	}
}
