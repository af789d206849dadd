package transcript

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// spoolCompactMin is the smallest spool file that is compacted.
const spoolCompactMin = 1 << 20

// spool is the append-only file of undelivered events. Only the
// publisher's goroutine writes it; size and errs are read by Stats.
type spool struct {
	path   string
	log    *slog.Logger
	f      *os.File
	len    atomic.Int64
	errs   int64 // written by the publisher goroutine under Publisher.mu
	cap    int64 // compact once the file grows past this
	failed int64 // write failures, logged every 1000
}

// openSpool opens the file and reads the events a previous run left in it.
func openSpool(path string, log *slog.Logger) (*spool, []*Event, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("transcript: spool file: %w", err)
	}
	var events []*Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Type == "" {
			if line > 1 { // a torn last line from a crash is expected; others are not
				log.Warn("transcript: spool file line skipped", "file", path, "line", line, "err", err)
			}
			continue
		}
		events = append(events, &e)
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("transcript: spool file %s: %w", path, err)
	}
	s := &spool{path: path, log: log, f: f}
	if st, err := f.Stat(); err == nil {
		s.len.Store(st.Size())
	}
	s.cap = max(spoolCompactMin, 2*s.len.Load())
	return s, events, nil
}

func (s *spool) size() int64 { return s.len.Load() }

// full tells whether the file should be compacted.
func (s *spool) full() bool { return s.len.Load() > s.cap }

// appendEvents writes events at the end of the file; it returns whether
// all were written.
func (s *spool) appendEvents(events []Event) bool {
	w := bufio.NewWriter(s.f)
	var n int64
	for i := range events {
		b, _ := json.Marshal(&events[i])
		w.Write(b)
		w.WriteByte('\n')
		n += int64(len(b)) + 1
	}
	if err := w.Flush(); err != nil {
		s.fail(err)
		return false
	}
	s.len.Add(n)
	return true
}

// rewrite replaces the file with events (the ones still waiting), so that
// its size follows the memory spool's bound however long Redis is away.
func (s *spool) rewrite(events []Event) bool {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		s.fail(err)
		s.cap *= 2 // try again later
		return false
	}
	old, oldLen := s.f, s.len.Load()
	s.f = f
	s.len.Store(0)
	if !s.appendEvents(events) || os.Rename(tmp, s.path) != nil {
		f.Close()
		os.Remove(tmp)
		s.f = old
		s.len.Store(oldLen)
		s.cap *= 2
		return false
	}
	old.Close()
	s.cap = max(spoolCompactMin, 2*s.len.Load())
	return true
}

// truncate empties the file: everything in it has reached Redis.
func (s *spool) truncate() {
	if s.len.Load() == 0 {
		return
	}
	if err := s.f.Truncate(0); err != nil {
		s.fail(err)
		return
	}
	s.len.Store(0)
}

func (s *spool) fail(err error) {
	if s.failed%1000 == 0 {
		s.log.Error("transcript: spool file write failed; events are held in memory only", "file", s.path, "err", err)
	}
	s.failed++
}

func (s *spool) close() { s.f.Close() }

// spoolFile brings the spool file up to date with the queue: new events
// appended, the file compacted when it has grown past its bound, emptied
// when nothing waits. Runs on the publisher's goroutine only.
func (p *Publisher) spoolFile() {
	if p.spool == nil {
		return
	}
	p.mu.Lock()
	compact := p.spool.full()
	empty := len(p.queue) == 0
	var events []Event
	switch {
	case empty:
	case compact:
		for _, e := range p.queue {
			if e.Type != "" {
				events = append(events, *e)
			}
		}
	default:
		for _, e := range p.fileQ {
			if e.Type != "" {
				events = append(events, *e)
			}
		}
	}
	clear(p.fileQ)
	p.fileQ = p.fileQ[:0]
	p.fileBusy = len(events)
	p.mu.Unlock()
	before := p.spool.failed
	switch {
	case empty:
		p.spool.truncate()
	case compact:
		p.spool.rewrite(events)
	case len(events) > 0:
		p.spool.appendEvents(events)
	}
	p.mu.Lock()
	p.spool.errs += p.spool.failed - before
	p.fileBusy = 0
	p.mu.Unlock()
}
