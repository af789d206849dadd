// Package transcript holds the transcript event schema and its delivery to
// Redis Streams (schema version 1, see DESIGN.md): a publisher that never
// blocks its callers, spools while Redis is away and replays in order.
package transcript

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event types.
const (
	CallStart = "call.start"
	Partial   = "partial"
	Final     = "final"
	DTMF      = "dtmf"
	CallEnd   = "call.end"
)

// Event is one transcript event. Seq and TS are set by the publisher.
type Event struct {
	Type   string            `json:"type"`
	CallID string            `json:"call_id"`
	Seq    int64             `json:"seq"`
	TS     int64             `json:"ts"`     // unix ms when produced
	Fields map[string]string `json:"fields"` // the type's own fields: leg, utt, text, ...
}

// key of the utterance a partial belongs to, for coalescing.
func (e *Event) uttKey() string {
	return e.CallID + "\x00" + e.Fields["leg"] + "\x00" + e.Fields["utt"]
}

// Options configure the publisher. Zero fields take the defaults named.
type Options struct {
	// Addr of Redis; default 127.0.0.1:6379.
	Addr string
	// Cluster: Addr is a node of a Redis Cluster, the others are found from
	// it. A call's stream and its firehose shard may live on different nodes.
	Cluster bool
	// Prefix of every key; default "stt".
	Prefix string
	// Shards of the firehose stt:events:<shard>; default 1.
	Shards int
	// CallMaxLen caps each per-call stream (MAXLEN ~); default 10000.
	CallMaxLen int64
	// FirehoseMaxLen caps each firehose stream (MAXLEN ~); default 1000000.
	FirehoseMaxLen int64
	// Expire is set on a call's stream when the call ends; default 24 h.
	Expire time.Duration
	// SpoolMax bounds the events held while Redis is unreachable; partials
	// go first (oldest first), finals and call events are never dropped.
	// Default 100000.
	SpoolMax int
	// Batch is the most events per pipeline; default 512.
	Batch int
	// SpoolFile, when set, keeps every undelivered event in an append-only
	// file too (one JSON object a line), so that a restarted gateway
	// replays what a crash left undelivered. It is emptied whenever
	// everything has reached Redis. Default: memory only.
	SpoolFile string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:6379"
	}
	if o.Prefix == "" {
		o.Prefix = "stt"
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.CallMaxLen <= 0 {
		o.CallMaxLen = 10000
	}
	if o.FirehoseMaxLen <= 0 {
		o.FirehoseMaxLen = 1000000
	}
	if o.Expire <= 0 {
		o.Expire = 24 * time.Hour
	}
	if o.SpoolMax <= 0 {
		o.SpoolMax = 100000
	}
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are the publisher's counters.
type Stats struct {
	Published      int64 // events written to Redis
	Errors         int64 // failed pipeline rounds
	Coalesced      int64 // partials replaced by a newer one before delivery
	DroppedPartial int64 // partials dropped to keep the spool bounded
	SpoolDepth     int   // events waiting
	SpoolMax       int   // the bound of SpoolDepth (Options.SpoolMax)
	SpoolFileBytes int64 // size of the spool file (0 without one)
	SpoolFileErrs  int64 // failed writes to the spool file (the memory spool still has those events)
	Connected      bool  // the last round reached Redis
	EverConnected  bool  // some round has reached Redis
}

// Publisher delivers events to Redis at least once, in order per call.
type Publisher struct {
	opts   Options
	client redis.UniversalClient

	mu      sync.Mutex
	queue   []*Event
	live    int // events in queue that are not tombstones
	trimAt  int // no partial lies in queue before this index
	seq     map[string]int64
	partial map[string]*Event // newest queued partial per utterance
	stats   Stats
	wake    chan struct{}
	file    *os.File // SpoolFile, nil when off
	fileLen int64    // bytes in file
	fileCap int64    // compact the file once it grows past this
	closed  bool
	quit    chan struct{}
	done    chan struct{}
}

// NewPublisher starts delivering to Redis. It does not wait for Redis: while
// it is away events are spooled. With a SpoolFile, the events a previous
// run left in it are delivered first; an unreadable spool file is an error.
func NewPublisher(opts Options) (*Publisher, error) {
	opts.defaults()
	p := &Publisher{
		opts: opts,
		client: redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{opts.Addr}, IsClusterMode: opts.Cluster,
			MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}),
		seq:     map[string]int64{},
		partial: map[string]*Event{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.SpoolFile != "" {
		if err := p.openSpool(); err != nil {
			p.client.Close()
			return nil, err
		}
	}
	go p.run()
	return p, nil
}

// openSpool replays the spool file into the queue and keeps it open for
// appending.
func (p *Publisher) openSpool() error {
	f, err := os.OpenFile(p.opts.SpoolFile, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("transcript: spool file: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if line > 1 { // a torn last line from a crash is expected; others are not
				p.opts.Logger.Warn("transcript: spool file line skipped", "file", p.opts.SpoolFile, "line", line, "err", err)
			}
			continue
		}
		p.queue = append(p.queue, &e)
		p.live++
		p.seq[e.CallID] = max(p.seq[e.CallID], e.Seq)
		if e.Type == CallEnd {
			delete(p.seq, e.CallID)
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return fmt.Errorf("transcript: spool file %s: %w", p.opts.SpoolFile, err)
	}
	p.file = f
	if st, err := f.Stat(); err == nil {
		p.fileLen = st.Size()
	}
	p.fileCap = max(spoolCompactMin, 2*p.fileLen)
	if len(p.queue) > 0 {
		p.opts.Logger.Info("transcript: replaying spool file", "events", len(p.queue))
	}
	return nil
}

// CallKey is the per-call stream of callID.
func (p *Publisher) CallKey(callID string) string {
	return p.opts.Prefix + ":call:{" + callID + "}"
}

// FirehoseKey is the shard stream callID's events go to.
func (p *Publisher) FirehoseKey(callID string) string {
	h := fnv.New32a()
	h.Write([]byte(callID))
	return p.opts.Prefix + ":events:" + strconv.Itoa(int(h.Sum32()%uint32(p.opts.Shards)))
}

// Publish queues an event; it never blocks on Redis. A partial replaces a
// queued partial of the same utterance.
func (p *Publisher) Publish(ev Event) {
	e := &ev
	if e.TS == 0 {
		e.TS = time.Now().UnixMilli()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.seq[e.CallID]++
	e.Seq = p.seq[e.CallID]
	switch e.Type {
	case Partial:
		if old := p.partial[e.uttKey()]; old != nil {
			old.Type = "" // tombstone: skipped on delivery
			p.live--
			p.stats.Coalesced++
		}
		p.partial[e.uttKey()] = e
	case Final:
		delete(p.partial, e.uttKey())
	case CallEnd:
		delete(p.seq, e.CallID)
	}
	p.queue = append(p.queue, e)
	p.live++
	p.trim()
	if p.file != nil {
		b, _ := json.Marshal(e)
		p.spoolWrite(append(b, '\n'))
		if p.fileLen > p.fileCap {
			p.compact()
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// spoolCompactMin is the smallest spool file that is compacted.
const spoolCompactMin = 1 << 20

// spoolWrite appends to the spool file, counting failures. p.mu held.
func (p *Publisher) spoolWrite(b []byte) {
	n, err := p.file.Write(b)
	p.fileLen += int64(n)
	if err != nil {
		if p.stats.SpoolFileErrs == 0 || p.stats.SpoolFileErrs%1000 == 0 {
			p.opts.Logger.Error("transcript: spool file write failed; events are held in memory only", "file", p.opts.SpoolFile, "err", err)
		}
		p.stats.SpoolFileErrs++
	}
}

// compact rewrites the spool file with only the events still waiting
// (replaced and dropped partials go), so that its size follows the memory
// spool's bound however long Redis is away. p.mu held.
func (p *Publisher) compact() {
	tmp := p.opts.SpoolFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		p.stats.SpoolFileErrs++
		p.fileCap *= 2 // try again later
		return
	}
	w := bufio.NewWriter(f)
	var n int64
	for _, e := range p.queue {
		if e.Type == "" {
			continue
		}
		b, _ := json.Marshal(e)
		w.Write(b)
		w.WriteByte('\n')
		n += int64(len(b)) + 1
	}
	if err := w.Flush(); err != nil || os.Rename(tmp, p.opts.SpoolFile) != nil {
		f.Close()
		os.Remove(tmp)
		p.stats.SpoolFileErrs++
		p.fileCap *= 2
		return
	}
	p.file.Close()
	p.file, p.fileLen = f, n
	p.fileCap = max(spoolCompactMin, 2*n)
}

// trim drops the oldest partials while the spool is over its bound. It
// resumes where it last stopped, so a long outage costs no rescans. p.mu held.
func (p *Publisher) trim() {
	for ; p.live > p.opts.SpoolMax && p.trimAt < len(p.queue); p.trimAt++ {
		if e := p.queue[p.trimAt]; e.Type == Partial {
			e.Type = ""
			if p.partial[e.uttKey()] == e {
				delete(p.partial, e.uttKey())
			}
			p.stats.DroppedPartial++
			p.live--
		}
	}
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.SpoolMax = p.opts.SpoolMax
	s.SpoolDepth = p.live
	s.SpoolFileBytes = p.fileLen
	return s
}

// Ping tells whether Redis answers now.
func (p *Publisher) Ping(ctx context.Context) error {
	return p.client.Ping(ctx).Err()
}

func (p *Publisher) run() {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	var batch []Event
	for {
		// Copies, so that coalescing may mark queued events meanwhile.
		p.mu.Lock()
		n := min(len(p.queue), p.opts.Batch)
		batch = batch[:0]
		for _, e := range p.queue[:n] {
			batch = append(batch, *e)
		}
		p.mu.Unlock()
		if n == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.quit:
				return
			}
		}
		err := p.write(batch)
		p.mu.Lock()
		if err == nil {
			for _, e := range p.queue[:n] {
				if e.Type == Partial && p.partial[e.uttKey()] == e {
					delete(p.partial, e.uttKey())
				}
				if e.Type != "" { // not marked since the copy was taken
					p.stats.Published++
					p.live--
				}
			}
			p.queue = p.queue[n:]
			p.trimAt = max(0, p.trimAt-n)
			if p.file != nil && len(p.queue) == 0 && p.fileLen > 0 {
				if err := p.file.Truncate(0); err == nil { // all delivered
					p.fileLen = 0
				}
			}
			p.stats.Connected = true
			p.stats.EverConnected = true
			backoff = 50 * time.Millisecond
		} else {
			p.stats.Errors++
			p.stats.Connected = false
		}
		p.mu.Unlock()
		if err != nil {
			p.opts.Logger.Warn("transcript: redis unavailable, spooling", "err", err, "spooled", len(batch))
			select {
			case <-time.After(backoff):
			case <-p.quit:
				return
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// write sends a batch in one pipeline. A partly applied batch is sent again
// whole: consumers dedupe on call_id+seq.
func (p *Publisher) write(batch []Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := p.client.Pipeline()
	for i := range batch {
		e := &batch[i]
		if e.Type == "" {
			continue
		}
		vals := make([]any, 0, 10+2*len(e.Fields))
		vals = append(vals, "v", "1", "type", e.Type, "call_id", e.CallID, "seq", e.Seq, "ts", e.TS)
		for k, v := range e.Fields {
			vals = append(vals, k, v)
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.CallKey(e.CallID), MaxLen: p.opts.CallMaxLen, Approx: true, Values: vals})
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.FirehoseKey(e.CallID), MaxLen: p.opts.FirehoseMaxLen, Approx: true, Values: vals})
		if e.Type == CallEnd {
			pipe.Expire(ctx, p.CallKey(e.CallID), p.opts.Expire)
		}
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("transcript: redis pipeline: %w", err)
	}
	return nil
}

// Flush waits until the spool is empty or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if p.Stats().SpoolDepth == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transcript: flush: %d events left: %w", p.Stats().SpoolDepth, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops delivery; call Flush first to deliver what is queued.
// Idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.quit)
	<-p.done
	if p.file != nil {
		p.file.Close()
	}
	return p.client.Close()
}
