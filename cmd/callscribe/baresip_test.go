package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callscribe/callscribe/internal/testcert"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// baresipModules is where Debian's baresip-core keeps its modules.
func baresipModules(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("baresip"); err != nil {
		t.Fatal("no baresip on PATH: run scripts/setup (it installs Debian's baresip-core)")
	}
	for _, dir := range []string{"/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules",
		"/usr/lib/aarch64-linux-gnu/baresip/modules", "/usr/local/lib/baresip/modules"} {
		if _, err := os.Stat(filepath.Join(dir, "aufile.so")); err == nil {
			return dir
		}
	}
	t.Fatal("baresip's modules not found")
	return ""
}

// baresipCall is one call placed by baresip, its audio source (the aufile
// module) a WAV at the codec's rate.
type baresipCall struct {
	user     string // the caller's user part: finds the call on Redis
	codec    string // audio_codecs of the account: PCMU, G722, opus/48000/2
	wav      string
	mediaenc string // "srtp-mand": SDES-SRTP required by the caller
	tls      bool   // SIP over TLS
	dtmf     string // digits typed once the call is up (RFC 4733)
	limit    time.Duration
}

// baresip is a running baresip.
type baresip struct {
	cmd   *exec.Cmd
	out   *lockedBuffer
	stdin io.WriteCloser
	done  chan struct{} // closed when it has exited
}

// startBaresip dials the gateway (sip or sips address) with c.
func startBaresip(t *testing.T, c baresipCall, gw, gwTLS, caFile string) *baresip {
	t.Helper()
	dir := t.TempDir()
	mods := baresipModules(t)
	listen := baresipPort(t)
	config := strings.Join([]string{
		"poll_method epoll",
		"sip_listen " + listen,
		"net_interface 127.0.0.1",
		"sip_cafile " + caFile,
		"module_path " + mods,
		"module stdio.so", "module g711.so", "module g722.so", "module opus.so", "module aufile.so", "module srtp.so",
		"module_app account.so", "module_app menu.so",
		"audio_source aufile," + c.wav,
		"audio_player aufile," + filepath.Join(dir, "heard.wav"),
		"audio_alert aufile," + filepath.Join(dir, "alert.wav"),
		// It hangs up after 5 s without RTP from us, unless our answer
		// (recvonly) tells it we send none.
		"rtp_timeout 5",
	}, "\n") + "\n"
	account := "<sip:" + c.user + "@127.0.0.1"
	uri := "sip:gw@" + gw
	if c.tls {
		account += ";transport=tls"
		uri = "sip:gw@" + gwTLS + ";transport=tls"
	}
	account += ">;regint=0;audio_codecs=" + c.codec
	if c.mediaenc != "" {
		account += ";mediaenc=" + c.mediaenc
	}
	os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644)
	os.WriteFile(filepath.Join(dir, "accounts"), []byte(account+"\n"), 0o644)
	b := &baresip{out: &lockedBuffer{}, done: make(chan struct{})}
	b.cmd = exec.Command("baresip", "-s", "-f", dir, "-e", "/dial "+uri, "-t", fmt.Sprint(int(c.limit.Seconds())))
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("baresip %s:\n%s", c.user, b.out.String())
		}
	})
	return b
}

// baresipPort is a SIP address for baresip: it listens on the port for
// UDP and TCP and on the port after it for TLS, so both must be free. The
// port is below Linux's ephemeral range (32768-60999), where nothing is
// handed out by the system and no test's RTP range lies, so no socket
// another test opens meanwhile can take it.
func baresipPort(t *testing.T) string {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		var held []io.Closer
		for _, port := range []int{p, p + 1} {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			if c, err := net.ListenPacket("udp", addr); err == nil {
				held = append(held, c)
			}
			if l, err := net.Listen("tcp", addr); err == nil {
				held = append(held, l)
			}
		}
		for _, c := range held {
			c.Close()
		}
		if len(held) == 4 {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
	}
	t.Fatal("no two ports in a row free for UDP and TCP on 127.0.0.1")
	return ""
}

