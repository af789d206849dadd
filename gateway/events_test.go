package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// sseEvent is one Server-Sent Event as a client sees it.
type sseEvent struct {
	ID, Name string
	Event    transcript.Event
}

// readSSE reads events until the stream ends or n have come.
func readSSE(t *testing.T, body io.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(body)
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.Name = line[7:]
		case strings.HasPrefix(line, "data: "):
			if cur.Name != "warning" {
				if err := json.Unmarshal([]byte(line[6:]), &cur.Event); err != nil {
					t.Errorf("data %q: %v", line, err)
				}
			}
		}
	}
	return out
}

func eventsServer(t *testing.T, addr string, configure func(*Events)) *httptest.Server {
	f, err := transcript.NewFollower(transcript.FollowerOptions{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ev := NewEvents(f, nil)
	ev.Heartbeat = 200 * time.Millisecond
	if configure != nil {
		configure(ev)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /events/{id}", ev)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// A follower that connects before the call starts sees every event in
// order with its Redis id, and the stream ends with call.end; one that
// comes back with Last-Event-ID gets only what it had not; one that comes
// back after call.end gets 204 (EventSource stops).
func TestEventsFollowOneCall(t *testing.T) {
	rd := transcripttest.Start(t)
	pub, err := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	srv := eventsServer(t, rd.Addr, nil)

	res := get(t, srv.URL+"/events/call-1")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sent := []transcript.Event{
		{Type: transcript.CallStart, CallID: "call-1", Fields: map[string]string{"source": "webrtc"}},
		{Type: transcript.Partial, CallID: "call-1", Fields: map[string]string{"leg": "browser", "utt": "0", "text": "HEL"}},
		{Type: transcript.Final, CallID: "call-2", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "OTHER"}},
		{Type: transcript.Final, CallID: "call-1", Fields: map[string]string{"leg": "browser", "utt": "0", "text": "HELLO"}},
		{Type: transcript.CallEnd, CallID: "call-1", Fields: map[string]string{"reason": "bye"}},
	}
	go func() {
		for _, e := range sent {
			time.Sleep(50 * time.Millisecond)
			pub.Publish(e)
		}
	}()
	got := readSSE(t, res.Body, 100) // to the end of the stream
	var names []string
	for _, e := range got {
		names = append(names, e.Name+":"+e.Event.Fields["text"])
		if e.Event.CallID != "call-1" || e.ID == "" || e.Name != e.Event.Type {
			t.Errorf("event %+v", e)
		}
	}
	if strings.Join(names, " ") != "call.start: partial:HEL final:HELLO call.end:" {
		t.Fatalf("events %v", names)
	}
	for i, e := range got {
		if e.Event.Seq != int64(i+1) {
			t.Errorf("seq %d at %d", e.Event.Seq, i)
		}
	}

	res = get(t, srv.URL+"/events/call-1", "Last-Event-ID", got[1].ID)
	again := readSSE(t, res.Body, 100)
	if len(again) != 2 || again[0].Event.Fields["text"] != "HELLO" || again[1].Name != "call.end" {
		t.Errorf("resumed: %+v", again)
	}
	if res := get(t, srv.URL+"/events/call-1", "Last-Event-ID", got[3].ID); res.StatusCode != http.StatusNoContent {
		t.Errorf("after call.end: %d, want 204", res.StatusCode)
	}
	if res := get(t, srv.URL+"/events/call-1?after="+got[3].ID); res.StatusCode != http.StatusNoContent {
		t.Errorf("?after= past call.end: %d, want 204", res.StatusCode)
	}
}

func TestEventsRefusals(t *testing.T) {
	rd := transcripttest.Start(t)
	srv := eventsServer(t, rd.Addr, func(e *Events) { e.SetToken("s3cret"); e.Max = 1 })
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/events/a", nil, 401},
		{"/events/a", []string{"Authorization", "Bearer nope"}, 401},
		{"/events/a%7Bx%7D?token=s3cret", nil, 400},
		{"/events/" + strings.Repeat("x", 300) + "?token=s3cret", nil, 400},
		{"/events/a?token=s3cret", []string{"Last-Event-ID", "12-x"}, 400},
		{"/events/a?token=s3cret&after=junk", nil, 400},
	} {
		if res := get(t, srv.URL+c.path, c.hdr...); res.StatusCode != c.want {
			t.Errorf("%s %v: %d, want %d", c.path[:min(len(c.path), 40)], c.hdr, res.StatusCode, c.want)
		}
	}
	// One stream at most: the second is refused while the first is open.
	first := get(t, srv.URL+"/events/a", "Authorization", "Bearer s3cret")
	if first.StatusCode != 200 {
		t.Fatalf("first: %d", first.StatusCode)
	}
	if res := get(t, srv.URL+"/events/b?token=s3cret"); res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d", res.StatusCode)
	}
	// Heartbeats keep it open while nothing happens.
	line, err := bufio.NewReader(first.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "retry:") {
		t.Errorf("first line %q %v", line, err)
	}
}

// Redis away: the stream says so and carries on; the events come once it
// is back.
func TestEventsRedisOutage(t *testing.T) {
	rd := transcripttest.Start(t)
	pub, err := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	srv := eventsServer(t, rd.Addr, nil)
	rd.Stop()
	res := get(t, srv.URL+"/events/c")
	warn := readSSE(t, res.Body, 1)
	if len(warn) != 1 || warn[0].Name != "warning" {
		t.Fatalf("got %+v", warn)
	}
	rd.Restart()
	pub.Publish(transcript.Event{Type: transcript.Final, CallID: "c", Fields: map[string]string{"text": "BACK"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := readSSE(t, res.Body, 1)
	if len(got) != 1 || got[0].Event.Fields["text"] != "BACK" {
		t.Errorf("after the outage: %+v", got)
	}
}

func TestPage(t *testing.T) {
	page, err := Page("/whip", "/events/")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /static/", page)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		path, ctype, has string
		code             int
	}{
		{"/", "text/html; charset=utf-8", `data-whip="/whip" data-events="/events/"`, 200},
		{"/?autostart=1", "text/html; charset=utf-8", `src="/static/app.js"`, 200},
		{"/static/app.js", "text/javascript; charset=utf-8", "new EventSource(", 200},
		{"/static/style.css", "text/css; charset=utf-8", "#transcript", 200},
		{"/static/index.html", "", "", 404},
		{"/static/../go.mod", "", "", 404},
		{"/nope", "", "", 404},
	} {
		res := get(t, srv.URL+c.path)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != c.code || c.code == 200 && (res.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(b), c.has)) {
			t.Errorf("%s: %d %s, body has %q: %v", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.has, strings.Contains(string(b), c.has))
		}
	}
	if _, err := Page(`"><script>`, "/events/"); err != nil {
		t.Fatal(err)
	}
}

// A stream's slot is free as soon as its client leaves, and a stream for a
// call that never starts ends after WaitStart, so idle followers of made-up
// ids cannot lock viewers out.
func TestEventsSlotsGoBack(t *testing.T) {
	rd := transcripttest.Start(t)
	srv := eventsServer(t, rd.Addr, func(e *Events) { e.Max = 1; e.Heartbeat = 5 * time.Second; e.WaitStart = 500 * time.Millisecond })
	first := get(t, srv.URL+"/events/nobody")
	b := make([]byte, 4096)
	if n, _ := first.Body.Read(b); first.StatusCode != 200 || n == 0 {
		t.Fatalf("first stream: %d", first.StatusCode)
	}
	start := time.Now()
	rest, _ := io.ReadAll(first.Body) // ends by itself
	if !strings.Contains(string(rest), "event: error") || time.Since(start) > 3*time.Second {
		t.Errorf("the stream of an unknown call: %q after %v", rest, time.Since(start))
	}
	// A client that leaves gives its slot back at once.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events/someone", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("second stream: %v %v", res, err)
	}
	cancel()
	res.Body.Close()
	ok := false
	for start := time.Now(); time.Since(start) < time.Second; time.Sleep(20 * time.Millisecond) {
		r := get(t, srv.URL+"/events/someone-else")
		r.Body.Close()
		if r.StatusCode == 200 {
			ok = true
			break
		}
	}
	if !ok {
		t.Error("the slot of a client that left was not free within a second")
	}
}

// Past WaitStart, a stream whose call has events goes on blocking for a
// heartbeat at a time: pings come every Heartbeat, not in a busy loop.
func TestEventsHeartbeatAfterWaitStart(t *testing.T) {
	rd := transcripttest.Start(t)
	pub, err := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Publish(transcript.NewCallStart("live", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	srv := eventsServer(t, rd.Addr, func(e *Events) { e.Heartbeat = 500 * time.Millisecond; e.WaitStart = 200 * time.Millisecond })
	res := get(t, srv.URL+"/events/live")
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(res.Body)
		done <- b
	}()
	time.Sleep(2 * time.Second)
	res.Body.Close()
	b := <-done
	if pings := strings.Count(string(b), ": ping"); pings > 6 || !strings.Contains(string(b), "event: call.start") {
		t.Errorf("%d pings in 2 s with a 500 ms heartbeat:\n%.300s", pings, b)
	}
}
