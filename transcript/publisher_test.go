package transcript

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/transcript/transcripttest"
)

func read(t *testing.T, addr, key string) []redis.XMessage {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	msgs, err := c.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestWireFormat(t *testing.T) {
	rd := transcripttest.Start(t)
	p := newPublisher(t, Options{Addr: rd.Addr, Expire: time.Hour})
	defer p.Close()
	p.Publish(Event{Type: CallStart, CallID: "c1", Fields: map[string]string{"source": "sip", "hdr:X-Id": "42"}})
	p.Publish(Event{Type: Partial, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "HEL"}})
	p.Publish(Event{Type: Final, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "HELLO"}})
	p.Publish(Event{Type: CallEnd, CallID: "c1", Fields: map[string]string{"reason": "bye"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{c1}")
	if len(msgs) != 4 {
		t.Fatalf("%d entries", len(msgs))
	}
	for i, m := range msgs {
		if m.Values["v"] != "1" || m.Values["call_id"] != "c1" || m.Values["seq"] != strconv.Itoa(i+1) || m.Values["ts"] == "" {
			t.Errorf("entry %d: %v", i, m.Values)
		}
	}
	if msgs[0].Values["hdr:X-Id"] != "42" || msgs[2].Values["text"] != "HELLO" || msgs[3].Values["type"] != CallEnd {
		t.Errorf("%v", msgs)
	}
	if fh := read(t, rd.Addr, "stt:events:0"); len(fh) != 4 {
		t.Errorf("firehose has %d", len(fh))
	}
	c := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer c.Close()
	if ttl := c.TTL(ctx, "stt:call:{c1}").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("ttl %v", ttl)
	}
}

// Redis goes away mid-call and comes back: every final arrives, in order,
// and the spool counters moved.
func TestOutageSpoolsAndReplays(t *testing.T) {
	rd := transcripttest.Start(t)
	p := newPublisher(t, Options{Addr: rd.Addr})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.Publish(Event{Type: CallStart, CallID: "c2"})
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rd.Stop()
	for i := range 50 {
		for j := range 5 { // partials of utterance i, coalesced while spooled
			p.Publish(Event{Type: Partial, CallID: "c2", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(i), "text": fmt.Sprint(j)}})
		}
		p.Publish(Event{Type: Final, CallID: "c2", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(i), "text": fmt.Sprint("final ", i)}})
	}
	p.Publish(Event{Type: CallEnd, CallID: "c2"})
	for start := time.Now(); p.Stats().Errors < 2; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no failed round during the outage")
		}
	}
	st := p.Stats()
	if st.SpoolDepth != 101 || st.Connected || st.Coalesced != 200 {
		t.Fatalf("during the outage: %+v", st)
	}
	rd.Restart()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{c2}")
	var finals []string
	last := int64(0)
	for _, m := range msgs {
		seq, _ := strconv.ParseInt(m.Values["seq"].(string), 10, 64)
		if seq <= last {
			t.Fatalf("seq %d after %d", seq, last)
		}
		last = seq
		if m.Values["type"] == Final {
			finals = append(finals, m.Values["text"].(string))
		}
	}
	if len(finals) != 50 {
		t.Fatalf("%d finals arrived", len(finals))
	}
	for i, f := range finals {
		if f != fmt.Sprint("final ", i) {
			t.Fatalf("final %d is %q", i, f)
		}
	}
	if st := p.Stats(); st.Errors == 0 || !st.Connected {
		t.Errorf("after: %+v", st)
	}
}

func TestSpoolIsBoundedButKeepsFinals(t *testing.T) {
	p := newPublisher(t, Options{Addr: "127.0.0.1:1", SpoolMaxBytes: 2000}) // nothing listens there
	defer p.Close()
	for i := range 100 {
		p.Publish(Event{Type: Partial, CallID: "c", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(i)}})
		p.Publish(Event{Type: Final, CallID: "c", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(i)}})
	}
	st := p.Stats()
	if st.SpoolDepth != 100 || st.DroppedPartial != 100 {
		t.Errorf("%+v", st)
	}
}

