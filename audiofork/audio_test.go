package audiofork

import (
	"net/url"
	"testing"

	"github.com/callscribe/callscribe/media"
)

// blocks records where each block of a leg's audio lands.
type blocks struct{ at, n []int64 }

func (b *blocks) WriteAudio(at int64, x []float32) {
	b.at = append(b.at, at)
	b.n = append(b.n, int64(len(x)))
}

// A leg's timeline is its audio's count while frames come at the pace of
// speech or faster (a burst after a network stall does not move it);
// after the sender paused for longer than a second (uuid_audio_fork
// pause), the next frame lands where its arrival puts it, and the blocks
// never overlap.
func TestPCMTimeline(t *testing.T) {
	var b blocks
	p, err := newPCM(16000, 1, []media.Sink{&b})
	if err != nil {
		t.Fatal(err)
	}
	frame := tone(320, 16000, true) // 20 ms
	now := int64(1_000_000_000)
	for range 50 { // 1 s at the pace of speech
		now += 20e6
		p.write(frame, now)
	}
	for range 25 { // 0.5 s late, then a burst
		p.write(frame, now+500e6)
	}
	now += 500e6
	if got := p.pos[0]; got != 75*320 {
		t.Fatalf("after a burst: timeline at %d, want %d", got, 75*320)
	}
	now += 3e9 // paused 3 s
	p.write(frame, now)
	want := int64(75*320) + 3*16000
	if got := b.at[len(b.at)-1]; got < want-320 || got > want+320 {
		t.Errorf("after a 3 s pause the frame lands at %d, want about %d", got, want)
	}
	for i := 1; i < len(b.at); i++ {
		if b.at[i] < b.at[i-1]+b.n[i-1] {
			t.Fatalf("block %d at %d overlaps the one before (%d+%d)", i, b.at[i], b.at[i-1], b.n[i-1])
		}
	}
	if p.stats[0].Discontinuities != 1 || p.stats[0].Packets != 76 {
		t.Errorf("stats %+v", p.stats[0])
	}
}

// Whatever a peer sends as its messages, the parsers answer with a format
// or an error, and the audio path takes any frame: never a panic.
func FuzzMessages(f *testing.F) {
	for _, s := range []string{`{"callSid":"a","sampleRate":8000,"mixType":"stereo","legs":["a","b"]}`,
		`{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}`, `{"metadata":{"callSid":"x","rate":"16k"}}`,
		`{"type":"start","language":"en-US","format":"raw","encoding":"LINEAR16","sampleRateHz":8000,"interimResults":true,"options":{"callSid":"c"}}`,
		`{"event":"dtmf","dtmf":"5","duration":"250"}`, `{"event":"websocket:dtmf","digit":"#","duration":260}`, `{"type":"pause"}`,
		`not json`, `[]`, `{"sampleRate":1e400}`, "\x00\x01\x02"} {
		f.Add([]byte(s), "rate=16k&mix=stereo")
	}
	f.Fuzz(func(t *testing.T, b []byte, query string) {
		q, _ := url.ParseQuery(query)
		if m, err := ParseMetadata(q, b); err == nil {
			if len(m.Legs) != m.Channels || m.CallID == "" || m.Rate == 0 {
				t.Fatalf("metadata %q gives %+v", b, m)
			}
			var sinks []media.Sink
			for range m.Channels {
				sinks = append(sinks, &blocks{})
			}
			p, err := newPCM(m.Rate, m.Channels, sinks)
			if err != nil {
				t.Fatal(err)
			}
			p.write(b, 1)
			p.write(b, 2e9)
		}
		if s, err := ParseStart(b); err == nil && (s.CallID == "" || len(s.Legs) != 1) {
			t.Fatalf("start %q gives %+v", b, s)
		}
		if c, err := ParseControl(b); err == nil && c.Kind == "dtmf" && c.Digit == 0 {
			t.Fatalf("control %q gives %+v", b, c)
		}
	})
}
