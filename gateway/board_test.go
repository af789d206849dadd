package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/word"
)

// boardEnv is a registry, a publisher on a real redis-server, a SIP server
// and a board over them, served on loopback.
type boardEnv struct {
	rd     *transcripttest.Redis
	pub    *transcript.Publisher
	calls  *Calls
	sip    *sip.Server
	events *Events
	board  *Board
	srv    *httptest.Server
}

func newBoardEnv(t testing.TB, b *asr.Batcher, o CallsOptions, bo BoardOptions) *boardEnv {
	t.Helper()
	o.MaxStreams, o.MaxLag = -1, -1
	e := &boardEnv{}
	e.rd, e.pub, e.calls, e.sip = testGateway(t, b, o, sip.Config{UDP: "127.0.0.1:0"})
	e.events = NewEvents(nil, nil)
	e.board = NewBoard(e.calls, e.pub, e.events, bo, nil)
	mux := http.NewServeMux()
	e.board.Mount(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.board.Close() // ends the streams, so the server can close
		e.srv.Close()
	})
	return e
}

// boardFrame is one event of the board's stream.
type boardFrame struct {
	Name string
	Data json.RawMessage
}

// boardStream reads a board stream on a goroutine of its own.
type boardStream struct {
	frames chan boardFrame
	res    *http.Response
	done   chan struct{}
}

func openBoard(t testing.TB, url string, hdr ...string) *boardStream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("board stream: %d %s", res.StatusCode, b)
	}
	s := &boardStream{frames: make(chan boardFrame, 1<<16), res: res, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.frames)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 16<<20)
		var f boardFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && f.Name != "":
				s.frames <- f
				f = boardFrame{}
			case strings.HasPrefix(line, "event: "):
				f.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.Data = json.RawMessage(line[6:])
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *boardStream) close() {
	s.res.Body.Close()
	<-s.done
}

