package audiosocket

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/callscribe/callscribe/audiosocket/audiosockettest"
)

// Any bytes read as a connection's messages: each message is read whole
// within its kind's bound or refused as malformed, never a panic; the
// UUIDs and digits parse or are refused; the audio goes through the leg
// (every format, arrival times that jump about) onto a timeline whose
// blocks never go back.
func FuzzMessages(f *testing.F) {
	msg := func(kind byte, p []byte) []byte { return append([]byte{kind, byte(len(p) >> 8), byte(len(p))}, p...) }
	frame := audiosockettest.PCM(tone(440, 8000, 160))
	var call []byte
	call = append(call, msg(0x01, bytes.Repeat([]byte{7}, 16))...)
	for k := byte(0x10); k <= 0x18; k++ {
		call = append(call, msg(k, frame)...)
	}
	call = append(call, msg(0x03, []byte("#"))...)
	call = append(call, msg(0xFF, []byte{1})...)
	call = append(call, msg(0x00, nil)...)
	f.Add(call, int64(20))
	f.Add(msg(0x10, frame[:3]), int64(5000))
	f.Add(msg(0x01, make([]byte, 16)), int64(0))
	f.Add([]byte{0x10, 0xFF, 0xFF, 1, 2}, int64(-3))
	f.Add([]byte{0x03}, int64(1))
	fm := testFormats(f, Config{Kind11: "slin16"})
	f.Fuzz(func(t *testing.T, b []byte, stepMs int64) {
		r := NewReader(bytes.NewReader(b))
		sink := &blocks{t: t}
		l := newLeg(sink, fm)
		now := time.Unix(1e9, 0).UnixNano()
		for {
			m, err := r.Next()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not ErrMalformed", err)
				}
				break
			}
			if len(m.Payload) > maxPayload(m.Kind) {
				t.Fatalf("%s with %d bytes", m.Kind, len(m.Payload))
			}
			now += (stepMs % 10000) * int64(time.Millisecond)
			switch {
			case m.Kind == KindUUID:
				if id, err := ParseUUID(m.Payload); err == nil && len(id) != 36 {
					t.Fatalf("UUID %q", id)
				}
			case m.Kind == KindDTMF:
				ParseDTMF(m.Payload)
			case m.Kind.IsAudio():
				if err := l.audio(m.Kind, m.Payload, now); err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatal(err)
				}
			}
		}
		l.flush()
	})
}
