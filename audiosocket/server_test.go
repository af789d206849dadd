package audiosocket

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/audiosocket/audiosockettest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/media"
)

// startServer opens a door on a free loopback port that admits with a
// fake admitter; it is closed when the test ends, with no panic counted.
func startServer(t *testing.T, cfg Config) (*Server, *ingesttest.Admitter[*conn]) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.AllowCIDRs == nil {
		cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	adm := ingesttest.New[*conn]()
	s, err := NewServer(cfg, adm)
	if err != nil {
		t.Fatal(err)
	}
	adm.Lookup = s.call
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if n := s.Panics(); n > 0 {
			t.Errorf("%d connections panicked", n)
		}
	})
	return s, adm
}

func dial(t *testing.T, s *Server) *audiosockettest.Client {
	t.Helper()
	c, err := audiosockettest.Dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// started waits for the next call to start.
func started(t *testing.T, adm *ingesttest.Admitter[*conn]) *conn {
	t.Helper()
	select {
	case c := <-adm.Started:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no call started")
		return nil
	}
}

// refusedWith reads the server's last words to a connection: an error
// message whose payload holds want, then the close.
func refusedWith(t *testing.T, c *audiosockettest.Client, want string) {
	t.Helper()
	k, p, err := c.Read(5 * time.Second)
	if err != nil || k != audiosockettest.Error || !strings.Contains(string(p), want) {
		t.Fatalf("got kind %#x %q (%v), want an error message with %q", k, p, err, want)
	}
	if !c.Closed(5 * time.Second) {
		t.Fatal("the connection stays open")
	}
}

func ringOf(c *conn) *media.Ring { return c.leg.sink.(*media.Ring) }

// waitEnded waits until the call's connection is gone from the server.
func waitEnded(t *testing.T, s *Server, id string) {
	t.Helper()
	for start := time.Now(); s.call(id) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("call %s not ended", id)
		}
	}
}