// await returns the first frame match takes, failing the test after
// within.
func (s *boardStream) await(t testing.TB, within time.Duration, what string, match func(boardFrame) bool) boardFrame {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			if match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// delta decodes a "calls" frame (nil for another).
func delta(f boardFrame) *boardDelta {
	if f.Name != "calls" {
		return nil
	}
	var d boardDelta
	json.Unmarshal(f.Data, &d)
	return &d
}

func upserted(f boardFrame, id string) *boardSummary {
	if d := delta(f); d != nil {
		for i := range d.Upsert {
			if d.Upsert[i].ID == id || id == "" {
				return &d.Upsert[i]
			}
		}
	}
	return nil
}

func removedCall(f boardFrame, id string) bool {
	d := delta(f)
	return d != nil && strings.Contains(","+strings.Join(d.Remove, ",")+",", ","+id+",")
}

func boardEvent(f boardFrame) transcript.Event {
	var e transcript.Event
	if f.Name == "event" {
		json.Unmarshal(f.Data, &e)
	}
	return e
}

// A SIP call on the board: it appears (source, leg, from/to, codec) as it
// starts, its words change as it speaks, a keyword alert shows; a stream
// following it gets what it had so far and then each event, and its finals
// are the ones on Redis; it leaves the board when it ends.
func TestBoardFollowsSIPCall(t *testing.T) {
	a := asrtest.WAV(t, "8k.wav")
	e := newBoardEnv(t, nil, CallsOptions{Keywords: []asr.Phrase{{Text: "THESE THOUGHTS"}}}, BoardOptions{Flush: 50 * time.Millisecond})
	list := openBoard(t, e.srv.URL+"/api/board/stream")
	if f := list.await(t, time.Second, "snapshot", func(f boardFrame) bool { return true }); f.Name != "snapshot" || !strings.Contains(string(f.Data), `"calls":[]`) {
		t.Fatalf("first frame %s %s", f.Name, f.Data)
	}
	phone, err := siptest.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	talked := make(chan siptest.Talked, 1)
	go func() {
		res, _ := phone.Call(e.sip.Addrs()[0].String(), siptest.PCMU(a.Samples))
		talked <- res
	}()
	var sum *boardSummary
	list.await(t, 10*time.Second, "the call on the board", func(f boardFrame) bool {
		sum = upserted(f, "")
		return sum != nil && sum.State == "live"
	})
	id := sum.ID
	if sum.Source != "sip" || len(sum.Legs) != 1 || sum.Legs[0].Name != "caller" || sum.Info["codec"] != "PCMU" ||
		!strings.Contains(sum.Info["from"], "sip:") || !strings.Contains(sum.Info["to"], "sip:") || sum.Peer != "127.0.0.1" {
		t.Errorf("call on the board: %+v", sum)
	}
	follow := openBoard(t, e.srv.URL+"/api/board/stream?follow="+id)
	var det boardDetail
	f := follow.await(t, time.Second, "the followed call", func(f boardFrame) bool { return f.Name == "call" })
	if err := json.Unmarshal(f.Data, &det); err != nil || det.ID != id || det.Fields["source"] != "sip" {
		t.Fatalf("call frame %s: %v", f.Data, err)
	}
	finals := []string{}
	for _, l := range det.Finals {
		finals = append(finals, l.Text)
	}
	var partials []string
	ended := false
	for !ended {
		ev := boardEvent(follow.await(t, 30*time.Second, "the call's events", func(f boardFrame) bool { return f.Name == "event" }))
		switch ev.Type {
		case transcript.Partial:
			partials = append(partials, ev.Fields["text"])
		case transcript.Final:
			if ev.Fields["words"] != "" {
				t.Errorf("a final with its words: %v", ev.Fields)
			}
			if ev.Fields["text"] != "" {
				finals = append(finals, ev.Fields["text"])
			}
		case transcript.CallEnd:
			ended = true
		}
		if ev.CallID != id {
			t.Errorf("an event of %s following %s", ev.CallID, id)
		}
	}
	if res := <-talked; res.Code != 200 || res.CallID != id {
		t.Errorf("call %+v, board %s", res, id)
	}
	if len(partials) < 3 {
		t.Errorf("%d partials followed", len(partials))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var onRedis []string
	for _, evs := range transcripttest.CallStreams(t, e.rd.Addr) {
		for _, ev := range evs {
			if ev["type"] == "final" && ev["text"] != "" {
				onRedis = append(onRedis, ev["text"].(string))
			}
		}
	}
	if got, want := strings.Join(finals, " "), strings.Join(onRedis, " "); got != want || got == "" {
		t.Errorf("followed finals %q, on Redis %q", got, want)
	}
	// The list saw words and the alert, then the call left.
	words, alert := false, false
	list.await(t, 10*time.Second, "the call leaving", func(f boardFrame) bool {
		if d := delta(f); d != nil {
			if w := d.Words[id]; len(w) == 1 && w[0] != "" {
				words = true
			}
			if s := upserted(f, id); s != nil && len(s.Alerts) > 0 && s.Alerts[0].Phrase == "THESE THOUGHTS" {
				alert = true
			}
		}
		return removedCall(f, id)
	})
	if !words || !alert {
		t.Errorf("the list showed words %v, the keyword alert %v; finals %q", words, alert, finals)
	}
	var now struct{ Calls []boardSummary }
	res := get(t, e.srv.URL+"/api/calls")
	if err := json.NewDecoder(res.Body).Decode(&now); err != nil || len(now.Calls) != 0 {
		t.Errorf("/api/calls after the call: %+v %v", now, err)
	}
}

// A call's states on the board, as the registry and the events tell them:
// ringing once admitted, live with call.start's description, paused and
// live again (POST pause/resume), ending while its last finals are
// awaited, then gone; a call that never started leaves too. A board
// opened while calls are live gets them in its snapshot; /api/calls and
// /api/calls/{id} say the same.
func TestBoardStates(t *testing.T) {
	var delay atomic.Int64
	b := delayedBatcher(t, asr.BatcherOptions{}, &delay)
	e := newBoardEnv(t, b, CallsOptions{}, BoardOptions{Flush: 20 * time.Millisecond, Poll: 20 * time.Millisecond})
	list := openBoard(t, e.srv.URL+"/api/board/stream")
	peer := netip.MustParseAddr("192.0.2.7")
	tk, err := e.calls.Admit(ingest.Offer{ID: "room-1", Source: "audiohook", Peer: peer, Legs: []string{"customer", "agent"}, Redact: "pci"})
	if err != nil {
		t.Fatal(err)
	}
	never, err := e.calls.Admit(ingest.Offer{ID: "never", Source: "sip", Peer: peer, Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	// The board as the stream tells it, frame after frame (one frame
	// may carry several calls).
	onBoard := map[string]boardSummary{}
	state := func(id, want string) *boardSummary {
		t.Helper()
		if s, ok := onBoard[id]; ok && s.State == want {
			return &s
		}
		list.await(t, 5*time.Second, id+" "+want, func(f boardFrame) bool {
			if d := delta(f); d != nil {
				for _, s := range d.Upsert {
					onBoard[s.ID] = s
				}
			}
			s, ok := onBoard[id]
			return ok && s.State == want
		})
		s := onBoard[id]
		return &s
	}
	s := state("room-1", "ringing")
	if s.Source != "audiohook" || s.Peer != "192.0.2.7" || !s.Redact {
		t.Errorf("ringing: %+v", s)
	}
	state("never", "ringing")
	never.End("bye", nil)
	list.await(t, 5*time.Second, "the call that never started leaving", func(f boardFrame) bool { return removedCall(f, "never") })

	tk.Start(map[string]string{"conversation_id": "c0ffee", "language": "en-US", "hdr:X-Secret": "kept off the list"})
	s = state("room-1", "live")
	if s.Info["conversation_id"] != "c0ffee" || len(s.Legs) != 2 || s.Legs[1].Name != "agent" || s.Info["hdr:X-Secret"] != "" || s.Since == 0 {
		t.Errorf("live: %+v", s)
	}
	second := openBoard(t, e.srv.URL+"/api/board/stream?follow=room-1")
	var snap struct{ Calls []boardSummary }
	if f := second.await(t, time.Second, "snapshot", func(boardFrame) bool { return true }); json.Unmarshal(f.Data, &snap) != nil ||
		len(snap.Calls) != 1 || snap.Calls[0].ID != "room-1" || snap.Calls[0].State != "live" {
		t.Errorf("snapshot of a board opened during the call: %s", f.Data)
	}
	var det boardDetail
	f := second.await(t, time.Second, "the followed call", func(f boardFrame) bool { return f.Name == "call" })
	if json.Unmarshal(f.Data, &det); det.Fields["hdr:X-Secret"] != "kept off the list" || det.Fields["legs"] != "customer,agent" {
		t.Errorf("followed: %s", f.Data)
	}

	post := func(path string, hdr ...string) int {
		req, _ := http.NewRequest("POST", e.srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post("/api/calls/room-1/pause"); code != http.StatusForbidden {
		t.Errorf("pause without the board's header: %d", code)
	}
	if code := post("/api/calls/room-1/pause", "X-Callscribe-Board", "1"); code != 200 {
		t.Errorf("pause: %d", code)
	}
	state("room-1", "paused")
	if ev := boardEvent(second.await(t, time.Second, "pause", func(f boardFrame) bool { return f.Name == "event" })); ev.Type != "pause" || ev.Fields["by"] != "http" {
		t.Errorf("followed pause: %+v", ev)
	}
	if code := post("/api/calls/room-1/resume", "X-Callscribe-Board", "1"); code != 200 {
		t.Errorf("resume: %d", code)
	}
	state("room-1", "live")
	if code := post("/api/calls/nobody/pause", "X-Callscribe-Board", "1"); code != http.StatusNotFound {
		t.Errorf("pause of no call: %d", code)
	}

	var one boardDetail
	if res := get(t, e.srv.URL+"/api/calls/room-1"); json.NewDecoder(res.Body).Decode(&one) != nil || one.ID != "room-1" || one.State != "live" {
		t.Errorf("/api/calls/room-1: %+v", one)
	}
	if res := get(t, e.srv.URL+"/api/calls/nobody"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/api/calls/nobody: %d", res.StatusCode)
	}

	// Audio the slowed recognizer has yet to decode keeps the call ending
	// for a while after End.
	for i := range 2 {
		tk.Sink(i).WriteAudio(0, make([]float32, 3*16000))
	}
	delay.Store(int64(200 * time.Millisecond))
	tk.End("bye", nil)
	state("room-1", "ending")
	list.await(t, 30*time.Second, "the call leaving", func(f boardFrame) bool { return removedCall(f, "room-1") })
	if ev := boardEvent(second.await(t, 5*time.Second, "call.end", func(f boardFrame) bool { return boardEvent(f).Type == "call.end" })); ev.Fields["reason"] != "bye" {
		t.Errorf("call.end: %+v", ev)
	}
}

// Who may read the board: without a token, clients on this host only
// (403 for others); with one, a bearer token and nothing else (a token in
// the URL is refused: logs keep URLs). The page and its assets hold no
// data and need none. Board streams take slots of max_event_streams and
// give them back; a bad call id is 400.
func TestBoardAccess(t *testing.T) {
	e := newBoardEnv(t, newBatcher(t), CallsOptions{}, BoardOptions{})
	do := func(method, path, remote string, hdr ...string) *httptest.ResponseRecorder {
		mux := http.NewServeMux()
		e.board.Mount(mux)
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	const here, there = "127.0.0.1:5555", "192.0.2.1:5555"
	for _, c := range []struct {
		method, path, remote, token, auth string
		code                              int
	}{
		{"GET", "/api/calls", here, "", "", 200},
		{"GET", "/api/calls", "[::1]:5555", "", "", 200},
		{"GET", "/api/calls", there, "", "", 403},
		{"GET", "/api/calls/x", there, "", "", 403},
		{"POST", "/api/calls/x/pause", there, "", "", 403},
		{"GET", "/api/calls", there, "s3cret", "", 401},
		{"GET", "/api/calls", here, "s3cret", "", 401},
		{"GET", "/api/calls?token=s3cret", there, "s3cret", "", 401},
		{"GET", "/api/calls", there, "s3cret", "Bearer wrong", 401},
		{"GET", "/api/calls", there, "s3cret", "Bearer s3cret", 200},
		{"GET", "/api/board/stream?follow=%7Bbad%7D", there, "s3cret", "Bearer s3cret", 400},
		{"GET", "/api/calls/" + strings.Repeat("x", 300), there, "s3cret", "Bearer s3cret", 400},
		{"GET", "/calls", there, "s3cret", "", 200},
		{"GET", "/calls/board.js", there, "s3cret", "", 200},
		{"GET", "/calls/board.css", there, "", "", 200},
		{"GET", "/calls/board.html", here, "", "", 404},
	} {
		e.board.SetToken(c.token)
		w := do(c.method, c.path, c.remote, "Authorization", c.auth)
		if w.Code != c.code {
			t.Errorf("%s %s from %s, token %q, %q: %d, want %d: %s", c.method, c.path, c.remote, c.token, c.auth, w.Code, c.code, w.Body)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
	}
	w := do("GET", "/calls", there)
	if !strings.Contains(w.Body.String(), `src="/calls/board.js"`) || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("page: %s %v", w.Body, w.Header())
	}

	e.board.SetToken("")
	e.events.Max = 2
	first := openBoard(t, e.srv.URL+"/api/board/stream")
	openBoard(t, e.srv.URL+"/api/board/stream?follow=someone")
	if res := get(t, e.srv.URL+"/api/board/stream"); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("a stream beyond max_event_streams: %d", res.StatusCode)
	}
	if e.events.Active() != 2 {
		t.Errorf("%d streams counted", e.events.Active())
	}
	first.close()
	for start := time.Now(); e.events.Active() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the slot did not come back: %d active", e.events.Active())
		}
	}
	openBoard(t, e.srv.URL+"/api/board/stream")
}

// A stream that falls behind is cut and the board goes on (the page
// reconnects to a snapshot): a burst never waits on a slow reader.
func TestBoardCutsAStreamThatFallsBehind(t *testing.T) {
	e := newBoardEnv(t, newBatcher(t), CallsOptions{}, BoardOptions{Buffer: 4})
	tk, err := e.calls.Admit(ingest.Offer{ID: "busy", Source: "sip", Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(nil)
	defer e.calls.Wait()
	defer tk.End("bye", nil)
	stuck := &boardClient{c: make(chan []byte, 4), follow: "busy"}
	e.board.mu.Lock()
	e.board.clients[stuck] = true
	e.board.mu.Unlock()
	for i := range 50 {
		e.pub.Publish(transcript.NewPartial("busy", transcript.Utterance{Leg: "caller", Text: fmt.Sprint("WORD ", i)}))
	}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		e.board.mu.Lock()
		cut := !e.board.clients[stuck]
		e.board.mu.Unlock()
		if cut {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stuck stream was not cut")
		}
	}
	n := 0
	for range stuck.c { // closed once cut
		n++
	}
	if n != 4 {
		t.Errorf("%d frames queued before the cut, want 4", n)
	}
	var now struct{ Calls []boardSummary }
	res := get(t, e.srv.URL+"/api/calls")
	if json.NewDecoder(res.Body).Decode(&now); len(now.Calls) != 1 || !strings.HasSuffix(now.Calls[0].Legs[0].Last, "WORD 49") {
		t.Errorf("the board after the burst: %+v", now)
	}
	if e.board.Lost() != 0 {
		t.Errorf("the board lost %d events", e.board.Lost())
	}
}

// A call with redaction on shows markers on the board, never the digits:
// the board holds only what was published.
func TestBoardShowsRedactedCallRedacted(t *testing.T) {
	x := card(t, 700*time.Millisecond, "4539", "1488", "0343", "6467")
	e := newBoardEnv(t, newBatcher(t), CallsOptions{}, BoardOptions{Flush: 20 * time.Millisecond})
	list := openBoard(t, e.srv.URL+"/api/board/stream?follow=card")
	tk, err := e.calls.Admit(ingest.Offer{ID: "card", Source: "twilio", Legs: []string{"inbound"}, Redact: "pci"})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(nil)
	sink := tk.Sink(0)
	for at := 0; at < len(x); at += 320 {
		sink.WriteAudio(int64(at), x[at:min(at+320, len(x))])
		time.Sleep(5 * time.Millisecond)
	}
	tk.End("bye", nil)
	var seen strings.Builder
	list.await(t, 30*time.Second, "the call leaving", func(f boardFrame) bool {
		seen.Write(f.Data)
		seen.WriteByte('\n')
		return removedCall(f, "card")
	})
	all := seen.String()
	if !strings.Contains(all, "[CARD]") {
		t.Errorf("no [CARD] marker on the board:\n%s", all)
	}
	for _, d := range []string{"4539", "1488", "0343", "6467", "FOUR FIVE THREE", "ONE FOUR EIGHT"} {
		if strings.Contains(all, d) {
			t.Errorf("the board shows %q:\n%s", d, all)
		}
	}
}

// 500 synthetic live calls of two legs (customer, agent) on the board,
// their events published through the real publisher at a talking pace: a
// partial every 400 ms on every leg (2,500 a second), a final every 4 s,
// a keyword alert every 20 s a call. Two board streams are open (the list,
// and one following a call) and read as fast as they come. An iteration
// is 1 s of this. "off" is the same load with the board closed, so the
// difference is the board's. Reported: the process's CPU seconds per
// second, the heap after a collection, the bytes a stream receives per
// second, the time to answer GET /api/calls, the events the board lost.
//
//	go test -run '^$' -bench BenchmarkBoard500Calls -benchtime 10x ./gateway
func BenchmarkBoard500Calls(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		b.Run(name, func(b *testing.B) { benchmarkBoard(b, on) })
	}
}

func benchmarkBoard(b *testing.B, on bool) {
	e := newBoardEnv(b, newBatcher(b), CallsOptions{}, BoardOptions{})
	const calls = 500
	var tickets []ingest.Ticket
	for i := range calls {
		tk, err := e.calls.Admit(ingest.Offer{ID: fmt.Sprintf("call-%03d", i), Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"),
			Legs: []string{"customer", "agent"}})
		if err != nil {
			b.Fatal(err)
		}
		tk.Start(map[string]string{"from": fmt.Sprintf("sip:+1555%07d@carrier.example.com", i), "to": "sip:support@example.com", "codec": "PCMU"})
		tickets = append(tickets, tk)
	}
	b.Cleanup(func() {
		for _, tk := range tickets {
			tk.End("bye", nil)
		}
		e.calls.Wait()
	})
	var received atomic.Int64
	if on {
		for _, q := range []string{"", "?follow=call-007"} {
			s := openBoard(b, e.srv.URL+"/api/board/stream"+q)
			go func() {
				for f := range s.frames {
					received.Add(int64(len(f.Data) + len(f.Name) + 16))
				}
			}()
		}
	} else {
		e.board.Close()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // 40 ms ticks, a tenth of the legs each
		defer close(done)
		words := strings.Fields("I WOULD LIKE TO CANCEL MY ACCOUNT BECAUSE THE BILL WAS WRONG AGAIN THIS MONTH AND NOBODY CALLED BACK")
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		k := make([]int, 2*calls)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for l := n % 10; l < 2*calls; l += 10 {
				id, leg := fmt.Sprintf("call-%03d", l/2), []string{"customer", "agent"}[l%2]
				k[l]++
				utt, step := k[l]/10, k[l]%10
				u := transcript.Utterance{Leg: leg, Utt: utt, Text: strings.Join(words[:2*step+1], " "), StartMs: int64(k[l]) * 400}
				if step == 9 {
					u.Display = "I would like to cancel my account because the bill was wrong again this month."
					u.DisplayWords = []word.Token{}
					e.pub.Publish(transcript.NewFinal(id, u))
				} else {
					e.pub.Publish(transcript.NewPartial(id, u))
				}
				if l%2 == 0 && k[l]%50 == 25 {
					e.pub.Publish(transcript.NewKeyword(id, transcript.KeywordHit{Leg: leg, Utt: utt, Phrase: "cancel my account", Text: "CANCEL MY ACCOUNT"}))
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(3 * time.Second) // every leg has spoken
	var apiTime time.Duration
	cpu0, got0 := processCPU(), received.Load()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		time.Sleep(time.Second - 40*time.Millisecond)
		if on {
			t0 := time.Now()
			res, err := http.Get(e.srv.URL + "/api/calls")
			if err != nil {
				b.Fatal(err)
			}
			var list struct{ Calls []boardSummary }
			json.NewDecoder(res.Body).Decode(&list)
			res.Body.Close()
			apiTime += time.Since(t0)
			if len(list.Calls) != calls {
				b.Fatalf("%d calls on the board", len(list.Calls))
			}
		}
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric((processCPU()-cpu0).Seconds()/elapsed, "cpu-s/s")
	b.ReportMetric(float64(received.Load()-got0)/elapsed/1024, "stream-KiB/s")
	b.ReportMetric(apiTime.Seconds()*1000/float64(b.N), "api-ms")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	if on {
		b.ReportMetric(float64(e.board.Lost()), "lost")
	}
}

// processCPU is the CPU time this process used so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