// waitFor waits until baresip has printed s.
func (b *baresip) waitFor(t *testing.T, s string, within time.Duration) {
	t.Helper()
	for start := time.Now(); time.Since(start) < within; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.out.String(), s) {
			return
		}
	}
	t.Fatalf("baresip never printed %q", s)
}

// quit tells baresip to exit and waits for it.
func (b *baresip) quit(t *testing.T) {
	t.Helper()
	io.WriteString(b.stdin, "/quit\n")
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Error("baresip did not quit")
	}
}

// resampled writes the WAV at rate and channels (sox) into dir.
func resampled(t *testing.T, wav string, rate, channels int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("%d-%d.wav", rate, channels))
	if b, err := exec.Command("sox", wav, "-r", fmt.Sprint(rate), "-c", fmt.Sprint(channels), out).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, b)
	}
	return out
}

// callOf finds the events of the call from user on Redis once its
// call.end is there.
func callOf(t *testing.T, redisAddr, user string, within time.Duration) []map[string]any {
	t.Helper()
	return endedCall(t, redisAddr, within, "from "+user, func(start map[string]any) bool {
		return strings.Contains(fmt.Sprint(start["from"]), "sip:"+user+"@")
	})
}

// endedCall waits until a call whose call.start matches has its call.end
// on Redis and returns its events; what names the call in the failure.
func endedCall(t *testing.T, redisAddr string, within time.Duration, what string, match func(start map[string]any) bool) []map[string]any {
	t.Helper()
	for start := time.Now(); time.Since(start) < within; time.Sleep(100 * time.Millisecond) {
		for _, evs := range callEvents(t, redisAddr) {
			if match(evs[0]) && evs[len(evs)-1]["type"] == "call.end" {
				return evs
			}
		}
	}
	t.Fatalf("no ended call %s on Redis", what)
	return nil
}

// checkCall checks one call's events: call.start first, call.end last with
// reason, seq increasing, the finals within the WAV's usual errors.
func checkCall(t *testing.T, evs []map[string]any, codec, reason, ref string, refWER float64) (finals string, digits string) {
	t.Helper()
	var texts []string
	last := 0
	for _, e := range evs {
		var seq int
		fmt.Sscan(fmt.Sprint(e["seq"]), &seq)
		if seq <= last {
			t.Errorf("seq %d after %d", seq, last)
		}
		last = seq
		switch e["type"] {
		case "final":
			texts = append(texts, fmt.Sprint(e["text"]))
		case "dtmf":
			digits += fmt.Sprint(e["digit"])
		}
	}
	start, end := evs[0], evs[len(evs)-1]
	if start["type"] != "call.start" || !strings.EqualFold(fmt.Sprint(start["codec"]), codec) {
		t.Errorf("call.start %v, want codec %s", start, codec)
	}
	if end["reason"] != reason {
		t.Errorf("call.end %v, want reason %s", end, reason)
	}
	finals = strings.Join(texts, " ")
	// What `transcribe` gets from the file itself, plus at most 10 points
	// for the codec and the call's start and end.
	if w := wer(ref, finals); w > refWER+0.10 {
		t.Errorf("finals %q: WER %.2f, the file alone %.2f (reference %q)", finals, w, refWER, ref)
	}
	return finals, digits
}

// transcribeWER is the word error rate of `callscribe transcribe` on a WAV.
func transcribeWER(t *testing.T, wav, ref string) float64 {
	t.Helper()
	var out, errb strings.Builder
	if code := run([]string{"transcribe", "-model", testModelDir(t), wav}, &out, &errb); code != 0 {
		t.Fatalf("transcribe: %s", errb.String())
	}
	_, text, _ := strings.Cut(strings.TrimSpace(out.String()), "\t")
	return wer(ref, text)
}