// A call as Asterisk's AudioSocket() makes it: the UUID, 20 ms frames of
// 8 kHz audio at the pace of a call, a digit between two frames, hangup.
// The call is admitted under its UUID with one leg (caller), starts at
// its first audio with codec slin, and its audio reaches the leg's sink
// at 16 kHz, whole and at its pitch.
func TestCallAsAsteriskSendsIt(t *testing.T) {
	s, adm := startServer(t, Config{})
	c := dial(t, s)
	if err := c.Hello(); err != nil {
		t.Fatal(err)
	}
	pcm := audiosockettest.PCM(tone(1000, 8000, 8000))
	err := c.Stream(audiosockettest.Slin, pcm, audiosockettest.FrameBytes(8000), true, func(i int) error {
		if i == 25 {
			return c.Digit('7')
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	call := started(t, adm)
	if call.id != c.CallID() {
		t.Fatalf("call %q, want %q", call.id, c.CallID())
	}
	c.Hangup()
	adm.WaitEnded(t, 1)
	waitEnded(t, s, call.id)
	if call.leg.cur.name != "slin" {
		t.Errorf("audio as %q, want slin", call.leg.cur.name)
	}
	buf := make([]float32, 2*16000)
	n, _ := ringOf(call).Read(buf)
	if n < 15900 || n > 16100 {
		t.Errorf("%d samples of 1 s at 16 kHz", n)
	}
	if k := crossings(buf[:n]); k < 990 || k > 1010 {
		t.Errorf("%d crossings in 1 s of 1 kHz", k)
	}
	if d := adm.Digits(); d != "7" {
		t.Errorf("digits %q", d)
	}
	if st := call.leg.stats; st.Packets != 50 || st.DTMF != 1 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Each audio kind at its rate (0x11 as configured), and G.711 under 0x10
// where configured: the pitch survives, so the rate was read right.
func TestAudioKinds(t *testing.T) {
	for _, k := range []struct {
		name  string
		cfg   Config
		kind  byte
		rate  int
		codec string
	}{
		{"0x11 is slin12 by default", Config{}, audiosockettest.Slin12, 12000, "slin12"},
		{"0x11 as slin16", Config{Kind11: "slin16"}, audiosockettest.Slin12, 16000, "slin16"},
		{"0x12", Config{}, audiosockettest.Slin16, 16000, "slin16"},
		{"0x16", Config{}, audiosockettest.Slin48, 48000, "slin48"},
	} {
		t.Run(k.name, func(t *testing.T) {
			s, adm := startServer(t, k.cfg)
			c := dial(t, s)
			c.Hello()
			pcm := audiosockettest.PCM(tone(1000, k.rate, k.rate))
			if err := c.Stream(k.kind, pcm, audiosockettest.FrameBytes(k.rate), false, nil); err != nil {
				t.Fatal(err)
			}
			call := started(t, adm)
			c.Close() // Asterisk closes the socket when the channel hangs up
			waitEnded(t, s, call.id)
			buf := make([]float32, 2*16000)
			n, _ := ringOf(call).Read(buf)
			if n < 15900 || n > 16100 || call.leg.cur.name != k.codec {
				t.Errorf("%d samples as %s", n, call.leg.cur.name)
			}
			if x := crossings(buf[:n]); x < 990 || x > 1010 {
				t.Errorf("%d crossings in 1 s of 1 kHz", x)
			}
		})
	}
}

// A peer that vanishes mid-call: one that closes without a hangup ends
// the call at once; one that goes silent with the connection open (a
// host gone, a cable cut) is ended by idle_timeout, and told so.
func TestPeerVanishes(t *testing.T) {
	s, adm := startServer(t, Config{ConnLimits: ingest.ConnLimits{IdleTimeout: 300 * time.Millisecond}})
	pcm := audiosockettest.PCM(tone(440, 8000, 4000))

	closes := dial(t, s)
	closes.Hello()
	closes.Stream(audiosockettest.Slin, pcm, 320, false, nil)
	call := started(t, adm)
	closes.Close()
	waitEnded(t, s, call.id)

	silent := dial(t, s)
	silent.Hello()
	silent.Stream(audiosockettest.Slin, pcm, 320, false, nil)
	call = started(t, adm)
	start := time.Now()
	refusedWith(t, silent, "idle")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ended after %v", d)
	}
	waitEnded(t, s, call.id)
	adm.WaitEnded(t, 2)
}

// Every kind of malformed message gets an error message saying what was
// wrong, then the connection is closed: before the UUID nothing is
// admitted; during a call the call ends. Nothing panics and nothing is
// left (TestMain checks the goroutines).
func TestMalformedMessages(t *testing.T) {
	s, adm := startServer(t, Config{ConnLimits: ingest.ConnLimits{StartTimeout: 300 * time.Millisecond}})
	id := bytes.Repeat([]byte{0x42}, 16)
	frame := audiosockettest.PCM(tone(440, 8000, 160))
	msg := func(kind byte, p []byte) []byte { return append([]byte{kind, byte(len(p) >> 8), byte(len(p))}, p...) }
	for _, m := range []struct {
		name   string
		hello  bool // a UUID first: the call is admitted
		send   []byte
		answer string
	}{
		{"audio before the UUID", false, msg(0x10, frame), "before the UUID"},
		{"DTMF before the UUID", false, msg(0x03, []byte("1")), "before the UUID"},
		{"a UUID of 15 bytes", false, msg(0x01, id[:15]), "UUID of 15 bytes"},
		{"a UUID of 17 bytes", false, msg(0x01, append(id, 0)), "uuid with 17 bytes"},
		{"the nil UUID", false, msg(0x01, make([]byte, 16)), "nil UUID"},
		{"an unknown kind first", false, msg(0x02, nil), "kind 0x02"},
		{"nothing in time", false, nil, "timeout"},
		{"a second UUID", true, msg(0x01, id), "uuid during the call"},
		{"DTMF of two bytes", true, msg(0x03, []byte("12")), "dtmf with 2 bytes"},
		{"DTMF that is no digit", true, msg(0x03, []byte("x")), `DTMF 'x'`},
		{"slin of an odd length", true, msg(0x10, frame[:319]), "slin audio of 319 bytes"},
		{"empty audio", true, msg(0x12, nil), "audio of 0 bytes"},
		{"audio over a second", true, msg(0x10, make([]byte, 16002)), "audio 0x10 with 16002 bytes"},
		{"a hangup with a payload", true, msg(0x00, []byte{1}), "hangup with 1 bytes"},
		{"an unknown kind", true, msg(0x42, []byte("?")), "kind 0x42 during the call"},
		{"a message cut short", true, msg(0x10, frame)[:100], "unexpected EOF"},
	} {
		t.Run(m.name, func(t *testing.T) {
			c := dial(t, s)
			before := len(adm.StartedCalls())
			if m.hello {
				c.Hello()
				c.Stream(audiosockettest.Slin, frame, 320, false, nil)
				started(t, adm)
			}
			c.Conn().Write(m.send)
			if m.name == "a message cut short" {
				c.Conn().(interface{ CloseWrite() error }).CloseWrite()
			}
			refusedWith(t, c, m.answer)
			if m.hello {
				adm.WaitEnded(t, before+1)
			} else if n := len(adm.StartedCalls()); n != before {
				t.Errorf("a call started")
			}
		})
	}
}

// What the door refuses itself, in AudioSocket's words (an error message
// naming the reason): an address outside allow_cidrs, before a byte is
// read; connections over an address's rate; connections waiting for
// their UUID past the bound. And what admission refuses: over the limit,
// draining.
func TestRefusals(t *testing.T) {
	s, _ := startServer(t, Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	refusedWith(t, dial(t, s), "forbidden")

	s, _ = startServer(t, Config{ConnLimits: ingest.ConnLimits{ConnectRate: 0.01, ConnectBurst: 2}})
	dial(t, s)
	dial(t, s)
	refusedWith(t, dial(t, s), "rate")

	s, _ = startServer(t, Config{})
	for range maxPendingPerPeer {
		dial(t, s)
	}
	refusedWith(t, dial(t, s), "limit")

	s, adm := startServer(t, Config{})
	adm.SetMax(1)
	live := dial(t, s)
	live.Hello()
	live.Stream(audiosockettest.Slin, make([]byte, 320), 320, false, nil)
	started(t, adm)
	second := dial(t, s)
	second.Hello()
	refusedWith(t, second, "limit")
	adm.SetDraining(true)
	third := dial(t, s)
	third.Hello()
	refusedWith(t, third, "draining")
}

// A burst of 40 calls at once against a limit of 10: exactly 10 are
// taken, every other one is told "limit".
func TestBurstHoldsTheLimit(t *testing.T) {
	s, adm := startServer(t, Config{})
	adm.SetMax(10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for range 40 {
		wg.Go(func() {
			c, err := audiosockettest.Dial(s.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Hello()
			c.Send(audiosockettest.Slin, make([]byte, 320))
			k, p, err := c.Read(2 * time.Second)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				answers["taken"]++ // nothing said: the call goes on
			case k == audiosockettest.Error:
				reason, _, _ := strings.Cut(string(p), ":")
				answers[reason]++
			default:
				answers["other"]++
			}
		})
	}
	wg.Wait()
	if answers["taken"] != 10 || answers["limit"] != 30 {
		t.Errorf("answers %v, want 10 taken and 30 limit", answers)
	}
}

// Closing the door ends its calls: Asterisk is told to hang up (a
// hangup message), the connection closes, the call ends, Close returns.
func TestCloseEndsCalls(t *testing.T) {
	s, adm := startServer(t, Config{})
	c := dial(t, s)
	c.Hello()
	c.Stream(audiosockettest.Slin, make([]byte, 3200), 320, false, nil)
	started(t, adm)
	waiting := dial(t, s) // no UUID yet
	for start := time.Now(); s.Active() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the second connection was not taken")
		}
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, cl := range []*audiosockettest.Client{c, waiting} {
		if k, _, err := cl.Read(time.Second); err != nil || k != audiosockettest.Hangup || !cl.Closed(time.Second) {
			t.Errorf("got %#x (%v), want a hangup and the close", k, err)
		}
	}
	adm.WaitEnded(t, 1)
	if s.Active() != 0 {
		t.Errorf("%d connections left", s.Active())
	}
}

// The connections of one address are bounded, calls and those waiting for
// their UUID together: one more is told "limit" before a byte is read, and
// a call's place comes back when it hangs up.
func TestConnectionsPerAddress(t *testing.T) {
	s, adm := startServer(t, Config{ConnLimits: ingest.ConnLimits{MaxConnectionsPerAddress: 2}})
	call := dial(t, s)
	call.Hello()
	call.Stream(audiosockettest.Slin, make([]byte, 320), 320, false, nil)
	started(t, adm)
	dial(t, s) // waiting for its UUID
	refusedWith(t, dial(t, s), "too many connections from this address")
	call.Hangup()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c := dial(t, s)
		k, p, err := c.Read(100 * time.Millisecond)
		if ne, ok := err.(net.Error); ok && ne.Timeout() { // taken: the server waits for its UUID
			c.Hello()
			c.Stream(audiosockettest.Slin, make([]byte, 320), 320, false, nil)
			started(t, adm)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place of a call hung up is not given back: kind %#x %q (%v)", k, p, err)
		}
	}
}