func newPublisher(t *testing.T, o Options) *Publisher {
	t.Helper()
	p, err := NewPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A gateway that dies with events undelivered replays them from the spool
// file when it starts again.
func TestSpoolFileSurvivesRestart(t *testing.T) {
	rd := transcripttest.Start(t)
	rd.Stop()
	file := filepath.Join(t.TempDir(), "spool.jsonl")
	p := newPublisher(t, Options{Addr: rd.Addr, SpoolFile: file})
	for i := range 10 {
		p.Publish(Event{Type: Final, CallID: "c3", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(i), "text": fmt.Sprint("f", i)}})
	}
	p.Close() // the process dies here, Redis still away
	if st, _ := os.Stat(file); st == nil || st.Size() == 0 {
		t.Fatal("nothing in the spool file")
	}
	rd.Restart()
	p = newPublisher(t, Options{Addr: rd.Addr, SpoolFile: file})
	defer p.Close()
	// The call was live in the process that died: the replay ends it, and
	// nothing of it is taken after that.
	p.Publish(Event{Type: Final, CallID: "c3", Fields: map[string]string{"leg": "caller", "utt": "10", "text": "late"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{c3}")
	if len(msgs) != 11 {
		for _, m := range msgs {
			t.Log(m.Values)
		}
		t.Fatalf("%d entries", len(msgs))
	}
	for i, m := range msgs {
		if m.Values["seq"] != strconv.Itoa(i+1) {
			t.Fatalf("entry %d has seq %v", i, m.Values["seq"])
		}
	}
	if last := msgs[10].Values; last["type"] != CallEnd || last["reason"] != "restart" {
		t.Errorf("last entry %v, want call.end reason restart", last)
	}
	if st := p.Stats(); st.Late != 1 || st.Recovered != 1 {
		t.Errorf("stats %+v", st)
	}
	if st, _ := os.Stat(file); st.Size() != 0 {
		t.Errorf("spool file holds %d bytes after delivery", st.Size())
	}
	if _, err := NewPublisher(Options{SpoolFile: filepath.Join(t.TempDir(), "no", "such", "dir", "f")}); err == nil {
		t.Error("unwritable spool file accepted")
	}
}

// A long outage with a spool file: the file is compacted to the events
// still waiting (the replaced partials go), so it stays about the size of
// the memory spool; a restart replays exactly those.
func TestSpoolFileStaysBounded(t *testing.T) {
	rd := transcripttest.Start(t)
	rd.Stop()
	file := filepath.Join(t.TempDir(), "spool.jsonl")
	p := newPublisher(t, Options{Addr: rd.Addr, SpoolFile: file, Logger: quiet()})
	text := strings.Repeat("WORD ", 40)
	for u := range 10 {
		for i := range 2000 { // partials of one utterance, each replacing the last
			p.Publish(Event{Type: Partial, CallID: "c4", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(u), "text": text + strconv.Itoa(i)}})
		}
		p.Publish(Event{Type: Final, CallID: "c4", Fields: map[string]string{"leg": "caller", "utt": strconv.Itoa(u), "text": text}})
	}
	for p.Stats().SpoolFileLag > 0 {
		time.Sleep(time.Millisecond)
	}
	st := p.Stats()
	fi, _ := os.Stat(file)
	// 20,000 partials of ~300 bytes would be 6 MB; compaction keeps it to
	// a multiple of what waits (the finals and the last partials).
	if fi == nil || fi.Size() > 3*spoolCompactMin || st.SpoolFileBytes != fi.Size() || st.SpoolFileErrs != 0 {
		t.Fatalf("spool file %v bytes, stats %+v", fi.Size(), st)
	}
	p.Close()
	rd.Restart()
	p = newPublisher(t, Options{Addr: rd.Addr, SpoolFile: file})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var finals int
	last := 0
	for _, m := range read(t, rd.Addr, "stt:call:{c4}") {
		seq, _ := strconv.Atoi(m.Values["seq"].(string))
		if seq <= last {
			t.Fatalf("seq %d after %d", seq, last)
		}
		last = seq
		if m.Values["type"] == Final {
			finals++
		}
	}
	if finals != 10 {
		t.Errorf("%d finals replayed, want 10", finals)
	}
}

// A spool file that cannot be written: counted, and the events still go
// to Redis from memory.
//
// Redis is away while the event is published: the file is only written
// for events that wait, and with Redis up an event published between the
// publisher's spool-file step and its read of the queue reaches Redis
// before the file is tried (rightly never written, so nothing to count).
func TestSpoolFileWriteErrorsCounted(t *testing.T) {
	rd := transcripttest.Start(t)
	p := newPublisher(t, Options{Addr: rd.Addr, SpoolFile: filepath.Join(t.TempDir(), "spool.jsonl"), Logger: quiet()})
	defer p.Close()
	p.mu.Lock()
	p.spool.f.Close() // as a full or vanished disk would
	p.mu.Unlock()
	rd.Stop()
	p.Publish(Event{Type: Final, CallID: "c5", Fields: map[string]string{"text": "kept"}})
	for start := time.Now(); p.Stats().SpoolFileErrs == 0; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the failed write was not counted: %+v", p.Stats())
		}
	}
	rd.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.SpoolFileErrs != 1 || st.Published != 1 {
		t.Errorf("stats %+v", st)
	}
	if msgs := read(t, rd.Addr, "stt:call:{c5}"); len(msgs) != 1 || msgs[0].Values["text"] != "kept" {
		t.Errorf("on redis: %v", msgs)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A gateway killed with calls in progress: the restarted instance ends each
// of them (call.end reason restart, seq after the last one on Redis); the
// streams expire from call.start on, not only after call.end.
func TestRestartEndsTheCallsLeftOpen(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := newPublisher(t, Options{Addr: rd.Addr, Instance: "gw1", Expire: time.Hour})
	for _, id := range []string{"open", "closed"} {
		p.Publish(NewCallStart(id, map[string]string{"source": "sip"}))
		p.Publish(NewFinal(id, Utterance{Leg: "caller", Text: "HELLO"}))
	}
	p.Publish(NewCallEnd("closed", "bye", 1000, nil))
	other := newPublisher(t, Options{Addr: rd.Addr, Instance: "gw2"})
	other.Publish(NewCallStart("elsewhere", nil))
	for _, q := range []*Publisher{p, other} {
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer c.Close()
	if ttl := c.TTL(ctx, "stt:call:{open}").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("a live call's stream has ttl %v", ttl)
	}
	if ids := c.HKeys(ctx, "stt:instance:{gw1}:calls").Val(); len(ids) != 1 || ids[0] != "open" {
		t.Errorf("open calls of gw1: %v", ids)
	}
	p.Close() // killed: no call.end for "open"
	other.Close()

	p = newPublisher(t, Options{Addr: rd.Addr, Instance: "gw1"})
	defer p.Close()
	p.Publish(NewCallStart("new", nil))
	for start := time.Now(); p.Stats().Recovered == 0 && time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{open}")
	last := msgs[len(msgs)-1].Values
	if len(msgs) != 3 || last["type"] != CallEnd || last["reason"] != "restart" || last["seq"] != "3" {
		t.Fatalf("the open call's stream: %v", msgs)
	}
	if n := len(read(t, rd.Addr, "stt:call:{closed}")); n != 3 {
		t.Errorf("the ended call has %d entries, want its 3", n)
	}
	if n := len(read(t, rd.Addr, "stt:call:{elsewhere}")); n != 1 {
		t.Errorf("another instance's call touched: %d entries", n)
	}
	if ids := c.HKeys(ctx, "stt:instance:{gw1}:calls").Val(); len(ids) != 1 || ids[0] != "new" {
		t.Errorf("open calls of gw1 after the restart: %v", ids)
	}
}

// call.end is the last event of a call: what comes after it is refused;
// a call id used again goes on counting, so (call_id, seq) never repeats.
func TestNothingAfterCallEnd(t *testing.T) {
	rd := transcripttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := newPublisher(t, Options{Addr: rd.Addr})
	defer p.Close()
	p.Publish(NewCallStart("c", nil))
	p.Publish(NewCallEnd("c", "bye", 10, nil))
	p.Publish(NewFinal("c", Utterance{Leg: "caller", Text: "LATE"}))
	p.Publish(NewCallStart("c", nil))
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{c}")
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprint(m.Values["type"], "/", m.Values["seq"]))
	}
	if want := "[call.start/1 call.end/2 call.start/3]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if st := p.Stats(); st.Late != 1 {
		t.Errorf("late %d, want 1", st.Late)
	}
}