// startTLSGateway starts a gateway with SIP over TLS too (a certificate
// for 127.0.0.1); it returns the TLS address and the certificate (the CA
// the phones trust), and waits until it is ready.
func startTLSGateway(t *testing.T, redisAddr string, extra ...string) (*gatewayProc, string, string) {
	t.Helper()
	certFile, keyFile := testcert.Write(t)
	tlsAddr := freePort(t, "tcp")
	config := configFile(t, fmt.Sprintf("sip:\n  tls: %q\n  tls_cert_file: %s\n  tls_key_file: %s\n", tlsAddr, certFile, keyFile))
	g := startGateway(t, redisAddr, append([]string{"-config", config}, extra...)...)
	g.waitReady(t, 200)
	return g, tlsAddr, certFile
}

// Baresip, a SIP phone nobody here wrote, calls the gateway the ways
// trunks and phones do: PCMU, G.722 and Opus, SDES-SRTP required by the
// caller over UDP and over TLS, DTMF (RFC 4733) on an Opus call, all with
// baresip's RTP inactivity timer on. Each call is transcribed as the WAV
// is, the digits arrive on Redis before call.end, baresip hangs up at the
// end of its file and both sides agree: call.end reason bye, the BYE
// answered 200 (no 481), no RTP timeout at baresip.
func TestBaresipCalls(t *testing.T) {
	rd := transcripttest.Start(t)
	g, tlsAddr, certFile := startTLSGateway(t, rd.Addr)

	model := testModelDir(t)
	wav8k, wav16k := filepath.Join(model, "test_wavs", "8k.wav"), filepath.Join(model, "test_wavs", "0.wav")
	ref8k, ref16k := referenceText(t, model, "8k.wav"), referenceText(t, model, "0.wav")
	wer8k, wer16k := transcribeWER(t, wav8k, ref8k), transcribeWER(t, wav16k, ref16k)
	opus := resampled(t, wav16k, 48000, 2)
	calls := []struct {
		baresipCall
		sdpCodec string
		ref      string
		refWER   float64
	}{
		{baresipCall{user: "pcmu", codec: "PCMU", wav: wav8k}, "PCMU", ref8k, wer8k},
		{baresipCall{user: "g722", codec: "G722", wav: wav16k}, "G722", ref16k, wer16k},
		{baresipCall{user: "opus", codec: "opus/48000/2", wav: opus, dtmf: "12#"}, "opus", ref16k, wer16k},
		{baresipCall{user: "srtp", codec: "PCMU", wav: wav8k, mediaenc: "srtp-mand"}, "PCMU", ref8k, wer8k},
		{baresipCall{user: "srtptls", codec: "G722", wav: wav16k, mediaenc: "srtp-mand", tls: true}, "G722", ref16k, wer16k},
	}
	for _, c := range calls {
		t.Run(c.user, func(t *testing.T) {
			t.Parallel()
			c.limit = 60 * time.Second
			b := startBaresip(t, c.baresipCall, g.sip, tlsAddr, certFile)
			b.waitFor(t, "Call established", 20*time.Second)
			for _, d := range c.dtmf {
				time.Sleep(400 * time.Millisecond)
				io.WriteString(b.stdin, string(d))
			}
			b.waitFor(t, "terminated", 30*time.Second) // the end of its file
			evs := callOf(t, rd.Addr, c.user, 20*time.Second)
			finals, digits := checkCall(t, evs, c.sdpCodec, "bye", c.ref, c.refWER)
			if digits != c.dtmf {
				t.Errorf("DTMF on Redis %q, typed %q", digits, c.dtmf)
			}
			b.quit(t)
			out := b.out.String()
			if !strings.Contains(out, "CSeq: ") || strings.Contains(out, "SIP/2.0 481") || strings.Contains(out, "RTP packets received for") {
				t.Errorf("baresip saw a 481 or an RTP timeout")
			}
			if !strings.Contains(out, "audio error (0,end of file)") {
				t.Errorf("the call ended before baresip's file did")
			}
			t.Logf("%s: %q", c.user, finals)
		})
	}
	t.Cleanup(func() {
		if strings.Contains(g.out.String(), "BYE not answered") {
			t.Error("the gateway's BYE went unanswered")
		}
	})
}

