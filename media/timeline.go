package media

// nsPerSample is the length of one 16 kHz sample of the timeline.
const nsPerSample = 62_500

// pausedClockMs is how far the RTP clock and the arrival clock may
// disagree before the arrival clock places a packet. Below it the RTP
// clock rules: it is exact where arrival times wobble with network delay,
// and delay on a VoIP path (jitter, a Wi-Fi or LTE stall that then
// delivers its queue in a burst) stays well under a second; a burst that
// moved the timeline would leave it ahead of the call's clock for good.
// Above it the RTP clock is not telling the time: a sender that stopped its
// clock over a hold or silence (it resumes with timestamps that did not
// advance), or one that jumped its timestamps ahead. The price: a paused
// clock shorter than this leaves the timeline behind by up to that much.
const pausedClockMs = 1000

// arrivalClock maps packets' arrival times (the kernel's receive stamps,
// see stampArrivals) onto a leg's timeline: a packet that arrived at t
// ends its audio at index at(t), since a packet is sent once its audio has
// been spoken. The origin is set by the leg's first packet and moved later
// whenever a packet comes sooner than it predicts, so the clock rides the
// least-delayed packets (the minimum of RFC 3550's transit time): network
// delay never pushes the timeline ahead of the call, and a sender's clock
// that runs fast does not either.
type arrivalClock struct {
	started bool
	origin  int64 // unix nanoseconds of timeline index 0
}

// at is the timeline index where audio that arrived at arrival (unix
// nanoseconds) ends.
func (c *arrivalClock) at(arrival int64) int64 { return (arrival - c.origin) / nsPerSample }

// observe takes audio that ends at index end and arrived at arrival.
func (c *arrivalClock) observe(arrival, end int64) {
	if !c.started || c.at(arrival) < end {
		c.started, c.origin = true, arrival-end*nsPerSample
	}
}
