package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/callscribe/callscribe/transcript"
)

// The live-calls board: GET /calls (a page), GET /api/calls (every live
// call, JSON), GET /api/calls/{id} (one call with its transcript so far),
// GET /api/board/stream (the board's one event stream) and POST
// /api/calls/{id}/pause, /resume. It is built from the events the
// publisher publishes (transcript.Subscribe: stamped and already
// redacted, so the board holds no text Redis does not) and from the
// registry, which alone knows calls still ringing and calls ending.

// Board keeps the live calls as the board shows them and serves them.
// One goroutine (run) applies the events and the registry to the model
// and sends the changes to the open streams; Close stops it and ends the
// streams.
type Board struct {
	calls  *Calls
	sub    *transcript.Subscription
	slots  *Events // streams take a slot of http.max_event_streams
	log    *slog.Logger
	token  atomic.Pointer[string]
	opts   BoardOptions
	assets map[string]boardAsset

	mu      sync.Mutex
	model   map[string]*boardCall
	gone    map[string]bool // call.end seen while the registry still holds the call
	dirty   map[string]bool // calls changed since the last flush; true: more than words
	removed []string        // calls gone since the last flush
	urgent  bool            // a call came, went or changed state: flush now
	clients map[*boardClient]bool
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// BoardOptions tune the board; zero fields take the defaults named.
type BoardOptions struct {
	// Flush is how often changes go to the streams, coalesced; default
	// 200 ms.
	Flush time.Duration
	// Poll is how often the registry is read for calls ringing or ending
	// and calls whose events were lost; default 500 ms.
	Poll time.Duration
	// Heartbeat is the longest silence on a stream; default 15 s.
	Heartbeat time.Duration
	// Buffer is the frames a stream may fall behind before it is cut (the
	// page reconnects and gets a fresh snapshot); default 256.
	Buffer int
}

// Limits of what the board keeps per call.
const (
	boardFinals   = 200 // finals kept for a follower
	boardAlerts   = 100 // keyword alerts kept (the summary shows the last few)
	summaryAlerts = 5
	lastWords     = 12 // the words of each leg on the board
	maxInfo       = 200
)

// boardCall is one call of the model.
type boardCall struct {
	sum      boardSummary
	fields   map[string]string // call.start's, every one
	last     []string          // per leg: its latest words, whole
	finals   []boardLine       // the latest, oldest first
	partials map[string]boardLine
	alerts   []boardAlert
}

// boardSummary is a call as the board's list shows it.
type boardSummary struct {
	ID     string            `json:"id"`
	Source string            `json:"source"`
	State  string            `json:"state"`            // ringing, live, paused, ending
	Since  int64             `json:"since"`            // unix ms of call.start (ringing: when seen)
	Peer   string            `json:"peer,omitempty"`   // the address the call came from
	Redact bool              `json:"redact"`           // its transcript is redacted
	Info   map[string]string `json:"info,omitempty"`   // call.start's description: from, to, codec, platform ids
	Legs   []boardLeg        `json:"legs"`             // in stream order
	Alerts []boardAlert      `json:"alerts,omitempty"` // the latest keyword alerts
}

type boardLeg struct {
	Name string `json:"name"`
	Last string `json:"last"` // its latest words
}

type boardAlert struct {
	Seq    int64  `json:"seq"`
	TS     int64  `json:"ts"`
	Leg    string `json:"leg"`
	Utt    string `json:"utt"`
	Phrase string `json:"phrase"`
	Text   string `json:"text"`
}

// boardLine is a partial or final of a followed call.
type boardLine struct {
	Seq      int64  `json:"seq"`
	Type     string `json:"type"`
	Leg      string `json:"leg"`
	Utt      string `json:"utt"`
	Text     string `json:"text"`
	Display  string `json:"display,omitempty"`
	Redacted string `json:"redacted,omitempty"`
	StartMs  string `json:"start_ms"`
	EndMs    string `json:"end_ms"`
}

// boardDetail is one call with its transcript so far.
type boardDetail struct {
	boardSummary
	Fields   map[string]string `json:"fields"`
	Finals   []boardLine       `json:"finals"`
	Partials []boardLine       `json:"partials"`
	All      []boardAlert      `json:"all_alerts"`
}

// A boardClient is one open stream: frames ready to write.
type boardClient struct {
	c      chan []byte
	follow string // the call whose every event it gets
}

type boardAsset struct{ name, ctype string }

// NewBoard starts a board over the registry's calls and the publisher's
// events; its streams take slots of ev's. Close it.
func NewBoard(calls *Calls, pub *transcript.Publisher, ev *Events, o BoardOptions, log *slog.Logger) *Board {
	if log == nil {
		log = slog.Default()
	}
	o.Flush = cmp.Or(o.Flush, 200*time.Millisecond)
	o.Poll = cmp.Or(o.Poll, 500*time.Millisecond)
	o.Heartbeat = cmp.Or(o.Heartbeat, 15*time.Second)
	o.Buffer = cmp.Or(o.Buffer, 256)
	b := &Board{calls: calls, slots: ev, log: log, opts: o, model: map[string]*boardCall{}, gone: map[string]bool{},
		dirty: map[string]bool{}, clients: map[*boardClient]bool{}, stop: make(chan struct{}),
		// A burst of partials from hundreds of calls waits here; past it
		// the registry's poll repairs the list.
		sub: pub.Subscribe("", 16384),
		assets: map[string]boardAsset{"/calls": {"board.html", "text/html; charset=utf-8"},
			"/calls/board.js": {"board.js", "text/javascript; charset=utf-8"}, "/calls/board.css": {"board.css", "text/css; charset=utf-8"}}}
	b.SetToken("")
	b.wg.Add(1)
	go b.run()
	return b
}

// SetToken sets the bearer token the board's data needs (empty: none, this
// host only). Any goroutine; streams already open go on.
func (b *Board) SetToken(token string) { b.token.Store(&token) }

// Mount puts the board's handlers on mux.
func (b *Board) Mount(mux *http.ServeMux) {
	for p := range b.assets {
		mux.HandleFunc("GET "+p, b.serveAsset)
	}
	mux.HandleFunc("GET /api/calls", b.serveList)
	mux.HandleFunc("GET /api/calls/{id}", b.serveCall)
	mux.HandleFunc("GET /api/board/stream", b.serveStream)
	mux.HandleFunc("POST /api/calls/{id}/pause", b.servePause(true))
	mux.HandleFunc("POST /api/calls/{id}/resume", b.servePause(false))
}

// Close ends the streams and stops the board. Idempotent.
func (b *Board) Close() {
	b.once.Do(func() {
		close(b.stop)
		b.sub.Close()
		b.wg.Wait()
		b.mu.Lock()
		b.closed = true
		for cl := range b.clients {
			delete(b.clients, cl)
			close(cl.c)
		}
		b.mu.Unlock()
	})
}

// Lost is how many events the board missed because it fell behind (the
// registry's poll repaired the list; a follower may miss words).
func (b *Board) Lost() int64 { return b.sub.Lost() }

func (b *Board) run() {
	defer b.wg.Done()
	flush, poll := time.NewTicker(b.opts.Flush), time.NewTicker(b.opts.Poll)
	defer flush.Stop()
	defer poll.Stop()
	for {
		select {
		case <-b.stop:
			return
		case ev, ok := <-b.sub.C():
			if !ok {
				return
			}
			b.mu.Lock()
			b.apply(ev)
			// Take what else is waiting under the same lock; a call that
			// came or went is sent at once, words wait for the tick.
			for more := true; more; {
				select {
				case ev, ok := <-b.sub.C():
					if !ok {
						b.mu.Unlock()
						return
					}
					b.apply(ev)
				default:
					more = false
				}
			}
			if b.urgent {
				b.flush()
			}
			b.mu.Unlock()
		case <-flush.C:
			b.mu.Lock()
			b.flush()
			b.mu.Unlock()
		case <-poll.C:
			views := b.calls.views()
			b.mu.Lock()
			b.reconcile(views)
			b.mu.Unlock()
		}
	}
}

// apply folds one event into the model. b.mu held.
func (b *Board) apply(ev transcript.Event) {
	f := ev.Fields
	if ev.Type == transcript.CallStart {
		c := b.add(ev.CallID, ev.TS)
		c.fields = f
		c.sum.Source, c.sum.State, c.sum.Since = f["source"], "live", ev.TS
		if names := strings.Split(f["legs"], ","); f["legs"] != "" {
			c.setLegs(names)
		}
		c.sum.Info = map[string]string{}
		for k, v := range f {
			if k != "source" && k != "legs" && k != "participants" && !strings.HasPrefix(k, "hdr:") {
				c.sum.Info[k] = truncate(v, maxInfo)
			}
		}
		if v, ok := b.calls.view(ev.CallID); ok {
			c.fromView(v)
			c.sum.State = "live" // the event is newer than the registry's look
		}
		delete(b.gone, ev.CallID)
		b.dirty[ev.CallID], b.urgent = true, true
		b.send(ev)
		return
	}
	c := b.model[ev.CallID]
	if c == nil {
		if ev.Type == transcript.CallEnd {
			b.gone[ev.CallID] = true
		}
		return
	}
	b.send(ev)
	meta := false
	switch ev.Type {
	case transcript.Partial, transcript.Final:
		line := boardLine{Seq: ev.Seq, Type: ev.Type, Leg: f["leg"], Utt: f["utt"], Text: f["text"], Display: f["display"],
			Redacted: f["redacted"], StartMs: f["start_ms"], EndMs: f["end_ms"]}
		i := c.leg(line.Leg)
		if ev.Type == transcript.Partial {
			c.partials[line.Leg] = line
			if line.Text != "" {
				c.last[i] = line.Text
			}
			break
		}
		if p, ok := c.partials[line.Leg]; ok && p.Utt == line.Utt {
			delete(c.partials, line.Leg)
		}
		if line.Text == "" { // an utterance of silence
			break
		}
		c.last[i] = cmp.Or(line.Display, line.Text)
		if len(c.finals) == boardFinals {
			c.finals = slices.Delete(c.finals, 0, 1)
		}
		c.finals = append(c.finals, line)
	case transcript.Keyword:
		if len(c.alerts) == boardAlerts {
			c.alerts = slices.Delete(c.alerts, 0, 1)
		}
		c.alerts = append(c.alerts, boardAlert{Seq: ev.Seq, TS: ev.TS, Leg: f["leg"], Utt: f["utt"], Phrase: f["phrase"], Text: f["text"]})
		meta = true
	case transcript.Pause:
		c.sum.State, meta = "paused", true
	case transcript.Resume:
		c.sum.State, meta = "live", true
	case transcript.CallEnd:
		b.remove(ev.CallID)
		b.gone[ev.CallID], b.urgent = true, true
		return
	default:
		return
	}
	b.dirty[ev.CallID] = b.dirty[ev.CallID] || meta
	b.urgent = b.urgent || meta
}

// add is the model's call id, made when new. b.mu held.
func (b *Board) add(id string, since int64) *boardCall {
	c := b.model[id]
	if c == nil {
		c = &boardCall{sum: boardSummary{ID: id, Since: since}, partials: map[string]boardLine{}}
		b.model[id] = c
		b.removed = slices.DeleteFunc(b.removed, func(r string) bool { return r == id })
	}
	return c
}

// remove takes a call off the board. b.mu held.
func (b *Board) remove(id string) {
	if _, ok := b.model[id]; !ok {
		return
	}
	delete(b.model, id)
	delete(b.dirty, id)
	b.removed = append(b.removed, id)
}

// reconcile brings the model in line with the registry: calls ringing or
// ending, calls whose call.start or call.end the board missed. b.mu held.
func (b *Board) reconcile(views []callView) {
	now := time.Now().UnixMilli()
	in := make(map[string]bool, len(views))
	for _, v := range views {
		in[v.id] = true
		if b.gone[v.id] || v.state == ended {
			continue
		}
		c := b.model[v.id]
		if c == nil {
			c = b.add(v.id, now)
			c.sum.Source = v.source
			c.setLegs(v.legs)
			c.sum.State = c.fromView(v)
			b.dirty[v.id] = true
			continue
		}
		if st := c.fromView(v); st != c.sum.State {
			// The registry says ringing or ending before any event
			// does; live and paused come with their events.
			if st == "ending" || st == "ringing" || c.sum.State == "ringing" {
				c.sum.State = st
				b.dirty[v.id] = true
			}
		}
	}
	for id := range b.gone {
		if !in[id] {
			delete(b.gone, id)
		}
	}
	for id := range b.model {
		if !in[id] {
			b.remove(id)
		}
	}
}

// fromView takes what only the registry knows and returns the state it
// says.
func (c *boardCall) fromView(v callView) string {
	if v.peer.IsValid() {
		c.sum.Peer = v.peer.String()
	}
	c.sum.Redact = v.redact
	if len(c.sum.Legs) == 0 && len(v.legs) > 0 {
		c.setLegs(v.legs)
	}
	switch {
	case v.state == admitted:
		return "ringing"
	case v.state == ending:
		return "ending"
	case v.paused:
		return "paused"
	}
	return "live"
}

func (c *boardCall) setLegs(names []string) {
	c.sum.Legs = c.sum.Legs[:0]
	for _, n := range names {
		c.sum.Legs = append(c.sum.Legs, boardLeg{Name: n})
	}
	c.last = make([]string, len(names))
}

// leg is the index of the leg named name, added when new.
func (c *boardCall) leg(name string) int {
	for i, l := range c.sum.Legs {
		if l.Name == name {
			return i
		}
	}
	c.sum.Legs = append(c.sum.Legs, boardLeg{Name: name})
	c.last = append(c.last, "")
	return len(c.sum.Legs) - 1
}

// summary is the call as the list shows it.
func (c *boardCall) summary() boardSummary {
	s := c.sum
	s.Legs = slices.Clone(s.Legs)
	for i := range s.Legs {
		s.Legs[i].Last = tailWords(c.last[i], lastWords)
	}
	s.Alerts = slices.Clone(c.alerts[max(0, len(c.alerts)-summaryAlerts):])
	return s
}

func (c *boardCall) detail() boardDetail {
	d := boardDetail{boardSummary: c.summary(), Fields: c.fields, Finals: slices.Clone(c.finals), All: slices.Clone(c.alerts)}
	for _, p := range c.partials {
		d.Partials = append(d.Partials, p)
	}
	slices.SortFunc(d.Partials, func(a, b boardLine) int { return cmp.Compare(a.Seq, b.Seq) })
	if d.Fields == nil {
		d.Fields = map[string]string{}
	}
	if d.Finals == nil {
		d.Finals = []boardLine{}
	}
	return d
}

// boardDelta is what changed since the last flush: calls new or changed
// (whole), calls whose words alone changed (each leg's), calls gone.
type boardDelta struct {
	Now    int64               `json:"now"`
	Upsert []boardSummary      `json:"upsert,omitempty"`
	Words  map[string][]string `json:"words,omitempty"`
	Remove []string            `json:"remove,omitempty"`
}

// flush sends the changes to every stream, one frame for all. b.mu held.
func (b *Board) flush() {
	b.urgent = false
	if len(b.dirty) == 0 && len(b.removed) == 0 {
		return
	}
	if len(b.clients) > 0 {
		d := boardDelta{Now: time.Now().UnixMilli(), Remove: b.removed}
		for id, meta := range b.dirty {
			s := b.model[id].summary()
			if meta {
				d.Upsert = append(d.Upsert, s)
				continue
			}
			if d.Words == nil {
				d.Words = map[string][]string{}
			}
			w := make([]string, len(s.Legs))
			for i, l := range s.Legs {
				w[i] = l.Last
			}
			d.Words[id] = w
		}
		frame := sseFrame("calls", d)
		for cl := range b.clients {
			b.deliver(cl, frame)
		}
	}
	clear(b.dirty)
	b.removed = nil
}

// send gives a followed call's event to its followers, now. b.mu held.
func (b *Board) send(ev transcript.Event) {
	var frame []byte
	for cl := range b.clients {
		if cl.follow != ev.CallID {
			continue
		}
		if frame == nil {
			e := ev
			e.Fields = make(map[string]string, len(ev.Fields))
			for k, v := range ev.Fields {
				if k != "words" && k != "display_words" {
					e.Fields[k] = v
				}
			}
			frame = sseFrame("event", e)
		}
		b.deliver(cl, frame)
	}
}

// deliver queues a frame for a stream; one that fell too far behind is
// cut (its page reconnects and starts from a snapshot). b.mu held.
func (b *Board) deliver(cl *boardClient, frame []byte) {
	select {
	case cl.c <- frame:
	default:
		delete(b.clients, cl)
		close(cl.c)
	}
}

// sseFrame is one Server-Sent Event.
func sseFrame(event string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(`{}`)
	}
	var f bytes.Buffer
	f.Grow(len(event) + len(data) + 16)
	f.WriteString("event: ")
	f.WriteString(event)
	f.WriteString("\ndata: ")
	f.Write(data)
	f.WriteString("\n\n")
	return f.Bytes()
}

