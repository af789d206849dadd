package sip

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/callscribe/callscribe/internal/sipptest"
)

// runSipp places calls with Debian's sipp (package sip-tester) against the
// server and returns when the scenario has finished; it fails the test if
// sipp reports a failed call.
func runSipp(t *testing.T, dir string, target string, args ...string) {
	t.Helper()
	all := append([]string{"-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err",
		"-error_file", filepath.Join(t.TempDir(), "err.log")}, args...)
	out, err := sipptest.Sipp(t, dir, append(all, target)...)
	if err != nil {
		t.Fatalf("sipp %v: %v\n%s", args, err, tail(out))
	}
}

func tail(b []byte) []byte {
	if len(b) > 3000 {
		return b[len(b)-3000:]
	}
	return b
}

// Debian ships the audio of sipp's built-in uac_pcap scenario in
// /usr/share/sip-tester; the scenario reads it from ./pcap/.
func sippPcapDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink("/usr/share/sip-tester", filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSippUACPcap(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	runSipp(t, sippPcapDir(t), addr, "-sn", "uac_pcap")
	c := rec.WaitEnded(t, 1)[0]
	st := c.Legs[0].Leg.Stats()
	if c.Reason() != "bye" || c.Codec != "PCMA" || st.Packets < 200 || st.Malformed != 0 {
		t.Errorf("call %s %s: %+v", c.Reason(), c.Codec, st)
	}
	if digits := rec.Digits(); digits != "1" {
		t.Errorf("digits %q, want the scenario's 1", digits)
	}
	// g711a.pcap holds about 4.7 s; nobody reads the ring here, so the
	// oldest went (counted) once it was full.
	if n := ringOf(c, 0).Len(); n < 16000*4 {
		t.Errorf("%d samples of audio", n)
	}
}

func TestSippReinviteHold(t *testing.T) {
	// The scenario holds for 1.5 s without RTP; the timeout is shorter.
	_, rec, addr := startServer(t, Config{MediaTimeout: time.Second})
	scenario, _ := filepath.Abs("testdata/reinvite_hold.xml")
	runSipp(t, t.TempDir(), addr, "-sf", scenario)
	ended := rec.WaitEnded(t, 1)
	if len(ended) != 1 || ended[0].Reason() != "bye" || ended[0].Headers["X-Scenario"] != "hold" {
		for _, c := range ended {
			t.Errorf("call ended: %s %v", c.Reason(), c.Headers)
		}
	}
}

// sipp as the session border controller of a SIPREC recording: two legs
// (PCMU and PCMA), named from the metadata, answered with both labels.
func TestSippRecordingSession(t *testing.T) {
	srv, rec, _ := startServer(t, Config{TCP: "127.0.0.1:0", AgentAORs: []string{"*@agents.example.com"}})
	var tcp string
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			tcp = a.String()
		}
	}
	scenario, _ := filepath.Abs("testdata/siprec.xml")
	runSipp(t, t.TempDir(), tcp, "-sf", scenario, "-t", "t1")
	ended := rec.WaitEnded(t, 1)
	c := ended[0]
	if c.Reason() != "bye" || !c.Recording || len(c.Legs) != 2 || c.Headers["X-Scenario"] != "siprec" {
		t.Fatalf("call: %s recording %v, %d legs, headers %v", c.Reason(), c.Recording, len(c.Legs), c.Headers)
	}
	for i, want := range []struct{ name, codec, aor string }{{"customer", "PCMU", "sip:+15550100@trunk.example.com"},
		{"agent", "PCMA", "sip:agent42@agents.example.com"}} {
		l := c.Legs[i]
		if l.Name != want.name || l.choice.Name != want.codec || l.Sender.AOR != want.aor || l.Label != strconv.Itoa(i+1) {
			t.Errorf("leg %d: %s %s %+v label %s", i, l.Name, l.choice.Name, l.Sender, l.Label)
		}
	}
}
