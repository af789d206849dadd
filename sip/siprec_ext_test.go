package sip_test

import (
	"math"
	"strings"
	"testing"

	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
)

func toneAt(hz float64, seconds float64) []float32 {
	x := make([]float32, int(seconds*8000))
	for i := range x {
		x[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/8000))
	}
	return x
}

// crossings counts sign changes: about twice the frequency per second.
func crossings(x []float32) int {
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	return n
}

// A SIPREC recording session (RFC 7866) from a session border controller:
// one stream per participant, answered stream by stream (labels kept,
// recvonly), each into its own leg named from the metadata (the agent by
// its address), the audio of each where it belongs.
func TestSIPRECRecordingSession(t *testing.T) {
	log := ingesttest.New[*sip.Call]()
	srv, err := sip.NewServer(sip.Config{TCP: "127.0.0.1:0", RTPPorts: media.PortRange{Lo: 32000, Hi: 32999},
		AgentAORs: []string{"*@agents.example.com"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	log.Lookup = srv.Call
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	meta := siptest.RecordingMetadata("sip:+15551234@trunk.example.com", "sip:agent7@agents.example.com")
	talked, err := siptest.NewPhone(t).Record(srv.Addrs()[0].String(), meta,
		siptest.PCMU(toneAt(440, 1)), siptest.PCMU(toneAt(1000, 1)))
	if err != nil || talked.Code != 200 {
		t.Fatalf("recording session: %d %v", talked.Code, err)
	}
	ans := string(talked.Answer)
	if strings.Count(ans, "m=audio ") != 2 || !strings.Contains(ans, "a=label:1\r\n") || !strings.Contains(ans, "a=label:2\r\n") ||
		strings.Count(ans, "a=recvonly") != 2 {
		t.Errorf("answer:\n%s", ans)
	}
	c := <-log.Started
	if !c.Recording || len(c.Legs) != 2 || c.OnHold() { // sendonly streams are how a recording comes, not hold
		t.Fatalf("recording %v, %d legs, on hold %v", c.Recording, len(c.Legs), c.OnHold())
	}
	if c.Legs[0].Name != "customer" || c.Legs[1].Name != "agent" || c.Legs[1].Sender.AOR != "sip:agent7@agents.example.com" ||
		c.Legs[0].Label != "1" || c.Legs[0].LocalRTP() == c.Legs[1].LocalRTP() {
		t.Errorf("legs %+v %+v", *c.Legs[0], *c.Legs[1])
	}
	log.WaitEnded(t, 1)
	for i, want := range []int{880, 2000} { // 440 Hz and 1 kHz for a second
		buf := make([]float32, 32000)
		n, _ := c.Legs[i].Leg.Sink().(*media.Ring).Read(buf)
		got := crossings(buf[:n])
		if n < 15000 || got < want*9/10 || got > want*11/10 {
			t.Errorf("leg %s: %d samples, %d crossings, want about %d", c.Legs[i].Name, n, got, want)
		}
		if st := c.Legs[i].Leg.Stats(); st.Packets != 50 || st.Malformed != 0 {
			t.Errorf("leg %s: %+v", c.Legs[i].Name, st)
		}
	}
}
