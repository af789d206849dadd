// Package transcript holds the transcript event schema and its delivery to
// Redis Streams (schema version 1, docs/wire-format.md): a publisher that
// never blocks its callers, spools while Redis is away and replays in order,
// a consumer-group reader, and a follower of one call.
package transcript

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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

// size estimates what the event holds in memory, for the spool's bound.
func (e *Event) size() int64 {
	n := 96 + len(e.Type) + len(e.CallID)
	for k, v := range e.Fields {
		n += len(k) + len(v) + 32
	}
	return int64(n)
}

// Options configure the publisher; they are the redis section of the
// gateway's configuration file (the gateway's instance name joins them).
// DefaultOptions holds the file's defaults; a zero field takes the
// default its comment names.
type Options struct {
	// Addr is Redis's HOST:PORT; a name resolves through DNS (a Kubernetes
	// service). Default 127.0.0.1:6379.
	Addr string `yaml:"addr"`
	// Cluster says addr is a node of a Redis Cluster; the other nodes are
	// found from it. Each call's stream stays on one node (its key's hash
	// tag); a call's stream and its firehose shard may live on different
	// nodes.
	Cluster bool `yaml:"cluster"`
	// Conn: the user, the password and TLS.
	Conn `yaml:",inline"`
	// Prefix is every key's prefix: <prefix>:call:{<call_id>} and
	// <prefix>:events:<shard>. Default stt.
	Prefix string `yaml:"prefix"`
	// Shards is the number of firehose streams (shard = hash(call_id) mod
	// shards); default 1.
	Shards int `yaml:"shards"`
	// CallMaxLen caps each per-call stream (MAXLEN ~); default 10000.
	CallMaxLen int64 `yaml:"call_maxlen"`
	// FirehoseMaxLen caps each firehose stream (MAXLEN ~); default 1000000.
	FirehoseMaxLen int64 `yaml:"firehose_maxlen"`
	// Expire is the time to live of a call's stream: set with call.start
	// and renewed by every round that writes to it, so a call's stream
	// lives this long after its last event; default 24 h.
	Expire time.Duration `yaml:"expire"`
	// SpoolMaxBytes bounds the memory held by events waiting while Redis
	// is unreachable (bytes): beyond it the oldest partials are dropped;
	// finals and call events never are. Default 64 MiB.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// Batch is the most events per pipeline; default 512.
	Batch int `yaml:"-"`
	// SpoolFile also keeps every undelivered event in this append-only
	// file (one JSON object a line), replayed when the gateway starts again
	// after a crash. It is written by the publisher's goroutine, never by
	// Publish, emptied when everything is delivered and compacted to what
	// still waits as it grows, so it stays about the size of the memory
	// spool. Empty: memory only.
	SpoolFile string `yaml:"spool_file"`
	// Instance, when set, names this gateway: the calls it has open are
	// kept in Redis (Keys.Instance), and at start the calls a previous run
	// of the same instance left open are ended with call.end reason
	// "restart". Default: none.
	Instance string `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults of Options, the one place they are written (the gateway's
// configuration uses these).
const (
	DefaultAddr           = "127.0.0.1:6379"
	DefaultCallMaxLen     = 10000
	DefaultFirehoseMaxLen = 1000000
	DefaultExpire         = 24 * time.Hour
	DefaultSpoolMaxBytes  = 64 << 20
)

// DefaultOptions are the options a gateway publishes with when its file
// says nothing: the local Redis, one firehose shard.
func DefaultOptions() Options {
	return Options{Addr: DefaultAddr, Prefix: DefaultPrefix, Shards: 1, CallMaxLen: DefaultCallMaxLen,
		FirehoseMaxLen: DefaultFirehoseMaxLen, Expire: DefaultExpire, SpoolMaxBytes: DefaultSpoolMaxBytes}
}

// Validate checks every option as written (a zero that has a default is
// an error here); an error names the first bad one by its key in the
// redis section ("shards: ...").
func (o *Options) Validate() error {
	// Redis may be a name (a Kubernetes service, a managed instance).
	host, port, err := net.SplitHostPort(o.Addr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("addr: %q: want HOST:PORT", o.Addr)
	}
	if o.Prefix == "" || strings.ContainsAny(o.Prefix, " {}") {
		return fmt.Errorf("prefix: %q: want a non-empty key prefix without spaces or braces", o.Prefix)
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"shards", o.Shards > 0}, {"call_maxlen", o.CallMaxLen > 0}, {"firehose_maxlen", o.FirehoseMaxLen > 0},
		{"expire", o.Expire > 0}, {"spool_max_bytes", o.SpoolMaxBytes > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	return o.Conn.Validate()
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.CallMaxLen <= 0 {
		o.CallMaxLen = DefaultCallMaxLen
	}
	if o.FirehoseMaxLen <= 0 {
		o.FirehoseMaxLen = DefaultFirehoseMaxLen
	}
	if o.Expire <= 0 {
		o.Expire = DefaultExpire
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
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
	Late           int64 // events refused because their call had ended
	Recovered      int64 // calls of a previous run ended with reason restart
	SpoolDepth     int   // events waiting
	SpoolBytes     int64 // memory they hold (estimated)
	SpoolMaxBytes  int64 // the bound of SpoolBytes for partials (Options.SpoolMaxBytes)
	SpoolFileBytes int64 // size of the spool file (0 without one)
	SpoolFileErrs  int64 // failed writes to the spool file (the memory spool still has those events)
	SpoolFileLag   int   // events published but not yet in the spool file
	Connected      bool  // the last round reached Redis
	EverConnected  bool  // some round has reached Redis
}

// endedMax bounds how many ended calls the publisher remembers, so that an
// event for one of them is refused and a reused call id goes on counting.
const endedMax = 1 << 16

// Publisher delivers events to Redis at least once, in order per call.
// Within a call, seq counts from 1 and never repeats; call.end is the last
// event it takes for a call.
type Publisher struct {
	opts   Options
	keys   Keys
	client redis.UniversalClient

	mu       sync.Mutex
	queue    []*Event // waiting for Redis, in order; Type "" marks a dropped one
	live     int      // events in queue that are not dropped
	dead     int      // dropped events still in queue
	bytes    int64    // size of the live events
	trimAt   int      // no partial lies in queue before this index
	seq      map[string]int64
	open     map[string]bool  // calls started by this run and not ended
	ended    map[string]int64 // last seq of recently ended calls
	endedQ   []string         // ended, oldest first, for eviction
	partial  map[string]*Event
	stats    Stats
	wake     chan struct{}
	spool    *spool // nil without a SpoolFile
	fileQ    []*Event
	fileBusy int                        // events taken from fileQ and being written
	subs     map[*Subscription]struct{} // subscribe.go
	closed   bool
	quit     chan struct{}
	done     chan struct{}
}

// NewPublisher starts delivering to Redis. It does not wait for Redis: while
// it is away events are spooled. With a SpoolFile, the events a previous
// run left in it are delivered first; an unreadable spool file is an error.
func NewPublisher(opts Options) (*Publisher, error) {
	opts.defaults()
	client, err := opts.Conn.NewClient(opts.Addr, opts.Cluster, redis.UniversalOptions{MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:    opts,
		keys:    Keys{Prefix: opts.Prefix, Shards: opts.Shards},
		client:  client,
		seq:     map[string]int64{},
		open:    map[string]bool{},
		ended:   map[string]int64{},
		partial: map[string]*Event{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.SpoolFile != "" {
		sp, events, err := openSpool(opts.SpoolFile, opts.Logger)
		if err != nil {
			p.client.Close()
			return nil, err
		}
		p.spool = sp
		prev := map[string]bool{} // calls with events in the spool and no call.end
		for _, e := range events {
			p.enqueue(e)
			p.seq[e.CallID] = max(p.seq[e.CallID], e.Seq)
			if e.Type == CallEnd {
				delete(prev, e.CallID)
				p.forget(e.CallID)
			} else {
				prev[e.CallID] = true
			}
		}
		if len(events) > 0 {
			opts.Logger.Info("transcript: replaying spool file", "events", len(events))
		}
		// Calls with events in the spool and no call.end were open when the
		// previous run stopped: they end now, after their last spooled event.
		for id := range prev {
			e := p.stamp(NewCallEnd(id, "restart", 0, nil))
			p.forget(id)
			p.enqueue(e)
			p.fileQ = append(p.fileQ, e)
			p.stats.Recovered++
		}
	}
	go p.run()
	return p, nil
}

// Keys is the key scheme the publisher writes.
func (p *Publisher) Keys() Keys { return p.keys }

// Publish queues an event; it never blocks on Redis or on the disk. A
// partial replaces a queued partial of the same utterance. An event for a
// call that has ended (its call.end was published) is refused and counted.
func (p *Publisher) Publish(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if _, over := p.ended[ev.CallID]; over && ev.Type != CallStart {
		p.stats.Late++
		return
	}
	e := p.stamp(ev)
	switch e.Type {
	case CallStart:
		p.open[e.CallID] = true
	case CallEnd:
		p.forget(e.CallID)
	}
	p.enqueue(e)
	p.deliver(e)
	if p.spool != nil {
		p.fileQ = append(p.fileQ, e)
	}
	p.trim()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stamp gives an event its time and the call's next seq. p.mu held.
func (p *Publisher) stamp(ev Event) *Event {
	e := &ev
	if e.TS == 0 {
		e.TS = time.Now().UnixMilli()
	}
	if last, ok := p.ended[e.CallID]; ok { // a reused call id goes on counting
		delete(p.ended, e.CallID)
		p.seq[e.CallID] = last
	}
	p.seq[e.CallID]++
	e.Seq = p.seq[e.CallID]
	return e
}

// forget moves a call to the recently ended ones. p.mu held.
func (p *Publisher) forget(callID string) {
	p.ended[callID] = p.seq[callID]
	p.endedQ = append(p.endedQ, callID)
	delete(p.seq, callID)
	delete(p.open, callID)
	if len(p.endedQ) > endedMax {
		old := p.endedQ[0]
		p.endedQ = p.endedQ[1:]
		if _, again := p.seq[old]; !again {
			delete(p.ended, old)
		}
	}
}

// enqueue appends to the queue, coalescing partials. p.mu held.
func (p *Publisher) enqueue(e *Event) {
	switch e.Type {
	case Partial:
		if old := p.partial[e.uttKey()]; old != nil {
			p.drop(old)
			p.stats.Coalesced++
		}
		p.partial[e.uttKey()] = e
	case Final:
		delete(p.partial, e.uttKey())
	}
	p.queue = append(p.queue, e)
	p.live++
	p.bytes += e.size()
}

// drop marks a queued event dropped; the queue is compacted once dropped
// events outnumber live ones, so replaced partials cost nothing for long.
// p.mu held.
func (p *Publisher) drop(e *Event) {
	p.bytes -= e.size()
	e.Type = ""
	p.live--
	p.dead++
	if p.dead > 1024 && p.dead > p.live {
		n := 0
		for _, x := range p.queue {
			if x.Type != "" {
				p.queue[n] = x
				n++
			}
		}
		clear(p.queue[n:])
		p.queue = p.queue[:n]
		p.dead, p.trimAt = 0, 0
	}
}

// trim drops the oldest partials while the spool is over its bound. It
// resumes where it last stopped, so a long outage costs no rescans. p.mu held.
func (p *Publisher) trim() {
	for p.bytes > p.opts.SpoolMaxBytes && p.trimAt < len(p.queue) {
		e := p.queue[p.trimAt]
		p.trimAt++
		if e.Type == Partial {
			if p.partial[e.uttKey()] == e {
				delete(p.partial, e.uttKey())
			}
			p.stats.DroppedPartial++
			p.drop(e) // may compact the queue and reset trimAt
		}
	}
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.SpoolMaxBytes = p.opts.SpoolMaxBytes
	s.SpoolDepth = p.live
	s.SpoolBytes = p.bytes
	s.SpoolFileLag = len(p.fileQ) + p.fileBusy
	if p.spool != nil {
		s.SpoolFileBytes, s.SpoolFileErrs = p.spool.size(), p.spool.errs
	}
	return s
}

// Ping tells whether Redis answers now.
func (p *Publisher) Ping(ctx context.Context) error {
	return p.client.Ping(ctx).Err()
}

func (p *Publisher) run() {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	recovered := p.opts.Instance == ""
	var batch []Event
	var n int
	for {
		p.spoolFile()
		if !recovered {
			if err := p.recoverInstance(); err != nil {
				p.opts.Logger.Warn("transcript: open calls of the previous run not read yet", "err", err)
			} else {
				recovered = true
			}
		}
		// Copies, so that coalescing may mark queued events meanwhile.
		p.mu.Lock()
		n = min(len(p.queue), p.opts.Batch)
		batch = batch[:0]
		for _, e := range p.queue[:n] {
			if e.Type != "" {
				batch = append(batch, *e)
			}
		}
		if n > 0 && len(batch) == 0 { // only dropped events: nothing to send
			p.queue = p.queue[n:]
			p.dead -= n
			p.trimAt = max(0, p.trimAt-n)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		var err error
		if n > 0 {
			err = p.write(batch)
		}
		if n == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.quit:
				p.spoolFile()
				return
			}
		}
		p.mu.Lock()
		if err == nil {
			for _, e := range p.queue[:n] {
				if e.Type == Partial && p.partial[e.uttKey()] == e {
					delete(p.partial, e.uttKey())
				}
				if e.Type != "" { // not dropped since the copy was taken
					p.stats.Published++
					p.live--
					p.bytes -= e.size()
				} else {
					p.dead--
				}
			}
			clear(p.queue[:n])
			p.queue = p.queue[n:]
			p.trimAt = max(0, p.trimAt-n)
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
				p.spoolFile()
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
	touched := map[string]bool{}
	for i := range batch {
		e := &batch[i]
		vals := make([]any, 0, 10+2*len(e.Fields))
		vals = append(vals, "v", SchemaVersion, "type", e.Type, "call_id", e.CallID, "seq", e.Seq, "ts", e.TS)
		for k, v := range e.Fields {
			vals = append(vals, k, v)
		}
		key := p.keys.Call(e.CallID)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: p.opts.CallMaxLen, Approx: true, Values: vals})
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.keys.FirehoseOf(e.CallID), MaxLen: p.opts.FirehoseMaxLen, Approx: true, Values: vals})
		touched[key] = true
		if p.opts.Instance != "" {
			switch e.Type {
			case CallStart:
				pipe.HSet(ctx, p.keys.Instance(p.opts.Instance), e.CallID, e.TS)
			case CallEnd:
				pipe.HDel(ctx, p.keys.Instance(p.opts.Instance), e.CallID)
			}
		}
	}
	for key := range touched {
		pipe.Expire(ctx, key, p.opts.Expire)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("transcript: redis pipeline: %w", err)
	}
	return nil
}

// recoverInstance ends the calls a previous run of this instance left open
// in Redis: each gets call.end reason restart, its seq after the last one
// on its stream.
func (p *Publisher) recoverInstance() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	open, err := p.client.HGetAll(ctx, p.keys.Instance(p.opts.Instance)).Result()
	if err != nil {
		return fmt.Errorf("transcript: read open calls: %w", err)
	}
	for id, started := range open {
		p.mu.Lock()
		_, ended := p.ended[id]
		skip := p.open[id] || ended
		p.mu.Unlock()
		if skip { // started by this run, or ended by the spool's replay
			continue
		}
		last, err := p.client.XRevRangeN(ctx, p.keys.Call(id), "+", "-", 1).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("transcript: read the last event of %s: %w", id, err)
		}
		var seq int64
		if len(last) > 0 {
			s, _ := last[0].Values["seq"].(string)
			seq, _ = strconv.ParseInt(s, 10, 64)
		}
		p.mu.Lock()
		if !p.open[id] {
			p.seq[id] = max(p.seq[id], seq)
			var d int64
			if ms, err := strconv.ParseInt(started, 10, 64); err == nil && ms > 0 {
				d = time.Now().UnixMilli() - ms
			}
			e := p.stamp(NewCallEnd(id, "restart", d, nil))
			p.forget(id)
			// Ahead of this run's events: it closes the previous run.
			p.queue = append([]*Event{e}, p.queue...)
			p.live++
			p.bytes += e.size()
			p.trimAt = 0
			if p.spool != nil {
				p.fileQ = append(p.fileQ, e)
			}
			p.stats.Recovered++
			p.opts.Logger.Info("transcript: call left open by the previous run ended", "call_id", id, "seq", e.Seq)
		}
		p.mu.Unlock()
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

// Close stops delivery; call Flush first to deliver what is queued. What
// is still queued is in the spool file, if there is one. Idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.closeSubs()
	p.mu.Unlock()
	close(p.quit)
	<-p.done
	if p.spool != nil {
		p.spool.close()
	}
	return p.client.Close()
}
