package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/transcript"
)

// Follower reads one call's events from where they are published
// (transcript.Follower).
type Follower interface {
	Read(ctx context.Context, callID, after string, count int, block time.Duration) ([]transcript.Message, error)
	Ended(ctx context.Context, callID, upto string) (bool, error)
}

// Events serves one call's transcript events as Server-Sent Events: GET
// with the call id as the path value "id". Events are read from the call's
// Redis stream, so any gateway behind a load balancer can serve any call,
// and what a page shows is what applications read. Each SSE event has the
// Redis entry id as its id, the event type as its name and the event as
// JSON data; a reconnecting EventSource (Last-Event-ID) resumes after the
// last one it had. The stream ends after call.end.
type Events struct {
	f   Follower
	log *slog.Logger
	// token, when set, must come as a bearer token or as ?token=; without
	// one only clients on this host are served (callAccess). SetToken.
	token atomic.Pointer[string]
	// Max bounds the concurrent streams (503 beyond); default 100.
	Max int
	// Heartbeat is the longest silence on a stream; default 15 s.
	Heartbeat time.Duration
	// WaitStart ends a stream whose call has no event by then (an unknown
	// call: its slot goes back) with an error event; default 60 s.
	WaitStart time.Duration

	active atomic.Int64
}

// NewEvents serves the events f reads.
func NewEvents(f Follower, log *slog.Logger) *Events {
	if log == nil {
		log = slog.Default()
	}
	e := &Events{f: f, log: log, Max: 100, Heartbeat: 15 * time.Second, WaitStart: time.Minute}
	e.SetToken("")
	return e
}

// SetToken sets the token streams need (empty: none, this host only). Any
// goroutine; streams already open go on.
func (e *Events) SetToken(token string) { e.token.Store(&token) }

// Token is the token streams need.
func (e *Events) Token() string { return *e.token.Load() }

// Active is the number of open streams.
func (e *Events) Active() int { return int(e.active.Load()) }

// validCallID keeps ids to what fits a key and a URL path: printable, no
// braces (the Redis hash tag), not too long.
func validCallID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c == 0x7f || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

func (e *Events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !callAccess(w, r, e.Token()) {
		return
	}
	id := r.PathValue("id")
	if !validCallID(id) {
		http.Error(w, "bad call id", http.StatusBadRequest)
		return
	}
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("after")
	}
	if after != "" && !validEntryID(after) {
		http.Error(w, "bad Last-Event-ID: want a stream entry id like 1700000000000-0", http.StatusBadRequest)
		return
	}
	if n := e.active.Add(1); n > int64(e.Max) {
		e.active.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many event streams", http.StatusServiceUnavailable)
		return
	}
	defer e.active.Add(-1)
	ctx := r.Context()
	if after != "" {
		// A reconnect after call.end: 204 tells EventSource to stop.
		if ended, err := e.f.Ended(ctx, id, after); err == nil && ended {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	rc := http.NewResponseController(w)
	// The stream outlives the server's read timeout (meant for request
	// bodies); without this the connection's deadline would end it.
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	if rc.Flush() != nil {
		return
	}
	var b strings.Builder
	failing := false
	waitUntil := time.Now().Add(e.WaitStart)
	for {
		if after == "" && time.Now().After(waitUntil) {
			fmt.Fprint(w, "event: error\ndata: {\"error\":\"no such call\"}\n\n")
			rc.Flush()
			return
		}
		block := e.Heartbeat
		if after == "" { // no event yet: wake up when the wait for one is over
			block = min(block, max(time.Until(waitUntil), 10*time.Millisecond))
		}
		ms, err := e.f.Read(ctx, id, after, 64, block)
		if ctx.Err() != nil {
			return
		}
		b.Reset()
		switch {
		case err != nil:
			// Redis away: say so once, keep trying; the events wait there.
			if !failing {
				e.log.Warn("gateway: events: transcript store unreachable", "call_id", id, "err", err)
				b.WriteString("event: warning\ndata: {\"warning\":\"transcript store unreachable, retrying\"}\n\n")
			}
			failing = true
		case len(ms) == 0:
			b.WriteString(": ping\n\n")
		default:
			failing = false
		}
		end := false
		for _, m := range ms {
			data, _ := json.Marshal(m.Event)
			fmt.Fprintf(&b, "id: %s\nevent: %s\ndata: %s\n\n", m.ID, m.Event.Type, data)
			after = m.ID
			end = end || m.Event.Type == transcript.CallEnd
		}
		if _, werr := w.Write([]byte(b.String())); werr != nil || rc.Flush() != nil || end {
			return
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// validEntryID accepts "ms-seq" or "ms".
func validEntryID(s string) bool {
	ms, seq, _ := strings.Cut(s, "-")
	digits := func(x string) bool {
		if x == "" || len(x) > 20 {
			return false
		}
		for _, c := range x {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return digits(ms) && (seq == "" && !strings.Contains(s, "-") || digits(seq))
}
