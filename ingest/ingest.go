// Package ingest is the contract between the call sources (sip, webrtc)
// and the gateway that owns calls: admission before a call is answered,
// where each leg's audio goes, and how a call ends. It holds no protocol.
//
// A source asks Admit before it answers. Admission reserves the call's slot
// (limits, capacity, a duplicate id) under one lock, so a burst cannot
// overshoot a limit, and returns a Ticket: the call's sinks, its DTMF and
// its lifecycle. The source calls Start once it answers and End exactly
// when the call is over (End before Start releases the slot and publishes
// nothing). Every refusal is a *Refusal carrying its SIP and HTTP answers,
// answered by the source and counted by Refused.
//
// Before admission, a door that faces strangers (AudioHook, Twilio, audio
// forks, AudioSocket) bounds their connections with the same limits, the
// same keys in each door's section: ConnLimits, enforced per address by a
// Gate before the upgrade or accept, and MessageLimit on a WebSocket.
package ingest

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/callscribe/callscribe/media"
)

// Offer is a call asking to be admitted.
type Offer struct {
	// ID names the call on Redis (a SIP Call-ID, a WHIP session id).
	ID string
	// Source is the kind of source: "sip" or "webrtc".
	Source string
	// Peer is the address the call came from (per-peer limits).
	Peer netip.Addr
	// Legs names the call's audio streams, in order.
	Legs []string
	// Hotwords and Keywords are the caller's phrase lists for this call
	// (a header or query parameter, "phrase[:score], ..."), added to the
	// configured ones; a list that cannot be read refuses the call (400).
	Hotwords, Keywords string
	// Redact is the caller's redaction for this call ("pci,ssn"), added to
	// the configured one; a list that cannot be read refuses the call.
	Redact string
}

// Ticket is an admitted call. Its methods are safe from any goroutine.
type Ticket interface {
	// Sink is where leg i's 16 kHz audio goes. Audio that arrives before
	// Start or after End is dropped.
	Sink(i int) media.Sink
	// DTMF reports a digit received on leg i.
	DTMF(i int, d media.DTMF)
	// Start says the call is answered: call.start goes out with fields.
	Start(fields map[string]string)
	// Pause stops (paused true) or restarts the call's transcription: the
	// audio in between is not recognized. by says who asked ("sip",
	// "http"). A change is an event; asking again changes nothing.
	Pause(paused bool, by string)
	// End says the call is over, why (bye, timeout, shutdown, error,
	// cancel), and the legs' packet counters, final or nil. It returns at
	// once: the last finals and call.end follow. Idempotent.
	End(reason string, stats []media.LegStats)
	// Done is closed once the call's slot is free again (after call.end).
	Done() <-chan struct{}
}

// Admitter admits calls; the gateway implements it.
type Admitter interface {
	// Admit reserves a slot for the call or refuses it with a *Refusal.
	Admit(o Offer) (Ticket, error)
	// Refused counts a call a source refused by itself (bad request,
	// authentication, codecs), by source and reason.
	Refused(source string, r *Refusal)
	// Full tells why a call of source would be refused now (nil: it would
	// be admitted): the answer to a load balancer's health check.
	Full(source string) *Refusal
}

// Refusal is why a call was not taken, with the answer for each protocol.
type Refusal struct {
	// Reason is a short metric label: capacity, limit, draining, duplicate,
	// forbidden, unauthorized, bad_request, codec, error.
	Reason string
	// SIP is the status of the SIP final response; HTTP of the WHIP answer.
	SIP, HTTP int
	// RetryAfter, when positive, is sent as Retry-After.
	RetryAfter time.Duration
	// Detail is a human-readable explanation (a SIP Warning, an HTTP body).
	Detail string
}

func (r *Refusal) Error() string {
	return "refused (" + r.Reason + ", SIP " + strconv.Itoa(r.SIP) + "): " + r.Detail
}

// Is matches refusals by reason, so errors.Is(err, ErrCapacity) holds for
// any capacity refusal.
func (r *Refusal) Is(target error) bool {
	t, ok := target.(*Refusal)
	return ok && t.Reason == r.Reason
}

// The refusals admission makes; a source may refine Detail.
var (
	ErrCapacity  = &Refusal{Reason: "capacity", SIP: 503, HTTP: 503, RetryAfter: 5 * time.Second, Detail: "no capacity for another call"}
	ErrLimit     = &Refusal{Reason: "limit", SIP: 503, HTTP: 503, RetryAfter: 5 * time.Second, Detail: "call limit reached"}
	ErrDraining  = &Refusal{Reason: "draining", SIP: 503, HTTP: 503, RetryAfter: 5 * time.Second, Detail: "shutting down"}
	ErrDuplicate = &Refusal{Reason: "duplicate", SIP: 482, HTTP: 409, Detail: "a call with this id is in progress"}
)

// AsRefusal returns err's refusal, or an internal-error refusal for any
// other error.
func AsRefusal(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return &Refusal{Reason: "error", SIP: 500, HTTP: 500, Detail: err.Error()}
}