// list is every call on the board, the newest first. b.mu held.
func (b *Board) list() []boardSummary {
	out := make([]boardSummary, 0, len(b.model))
	for _, c := range b.model {
		out = append(out, c.summary())
	}
	slices.SortFunc(out, func(x, y boardSummary) int { return cmp.Or(cmp.Compare(y.Since, x.Since), strings.Compare(x.ID, y.ID)) })
	return out
}

// access says whether r may read the board or act on its calls, and
// answers it when not: with http.board_token set, the request must carry
// it as a bearer token (never in the URL, which logs keep); without, only
// clients on this host are served, as /events.
func (b *Board) access(w http.ResponseWriter, r *http.Request) bool {
	token := *b.token.Load()
	if token == "" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Unmap().IsLoopback() {
			return true
		}
		http.Error(w, "no token is configured (http.board_token): only clients on the gateway's host are served", http.StatusForbidden)
		return false
	}
	if tokenMatches(r.Header.Get("Authorization"), "Bearer "+token) {
		return true
	}
	unauthorized(w)
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// serveAsset serves the page, its script and style: no data, no token.
func (b *Board) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := b.assets[r.URL.Path]
	body, err := web.ReadFile("web/" + a.name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	w.Write(body)
}

func (b *Board) serveList(w http.ResponseWriter, r *http.Request) {
	if !b.access(w, r) {
		return
	}
	b.mu.Lock()
	calls := b.list()
	b.mu.Unlock()
	writeJSON(w, struct {
		Now   int64          `json:"now"`
		Calls []boardSummary `json:"calls"`
	}{time.Now().UnixMilli(), calls})
}

