package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/internal/sipptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// sippDir is a working directory for sipp with the speech its scenarios
// stream (rtp_stream: raw PCMU, 8 kHz): the test WAV, 1 s of silence, the
// WAV again (10.6 s).
func sippDir(t *testing.T, wav string) string {
	t.Helper()
	dir := t.TempDir()
	pause := filepath.Join(dir, "pause.wav")
	for _, args := range [][]string{
		{"-n", "-r", "8000", "-c", "1", "-b", "16", pause, "trim", "0", "1"},
		{wav, pause, wav, "-t", "ul", filepath.Join(dir, "speech.ulaw")},
	} {
		if b, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
			t.Fatalf("sox %v: %v %s", args, err, b)
		}
	}
	return dir
}

// runSippScenario runs one call of testdata/sipp/<scenario>.xml from dir
// against target, the calling user being <service>-sipp; it fails the test
// if sipp reports a failed call (an unexpected message, a check that did
// not match, a timeout).
func runSippScenario(t *testing.T, dir, scenario, service, target string) {
	t.Helper()
	sf, _ := filepath.Abs(filepath.Join("testdata", "sipp", scenario+".xml"))
	out, err := sipptest.Sipp(t, dir, "-sf", sf, "-s", service, "-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, service+".err"), target)
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, service+".err"))
		t.Fatalf("sipp %s: %v\n%s\n%s", scenario, err, errs, tail(out, 600))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// SIPp scenarios shaped like carrier traffic, against the gateway process
// with 2 s session intervals: delayed offer, session refreshes by
// re-INVITE and UPDATE without SDP (14 each), a Session-Expires without
// Supported (we refresh: 10 UPDATEs), an unknown Require (420), SIP INFO
// dtmf-relay. Each call carries 10.6 s of speech; the calls outlive five
// session intervals, are transcribed, and end with bye.
func TestSippCarrierScenarios(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "sip:\n  min_se: 1s\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	model := testModelDir(t)
	wav := filepath.Join(model, "test_wavs", "8k.wav")
	ref := referenceText(t, model, "8k.wav")
	ref += " " + ref // said twice
	refWER := transcribeWER(t, wav, ref)
	dir := sippDir(t, wav)
	for _, sc := range []struct {
		name string
		dtmf string
	}{
		{"delayed_offer", ""}, {"refresh_reinvite", ""}, {"refresh_update", ""}, {"timer_uas", ""}, {"info_dtmf", "5#"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			service := strings.ReplaceAll(sc.name, "_", "")
			start := time.Now()
			runSippScenario(t, dir, sc.name, service, g.sip)
			evs := callOf(t, rd.Addr, service+"-sipp", 20*time.Second)
			_, digits := checkCall(t, evs, "PCMU", "bye", ref, refWER)
			if digits != sc.dtmf {
				t.Errorf("DTMF %q, want %q", digits, sc.dtmf)
			}
			t.Logf("%s: %.1f s", sc.name, time.Since(start).Seconds())
		})
	}
	t.Run("require_unknown", func(t *testing.T) {
		t.Parallel()
		runSippScenario(t, dir, "require_unknown", "require", g.sip)
	})
}

// A caller without session timers through Kamailio with its sst module
// (deployments/kamailio, -A WITH_SST): the proxy adds Session-Expires
// without Supported: timer, so the gateway is the refresher and sends its
// UPDATEs through the proxy (Record-Route); the call outlives five
// intervals of 2 s and is transcribed.
func TestSippThroughKamailioSST(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "sip:\n  min_se: 1s\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	lb := startKamailioWith(t, []string{"WITH_SST", "SST_MIN_SE=2"}, g.sip)
	model := testModelDir(t)
	wav := filepath.Join(model, "test_wavs", "8k.wav")
	ref := referenceText(t, model, "8k.wav")
	ref += " " + ref
	runSippScenario(t, sippDir(t, wav), "timer_sst", "sst", lb)
	evs := callOf(t, rd.Addr, "sst-sipp", 20*time.Second)
	checkCall(t, evs, "PCMU", "bye", ref, transcribeWER(t, wav, referenceText(t, model, "8k.wav")))
}