// A long outage: replaced and dropped partials do not pile up in the queue,
// the memory held stays near its bound in bytes, and a queue of nothing but
// replaced partials is no proof that Redis was ever reached.
func TestSpoolBoundedInBytes(t *testing.T) {
	p := newPublisher(t, Options{Addr: "127.0.0.1:1", SpoolMaxBytes: 256 << 10, Logger: quiet()})
	defer p.Close()
	text := strings.Repeat("WORD ", 20)
	for u := range 1500 {
		for i := range 19 {
			p.Publish(NewPartial("c", Utterance{Leg: "caller", Utt: u, Text: text + strconv.Itoa(i)}))
		}
		p.Publish(NewFinal("c", Utterance{Leg: "caller", Utt: u, Text: text}))
	}
	p.mu.Lock()
	queued, live, bytes := len(p.queue), p.live, p.bytes
	p.mu.Unlock()
	st := p.Stats()
	if live != 1500 || st.SpoolDepth != 1500 {
		t.Errorf("%d events waiting, want the 1500 finals", live)
	}
	if queued > 2*live+1025 {
		t.Errorf("%d entries queued for %d live events", queued, live)
	}
	if bytes != st.SpoolBytes || st.DroppedPartial == 0 || st.Coalesced == 0 {
		t.Errorf("stats %+v", st)
	}
	q := newPublisher(t, Options{Addr: "127.0.0.1:1", Logger: quiet()})
	defer q.Close()
	for i := range 10 {
		q.Publish(NewPartial("c", Utterance{Leg: "caller", Text: strconv.Itoa(i)}))
	}
	for start := time.Now(); q.Stats().Errors == 0 && time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	if st := q.Stats(); st.EverConnected || st.Connected {
		t.Errorf("never reached Redis, yet %+v", st)
	}
}

// The spool file is written by the publisher's goroutine: a disk that
// stops taking writes (a FIFO nobody reads) does not block Publish.
func TestPublishDoesNotWaitForTheDisk(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stuck")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, Options{Addr: "127.0.0.1:1", SpoolFile: filepath.Join(dir, "spool.jsonl"), Logger: quiet()})
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // does not wait for a reader
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.spool.f.Close()
	p.spool.f = w // the disk from now on
	p.mu.Unlock()
	text := strings.Repeat("WORD ", 40)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 { // ~600 kB, ten times what the pipe holds
			p.Publish(NewFinal("c", Utterance{Leg: "caller", Utt: i, Text: text}))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on the spool file")
	}
	// Unblock the writer so that Close returns.
	r, err := os.OpenFile(fifo, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	p.Close()
	r.Close()
}