func (b *Board) serveCall(w http.ResponseWriter, r *http.Request) {
	if !b.access(w, r) {
		return
	}
	id := r.PathValue("id")
	if !validCallID(id) {
		http.Error(w, "bad call id", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	c := b.model[id]
	var d boardDetail
	if c != nil {
		d = c.detail()
	}
	b.mu.Unlock()
	if c == nil {
		http.Error(w, "no such live call", http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

// servePause pauses or resumes a live call. The request must carry the
// header X-Callscribe-Board, which a page of another site cannot send
// without the gateway's leave (CORS), whatever the token.
func (b *Board) servePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !b.access(w, r) {
			return
		}
		if r.Header.Get("X-Callscribe-Board") == "" {
			http.Error(w, "the X-Callscribe-Board header is required", http.StatusForbidden)
			return
		}
		id := r.PathValue("id")
		if !validCallID(id) {
			http.Error(w, "bad call id", http.StatusBadRequest)
			return
		}
		if err := b.calls.Pause(id, paused, "http"); err != nil {
			http.Error(w, "no such live call", http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]any{"call_id": id, "paused": paused})
	}
}

// serveStream is the board's one event stream (SSE): a snapshot of every
// call, then the changes ("calls": at once for a call that came, went or
// changed state, words every Flush); with ?follow=<call id>
// also that call with its transcript so far ("call") and then each of its
// events as published ("event"; words and display_words left out). It
// takes a slot of http.max_event_streams.
func (b *Board) serveStream(w http.ResponseWriter, r *http.Request) {
	if !b.access(w, r) {
		return
	}
	follow := r.URL.Query().Get("follow")
	if follow != "" && !validCallID(follow) {
		http.Error(w, "bad call id", http.StatusBadRequest)
		return
	}
	if n := b.slots.active.Add(1); n > int64(b.slots.Max) {
		b.slots.active.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many event streams", http.StatusServiceUnavailable)
		return
	}
	defer b.slots.active.Add(-1)
	cl := &boardClient{c: make(chan []byte, b.opts.Buffer), follow: follow}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	now := time.Now().UnixMilli()
	first := sseFrame("snapshot", struct {
		Now   int64          `json:"now"`
		Calls []boardSummary `json:"calls"`
	}{now, b.list()})
	if follow != "" {
		if c := b.model[follow]; c != nil {
			first = append(first, sseFrame("call", c.detail())...)
		} else {
			first = append(first, sseFrame("call", map[string]any{"id": follow, "gone": true})...)
		}
	}
	b.clients[cl] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.clients[cl] {
			delete(b.clients, cl)
			close(cl.c)
		}
		b.mu.Unlock()
	}()

	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // the stream outlives the read timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	if _, err := w.Write(first); err != nil || rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(b.opts.Heartbeat)
	defer beat.Stop()
	ctx := r.Context()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case f, ok := <-cl.c:
			if !ok {
				return // cut (fell behind) or the board closed
			}
			_, err = w.Write(f)
			for more := true; more && err == nil; { // what else waits, in one flush
				select {
				case f, ok := <-cl.c:
					if !ok {
						rc.Flush()
						return
					}
					_, err = w.Write(f)
				default:
					more = false
				}
			}
		case <-beat.C:
			_, err = fmt.Fprint(w, ": ping "+strconv.FormatInt(time.Now().UnixMilli(), 10)+"\n\n")
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// tailWords is the last n words of s.
func tailWords(s string, n int) string {
	end := len(s)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' && i+1 < end && s[i+1] != ' ' {
			if n--; n == 0 {
				return "… " + s[i+1:]
			}
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// callView is what the board reads of a call in the registry.
type callView struct {
	id, source string
	peer       netip.Addr
	legs       []string
	state      int
	paused     bool
	redact     bool
}

// view reads the call. Its legs are read once it has left admitted:
// Admit makes them after the call is in the registry, and Start (or End)
// comes after Admit, under c.mu.
func (c *call) view() callView {
	v := callView{id: c.id, source: c.source, peer: c.peer, paused: c.paused.Load(), redact: c.redact.On()}
	c.mu.Lock()
	v.state = c.state
	c.mu.Unlock()
	if v.state != admitted {
		for _, l := range c.legs {
			v.legs = append(v.legs, l.name)
		}
	}
	return v
}

// views reads every call of the registry, for the board. A call's lock is
// taken after the registry's is let go (Start takes them the other way).
func (g *Calls) views() []callView {
	g.mu.Lock()
	cs := make([]*call, 0, len(g.calls))
	for _, c := range g.calls {
		cs = append(cs, c)
	}
	g.mu.Unlock()
	out := make([]callView, len(cs))
	for i, c := range cs {
		out[i] = c.view()
	}
	return out
}

// view reads one call of the registry.
func (g *Calls) view(id string) (callView, bool) {
	g.mu.Lock()
	c := g.calls[id]
	g.mu.Unlock()
	if c == nil {
		return callView{}, false
	}
	return c.view(), true
}