// The gateway hangs up: stopped (SIGTERM, a short drain) during an SRTP
// call over TLS from baresip, it ends the call with a BYE on the TLS
// connection the call came in on; baresip takes it (200, its call ends
// before its file does) and call.end says shutdown, after the finals of
// what was said. The call outlives baresip's 5 s RTP timer first.
func TestBaresipGatewayHangsUpOverTLS(t *testing.T) {
	rd := transcripttest.Start(t)
	g, tlsAddr, certFile := startTLSGateway(t, rd.Addr, "-drain", "1s")
	model := testModelDir(t)
	long := filepath.Join(model, "test_wavs", "1.wav") // 16.7 s
	b := startBaresip(t, baresipCall{user: "agent", codec: "G722", wav: long, mediaenc: "srtp-mand", tls: true, limit: 60 * time.Second},
		g.sip, tlsAddr, certFile)
	b.waitFor(t, "Call established", 20*time.Second)
	time.Sleep(8 * time.Second)
	g.cmd.Process.Signal(syscall.SIGTERM)
	b.waitFor(t, "terminated", 10*time.Second)
	select {
	case err := <-g.exited:
		if err != nil {
			t.Errorf("gateway exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit")
	}
	evs := callOf(t, rd.Addr, "agent", 5*time.Second)
	var finals []string
	for _, e := range evs {
		if e["type"] == "final" {
			finals = append(finals, fmt.Sprint(e["text"]))
		}
	}
	if end := evs[len(evs)-1]; end["reason"] != "shutdown" || len(finals) == 0 {
		t.Errorf("call.end %v after finals %q", end, finals)
	}
	out := b.out.String()
	if !strings.Contains(out, "BYE sip:") || strings.Contains(out, "audio error (0,end of file)") || strings.Contains(g.out.String(), "BYE not answered") {
		t.Errorf("baresip did not get the gateway's BYE before its file ended")
	}
	b.quit(t)
}

// startRTPEngine runs Debian's rtpengine in user space (no kernel
// forwarding); it returns its control (ng) address for Kamailio.
func startRTPEngine(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		t.Fatal("no rtpengine on PATH: run scripts/setup (it installs Debian's rtpengine-daemon)")
	}
	ng := freePort(t, "udp")
	logf, err := os.Create(filepath.Join(t.TempDir(), "rtpengine.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--foreground", "--log-stderr", "--table=-1", "--interface=127.0.0.1", "--listen-ng="+ng,
		"--port-min=35000", "--port-max=35999", "--log-level=6")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("rtpengine:\n%s", tail(b, 4000))
		}
	})
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(logf.Name()); strings.Contains(string(b), "Startup complete") {
			return ng
		}
	}
	t.Fatal("rtpengine did not start")
	return ""
}

// The SBC recipe of deployments/: a trunk that requires SRTP (baresip,
// srtp-mand) calls through Kamailio with rtpengine (-A WITH_RTPENGINE),
// which terminates SRTP and sends a gateway that takes plain RTP only
// (sip.srtp: off) RTP/AVP. The call is transcribed and ends with bye.
func TestBaresipSRTPThroughRTPEngine(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "sip:\n  srtp: \"off\"\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	ng := startRTPEngine(t)
	lb := startKamailioWith(t, []string{"WITH_RTPENGINE", `RTPENGINE_SOCK="udp:` + ng + `"`}, g.sip)
	model := testModelDir(t)
	wav := filepath.Join(model, "test_wavs", "8k.wav")
	ref := referenceText(t, model, "8k.wav")
	certFile, _ := testcert.Write(t) // baresip wants a CA file even without TLS
	b := startBaresip(t, baresipCall{user: "trunk", codec: "PCMU", wav: wav, mediaenc: "srtp-mand", limit: 60 * time.Second}, lb, "", certFile)
	b.waitFor(t, "Call established", 20*time.Second)
	b.waitFor(t, "terminated", 30*time.Second)
	evs := callOf(t, rd.Addr, "trunk", 20*time.Second)
	checkCall(t, evs, "PCMU", "bye", ref, transcribeWER(t, wav, ref))
	if !strings.Contains(b.out.String(), "RTP/SAVP") {
		t.Error("baresip did not offer SRTP")
	}
	b.quit(t)
}
