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
	p := newPublisher(t, Options{Addr: "127.0.0.1:1", SpoolMax: 10}) // nothing listens there
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
	p.Publish(Event{Type: CallEnd, CallID: "c3"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, rd.Addr, "stt:call:{c3}")
	if len(msgs) != 11 {
		t.Fatalf("%d entries", len(msgs))
	}
	for i, m := range msgs {
		if m.Values["seq"] != strconv.Itoa(i+1) {
			t.Fatalf("entry %d has seq %v", i, m.Values["seq"])
		}
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
func TestSpoolFileWriteErrorsCounted(t *testing.T) {
	rd := transcripttest.Start(t)
	p := newPublisher(t, Options{Addr: rd.Addr, SpoolFile: filepath.Join(t.TempDir(), "spool.jsonl"), Logger: quiet()})
	defer p.Close()
	p.mu.Lock()
	p.file.Close() // as a full or vanished disk would
	p.mu.Unlock()
	p.Publish(Event{Type: Final, CallID: "c5", Fields: map[string]string{"text": "kept"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.SpoolFileErrs != 1 || st.Published != 1 {
		t.Errorf("stats %+v", st)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
