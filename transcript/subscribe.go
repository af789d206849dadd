package transcript

// A Subscription receives the events a Publisher publishes, in process and
// as they are published (stamped with their seq and time), besides Redis:
// for a door that sends a call's transcript back to the platform that sent
// its audio, or a board that shows the calls live. A subscriber that falls
// behind loses events rather than slowing the calls: each one it missed is
// counted in Lost.
type Subscription struct {
	p      *Publisher
	callID string // "": every call
	c      chan Event
	lost   int64 // p.mu
}

// Subscribe starts a subscription to callID's events, or to every call's
// with callID "", holding up to buf events the subscriber has not taken.
// Close it when done.
func (p *Publisher) Subscribe(callID string, buf int) *Subscription {
	s := &Subscription{p: p, callID: callID, c: make(chan Event, max(buf, 1))}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		close(s.c)
		return s
	}
	if p.subs == nil {
		p.subs = make(map[*Subscription]struct{})
	}
	p.subs[s] = struct{}{}
	return s
}

// C delivers the events; it is closed by Close or when the publisher
// closes.
func (s *Subscription) C() <-chan Event { return s.c }

// Lost is how many events the subscriber missed because its buffer was
// full.
func (s *Subscription) Lost() int64 {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.lost
}

// Close ends the subscription; C is closed. Idempotent.
func (s *Subscription) Close() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.subs[s]; ok {
		delete(s.p.subs, s)
		close(s.c)
	}
}

// deliver hands e to the subscriptions that want it, never waiting. p.mu
// held.
func (p *Publisher) deliver(e *Event) {
	for s := range p.subs {
		if s.callID != "" && s.callID != e.CallID {
			continue
		}
		select {
		case s.c <- *e:
		default:
			s.lost++
		}
	}
}

// closeSubs closes every subscription. p.mu held.
func (p *Publisher) closeSubs() {
	for s := range p.subs {
		close(s.c)
	}
	p.subs = nil
}
