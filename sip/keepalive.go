package sip

import (
	"context"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// A call without media gives no sign that its peer is still there: media
// timeout is off while on hold, and a caller without session timers never
// refreshes. So while a call has no media the gateway asks the peer itself,
// with an OPTIONS in the dialog every Config.KeepaliveInterval (RFC 3261
// 11; RFC 5057 4.2: 481 and 408 mean the dialog is gone, any other answer
// that it is alive).

// maxProbeWait bounds how long a probe waits for its answer: a non-INVITE
// transaction's timeout (RFC 3261 Timer F, 64×T1).
const maxProbeWait = 32 * time.Second

// keepalive is the probing of one call's peer. The call's loop (run) owns
// it: it alone calls its methods, and waits for the probe in flight.
type keepalive struct {
	every  time.Duration // 0: off
	quiet  time.Time     // since when the call has had no media; zero while it has
	sent   time.Time     // when the last probe went out
	misses int           // failed probes in a row
	limit  int           // misses that end the call
	result chan bool     // the verdict of the probe in flight (true: the peer is gone); nil when none
	wg     sync.WaitGroup
}

func newKeepalive(every time.Duration, misses int) *keepalive {
	return &keepalive{every: max(every, 0), limit: max(misses, 1)}
}

// wait is how long a probe waits for its answer: until the next one is due.
func (k *keepalive) wait() time.Duration { return min(k.every, maxProbeWait) }

// due tells whether a probe should go out at now. quietFor is how long the
// call has had no media (0 when it has just gone on hold), negative while
// it has media: then the peer is there and the count starts over.
func (k *keepalive) due(now time.Time, quietFor time.Duration) bool {
	if k.every == 0 {
		return false
	}
	if quietFor < 0 {
		k.quiet, k.misses = time.Time{}, 0
		return false
	}
	if k.quiet.IsZero() {
		k.quiet = now.Add(-quietFor)
	}
	if k.result != nil {
		return false
	}
	return now.Sub(k.quiet) >= k.every && now.Sub(k.sent) >= k.every
}

// start sends a probe on a goroutine of its own; its verdict comes on
// done.
func (k *keepalive) start(ctx context.Context, now time.Time, probe func(context.Context) bool) {
	k.sent = now
	k.result = make(chan bool, 1)
	k.wg.Add(1)
	go func(out chan<- bool) {
		defer k.wg.Done()
		out <- probe(ctx)
	}(k.result)
}

// done delivers the verdict of the probe in flight; nil when none is.
func (k *keepalive) done() <-chan bool { return k.result }

// settle takes a probe's verdict and tells whether the peer is gone.
func (k *keepalive) settle(gone bool) bool {
	k.result = nil
	if !gone {
		k.misses = 0
		return false
	}
	k.misses++
	return k.misses >= k.limit
}

// stop waits for the probe in flight; cancel its context first.
func (k *keepalive) stop() { k.wg.Wait() }

// quietFor is how long c has had no media as keepalive.due reads it: 0 on
// hold (the hold's start is the first time this is asked), the time since
// the last RTP when that is an interval or more, else -1.
func (c *Call) quietFor(every time.Duration) time.Duration {
	if c.OnHold() {
		return 0
	}
	if idle := c.idle(); every > 0 && idle >= every {
		return idle
	}
	return -1
}

// checkPeer starts a probe of c's peer when one is due.
func (c *Call) checkPeer(ctx context.Context, k *keepalive, now time.Time) {
	if !k.due(now, c.quietFor(k.every)) {
		return
	}
	wait := k.wait()
	k.start(ctx, now, func(ctx context.Context) bool { return c.peerGone(ctx, wait) })
}

// peerGone asks c's peer an OPTIONS in the dialog and tells whether the
// answer says it is gone: 481, 408, or none within wait. A probe cut short
// by ctx (the call ending anyway) says nothing.
func (c *Call) peerGone(ctx context.Context, wait time.Duration) bool {
	req := c.request(sipmsg.OPTIONS)
	req.AppendHeader(sipmsg.NewHeader("Accept", "application/sdp"))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	res, err := c.do(wctx, req)
	switch {
	case ctx.Err() != nil:
		return false
	case err != nil:
		c.log.Info("sip: keepalive not answered", "err", err)
		return true
	case res.StatusCode == 481 || res.StatusCode == 408:
		c.log.Info("sip: keepalive answered: the dialog is gone", "status", res.StatusCode)
		return true
	}
	return false
}
