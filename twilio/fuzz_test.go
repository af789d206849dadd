package twilio

import (
	"errors"
	"testing"
)

// Any message is read or refused with ErrBadMessage or ErrCodec, never a
// panic; what is read keeps the bounds.
func FuzzParse(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	var m Message
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Parse(b, &m)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrCodec) {
				t.Fatalf("%v", err)
			}
			return
		}
		switch m.Event {
		case EventStart:
			if !validSid(m.Start.StreamSid) || len(m.Start.Tracks) > 2 || len(m.Start.Params) > maxParams ||
				(m.Start.Codec != "PCMU" && m.Start.Codec != "PCMA") {
				t.Fatalf("start %+v", m.Start)
			}
		case EventMedia:
			if (m.Media.Track != "inbound" && m.Media.Track != "outbound") || len(m.Media.Payload) > maxPayload {
				t.Fatalf("media %+v", m.Media)
			}
		case EventDTMF:
			if m.DTMF.Digit == 0 {
				t.Fatalf("dtmf %+v", m.DTMF)
			}
		}
	})
}
