package asr

import (
	"sync/atomic"
	"time"
)

// Latency is a histogram of durations in 1 ms buckets; the last bucket
// holds everything from LatencySpan up. The batcher keeps two, added to
// without locks: chunk latency (a chunk ready to its step committed) and
// step time (one batch step, encoder and search).
type Latency struct {
	Counts [latencyBuckets]int64
}

// LatencySpan is the longest duration a Latency tells apart.
const LatencySpan = 5 * time.Second

const latencyBuckets = int(LatencySpan/time.Millisecond) + 1

type latencyHist struct {
	counts [latencyBuckets]atomic.Int64
}

func (h *latencyHist) add(d time.Duration) {
	i := min(max(int(d/time.Millisecond), 0), latencyBuckets-1)
	h.counts[i].Add(1)
}

func (h *latencyHist) snapshot() Latency {
	var l Latency
	for i := range h.counts {
		l.Counts[i] = h.counts[i].Load()
	}
	return l
}

// Sub is what was added since the earlier snapshot.
func (l Latency) Sub(earlier Latency) Latency {
	for i := range l.Counts {
		l.Counts[i] -= earlier.Counts[i]
	}
	return l
}

// N is the number of durations held.
func (l Latency) N() int64 {
	var n int64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// Quantile is the upper edge of the bucket that holds quantile q (0..1);
// 0 when empty.
func (l Latency) Quantile(q float64) time.Duration {
	n := l.N()
	if n == 0 {
		return 0
	}
	want := int64(q*float64(n) + 0.5)
	want = min(max(want, 1), n)
	var seen int64
	for i, c := range l.Counts {
		seen += c
		if seen >= want {
			return time.Duration(i+1) * time.Millisecond
		}
	}
	return LatencySpan
}
