package media

// reorder holds a few RTP packets so that ones arriving out of order play in
// sequence order. Slots and their payload buffers are allocated once.
type reorder struct {
	slots     []slot
	started   bool
	next      uint16 // sequence number to play next
	held      int
	newestSeq uint16
	newestTS  uint32
}

type slot struct {
	valid   bool
	seq     uint16
	ts      uint32
	pt      uint8
	arrival int64 // unix nanoseconds: where the packet puts the arrival clock
	payload []byte
}

// set fills the slot with a packet, copying its payload into the slot's
// own buffer.
func (s *slot) set(seq uint16, ts uint32, pt uint8, arrival int64, payload []byte) {
	s.valid, s.seq, s.ts, s.pt, s.arrival = true, seq, ts, pt, arrival
	s.payload = append(s.payload[:0], payload...)
}

const (
	putOK = iota
	putLate
	putFar
)

// maxMisorder is how far behind the playout point a packet is still taken
// for a late one of this stream (RFC 3550 A.1's MAX_MISORDER, 2 s of 20 ms
// packets); further back it is far, as a restarted source is.
const maxMisorder = 100

func (r *reorder) init(n, size int) {
	r.slots = make([]slot, n)
	for i := range r.slots {
		r.slots[i].payload = make([]byte, 0, size)
	}
}

func (r *reorder) reset() {
	for i := range r.slots {
		r.slots[i].valid = false
	}
	r.started, r.held = false, 0
}

// put stores a packet, or tells that it is late (behind the playout point
// by up to maxMisorder, or a duplicate) or far: ahead of the window of
// slots, or further behind.
func (r *reorder) put(seq uint16, ts uint32, pt uint8, arrival int64, payload []byte) int {
	if !r.started {
		r.started, r.next = true, seq
	}
	d := int16(seq - r.next)
	if d < -maxMisorder || int(d) >= len(r.slots) {
		return putFar
	}
	if d < 0 {
		return putLate
	}
	s := &r.slots[int(seq)%len(r.slots)]
	if s.valid {
		return putLate // the same sequence number again
	}
	s.set(seq, ts, pt, arrival, payload)
	if r.held == 0 || int16(seq-r.newestSeq) > 0 {
		r.newestSeq, r.newestTS = seq, ts
	}
	r.held++
	return putOK
}

// pop returns the next packet in sequence if it is here. The slot stays
// valid to read until the next put.
func (r *reorder) pop() (*slot, bool) {
	if !r.started {
		return nil, false
	}
	s := &r.slots[int(r.next)%len(r.slots)]
	if !s.valid || s.seq != r.next {
		return nil, false
	}
	s.valid = false
	r.held--
	r.next++
	return s, true
}

// waiting tells whether packets after a missing one are held.
func (r *reorder) waiting() bool { return r.held > 0 }

// skip gives up on the missing next packet.
func (r *reorder) skip() { r.next++ }
