package media

import "sync"

// Ring is a bounded buffer of 16 kHz samples: a Sink for tools and tests
// that read a leg's audio on another goroutine. Write never blocks: when
// the reader falls behind, the oldest samples are overwritten and counted.
// Every sample has an index on the leg's timeline (samples since the leg
// started), so a reader sees exactly where audio was dropped.
type Ring struct {
	mu      sync.Mutex
	buf     []float32
	start   int64 // timeline index of the oldest sample held
	end     int64 // timeline index after the newest
	dropped int64
}

// NewRing returns a ring holding up to capacity samples.
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]float32, max(capacity, 1))}
}

// Write appends samples, dropping the oldest held ones if they do not fit.
func (r *Ring) Write(samples []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := int64(len(r.buf))
	if n := int64(len(samples)); n > c { // only the newest capacity samples can stay
		r.dropped += n - c
		r.start += n - c
		r.end += n - c
		samples = samples[n-c:]
	}
	for len(samples) > 0 {
		at := int(r.end % c)
		k := copy(r.buf[at:], samples)
		samples = samples[k:]
		r.end += int64(k)
	}
	if over := r.end - r.start - c; over > 0 {
		r.dropped += over
		r.start += over
	}
}

// WriteAudio appends samples (a Sink); the ring keeps its own timeline.
func (r *Ring) WriteAudio(_ int64, samples []float32) { r.Write(samples) }

// WriteSilence appends n zero samples: an explicit gap (lost packets, hold)
// on the timeline.
func (r *Ring) WriteSilence(n int) {
	var zeros [256]float32
	for n > 0 {
		k := min(n, len(zeros))
		r.Write(zeros[:k])
		n -= k
	}
}

// Read moves up to len(dst) of the oldest samples into dst. It returns how
// many, and the timeline index of the first.
func (r *Ring) Read(dst []float32) (n int, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := int64(len(r.buf))
	at = r.start
	for n < len(dst) && r.start < r.end {
		i := int(r.start % c)
		k := copy(dst[n:], r.buf[i:min(int64(len(r.buf)), int64(i)+r.end-r.start)])
		n += k
		r.start += int64(k)
	}
	return n, at
}

// Len is the number of samples waiting.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.end - r.start)
}

// End is the timeline index after the newest sample written.
func (r *Ring) End() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.end
}

// Dropped is the number of samples overwritten before they were read.
func (r *Ring) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}
