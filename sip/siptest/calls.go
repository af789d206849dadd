package siptest

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Placed is calls placed together, each from a phone of its own.
type Placed struct {
	wg    sync.WaitGroup
	codes []int
	errs  []error
}

// PlaceCalls places n calls to addr, each from a phone of its own that
// streams payload (PCMU) in real time and hangs up, one every gap (0: all
// at once). It returns once the last call has begun; Wait tells how they
// went.
func PlaceCalls(n int, addr string, payload []byte, gap time.Duration) *Placed {
	p := &Placed{codes: make([]int, n), errs: make([]error, n)}
	for i := range n {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		p.wg.Go(func() {
			ph, err := Dial()
			if err != nil {
				p.errs[i] = err
				return
			}
			defer ph.Close()
			talked, err := ph.Call(addr, payload)
			p.codes[i], p.errs[i] = talked.Code, err
		})
	}
	return p
}

// Wait waits until every call has ended and returns each one's final
// INVITE status, in the order they were placed (0 for a call that could
// not be placed), and their errors joined.
func (p *Placed) Wait() ([]int, error) {
	p.wg.Wait()
	var errs []error
	for i, err := range p.errs {
		if err != nil {
			errs = append(errs, fmt.Errorf("call %d: %w", i, err))
		}
	}
	return p.codes, errors.Join(errs...)
}
