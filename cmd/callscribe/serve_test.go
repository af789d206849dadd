package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	pw "github.com/pion/webrtc/v4"
	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/internal/sipptest"
	"github.com/callscribe/callscribe/internal/testcert"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" { // the SIP address: free for TCP too (sip.udp and sip.tcp share it)
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(sipptest.FreeSIPPort(t)))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer is a process's output, read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gatewayProc runs `callscribe serve` as a process (this test binary
// re-executed as the command).
type gatewayProc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	sip    string
	http   string
	exited chan error
	// args follow the SIP and HTTP addresses on the command line.
	args []string
	env  []string // added to the environment
	// starts counts the processes started: waitReady starts another on
	// new ports when one could not bind its own.
	starts int
}

// configFile writes a gateway configuration for one test and returns its path.
func configFile(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "callscribe.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startGateway(t *testing.T, redisAddr string, extra ...string) *gatewayProc {
	t.Helper()
	return startGatewayEnv(t, nil, redisAddr, extra...)
}

// startGatewayEnv is startGateway with env (NAME=value) added to the
// process's environment.
func startGatewayEnv(t *testing.T, env []string, redisAddr string, extra ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{env: env, args: append([]string{"-redis", redisAddr, "-model", testModelDir(t), "-rtp-ports", "34000-34999"}, extra...)}
	g.start(t)
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out.String())
		}
	})
	return g
}

// start runs the gateway on a SIP and an HTTP port found free.
func (g *gatewayProc) start(t *testing.T) {
	t.Helper()
	g.sip, g.http = freePort(t, "udp"), freePort(t, "tcp")
	g.out, g.exited = &lockedBuffer{}, make(chan error, 1)
	g.cmd = exec.Command(os.Args[0], append([]string{"serve", "-sip", g.sip, "-http", g.http}, g.args...)...)
	// Tests share a loaded machine (and a race build is several times
	// slower): admission by the recognizer's capacity is off unless a test
	// sets -max-streams or -max-lag itself; so is the second pass, unless
	// a test sets -final-model.
	g.cmd.Env = append(append(os.Environ(), "CALLSCRIBE_TEST_MAIN=1", "CALLSCRIBE_MAX_STREAMS=100000", "CALLSCRIBE_MAX_LAG=1h",
		"CALLSCRIBE_FINAL_MODEL=none"), g.env...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.starts++
	cmd, exited := g.cmd, g.exited
	go func() { exited <- cmd.Wait() }()
}

// waitReady polls /readyz until it answers want.
func (g *gatewayProc) waitReady(t *testing.T, want int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-g.exited:
			// A port found free can be taken before the gateway binds
			// it (another test's connection): new ports.
			if out := g.out.String(); strings.Contains(out, "address already in use") && g.starts < 3 {
				t.Logf("gateway could not bind (%v), starting it on other ports:\n%s", err, out)
				g.start(t)
				continue
			}
			t.Fatalf("gateway exited: %v\n%s", err, g.out.String())
		default:
		}
		res, err := client.Get("http://" + g.http + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == want {
				return
			}
		}
	}
	t.Fatalf("/readyz never answered %d", want)
}

// request sends method to the gateway's path, with a bearer token unless
// token is empty, and returns the status and the body.
func (g *gatewayProc) request(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// callAsync places a call from a new phone to addr that speaks samples
// (8 kHz) in the background; the channel gets its result. The phone is
// closed when the test ends.
func callAsync(t *testing.T, addr string, samples []float32) <-chan siptest.Talked {
	t.Helper()
	phone, err := siptest.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	talked := make(chan siptest.Talked, 1)
	go func() {
		res, _ := phone.Call(addr, siptest.PCMU(samples))
		talked <- res
	}()
	return talked
}

// answeredAndHeard checks that the call whose result talked gives was
// answered and that its finals, once it ended, hold at least 3/4 as many
// words as wav's reference text (what names the call in errors).
func answeredAndHeard(t *testing.T, redisAddr string, talked <-chan siptest.Talked, wav, what string) {
	t.Helper()
	res := <-talked
	if res.Code != 200 {
		t.Fatalf("%s: %d", what, res.Code)
	}
	want := referenceText(t, testModelDir(t), wav)
	if got := strings.Join(endedFinals(t, redisAddr, res.CallID), " "); len(strings.Fields(got)) < len(strings.Fields(want))*3/4 {
		t.Errorf("%s: %q, reference %q", what, got, want)
	}
}

// endedFinals waits (20 s at most) for a call's call.end on Redis and
// returns the texts of its finals.
func endedFinals(t *testing.T, redisAddr, callID string) []string {
	t.Helper()
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		evs := callEvents(t, redisAddr)["stt:call:{"+callID+"}"]
		if len(evs) == 0 || evs[len(evs)-1]["type"] != "call.end" {
			continue
		}
		var finals []string
		for _, e := range evs {
			if e["type"] == "final" {
				finals = append(finals, e["text"].(string))
			}
		}
		return finals
	}
	t.Fatalf("no call.end for call %s", callID)
	return nil
}

// callEvents is every call's events on Redis, by key
// (transcripttest.CallStreams).
func callEvents(t *testing.T, redisAddr string) map[string][]map[string]any {
	t.Helper()
	return transcripttest.CallStreams(t, redisAddr)
}

// SIGTERM during calls: new calls get 503, calls in progress end at the
// drain deadline with every final and call.end published, and the process
// exits 0.
func TestServeDrainOnSIGTERM(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr, "-drain", "2s")
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	speech := siptest.PCMU(append(append([]float32{}, a.Samples...), a.Samples...)) // about 10 s
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- siptest.NewPhone(t).Talk(t, g.sip, speech) }()
	}
	time.Sleep(5500 * time.Millisecond) // the first sentence has been spoken
	g.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if code := siptest.NewPhone(t).Talk(t, g.sip, speech[:1600]); code != 503 {
		t.Errorf("a call while draining got %d, want 503", code)
	}
	select {
	case err := <-g.exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit")
	}
	<-done
	<-done
	events := callEvents(t, rd.Addr)
	if len(events) != 2 {
		t.Fatalf("%d calls on Redis", len(events))
	}
	for k, evs := range events {
		last := evs[len(evs)-1]
		var finals []string
		for _, e := range evs {
			if e["type"] == "final" {
				finals = append(finals, e["text"].(string))
			}
		}
		if last["type"] != "call.end" || last["reason"] != "shutdown" || len(finals) == 0 {
			t.Errorf("%s: last %v, finals %q", k, last, finals)
		}
		if !strings.Contains(strings.Join(finals, " "), "APPREHENSION") {
			t.Errorf("%s: finals %q", k, finals)
		}
	}
}

// Redis unreachable at start: the gateway runs, not ready, and spools.
func TestServeWithoutRedisStartsNotReady(t *testing.T) {
	g := startGateway(t, freePort(t, "tcp")) // nothing listens there
	g.waitReady(t, 503)
	res, err := http.Get("http://" + g.http + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res, err = http.Get("http://" + g.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	res.Body.Close()
	for _, m := range []string{"callscribe_redis_spool_depth", "callscribe_calls_active 0", `callscribe_calls_ended_total{reason="timeout"} 0`,
		"callscribe_rtp_lost_total", "callscribe_asr_step_seconds_total", "callscribe_redis_errors_total",
		`callscribe_asr_engines{provider="cpu"}`, "callscribe_asr_recoveries_total 0"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if !strings.Contains(body.String(), "callscribe_redis_spool_depth") {
		t.Errorf("metrics:\n%s", body.String())
	}
	g.cmd.Process.Signal(syscall.SIGINT)
	if err := <-g.exited; err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
}

// What a container's environment sets: with CALLSCRIBE_LOG_FORMAT=json
// every line the gateway writes is a JSON object with a level and a
// message, go-redis's own (a failed dial) too; the tokens guard /metrics
// and /events, for this host too.
func TestServeFromEnvironment(t *testing.T) {
	g := startGatewayEnv(t, []string{"CALLSCRIBE_LOG_FORMAT=json", "CALLSCRIBE_WEBRTC_TOKEN=w3brtc", "CALLSCRIBE_METRICS_TOKEN=m3trics"},
		freePort(t, "tcp")) // nothing listens for Redis
	g.waitReady(t, 503)
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", 401}, {"/metrics", "m3trics", 200}, {"/events/x", "", 401}, {"/calls/x/pause", "", 401}, {"/calls/x/pause", "w3brtc", 404},
	} {
		method := "GET"
		if strings.HasPrefix(c.path, "/calls/") {
			method = "POST"
		}
		if code, _ := g.request(t, method, c.path, c.token); code != c.want {
			t.Errorf("%s %s with %q: %d, want %d", method, c.path, c.token, code, c.want)
		}
	}
	var serving, redisDial bool
	for start := time.Now(); !(serving && redisDial) && time.Since(start) < 10*time.Second; time.Sleep(100 * time.Millisecond) {
		serving, redisDial = false, false
		for _, line := range strings.Split(strings.TrimSpace(g.out.String()), "\n") {
			var e struct{ Level, Msg string }
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Level == "" || e.Msg == "" {
				t.Fatalf("not a JSON log line: %q (%v)", line, err)
			}
			serving = serving || e.Msg == "callscribe: serving"
			redisDial = redisDial || (strings.HasPrefix(e.Msg, "redis: ") && e.Level == "WARN")
		}
	}
	if !serving || !redisDial {
		t.Errorf("serving line %v, go-redis line %v:\n%s", serving, redisDial, g.out.String())
	}
}

// runServe runs `callscribe serve args...` as a process to its end and
// returns its standard output, the last line of its standard error and its
// exit error.
func runServe(args ...string) (stdout, lastErrLine string, err error) {
	stdout, stderr, err := runServeAll(args...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	return stdout, lines[len(lines)-1], err
}

// runServeAll is runServe with the whole standard error.
func runServeAll(args ...string) (stdout, stderr string, err error) {
	var out, errs bytes.Buffer
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "CALLSCRIBE_TEST_MAIN=1")
	cmd.Stdout, cmd.Stderr = &out, &errs
	err = cmd.Run()
	return out.String(), errs.String(), err
}

// A start that cannot serve exits non-zero with the reason on its last
// line, and what does not need the models (the ports, the files) is
// refused before they load.
func TestServeBadStart(t *testing.T) {
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badConfig, []byte("asr:\n  max_batch: -3\n"), 0o644)
	badTLS := filepath.Join(t.TempDir(), "tls.yaml")
	os.WriteFile(badTLS, []byte("http:\n  tls_cert_file: "+badConfig+"\n  tls_key_file: "+badConfig+"\n"), 0o644)
	busy, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer busy.Close()
	busyTCP, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busyTCP.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad port range", []string{"-rtp-ports", "9-1"}, "sip.rtp_ports"},
		{"bad config file", []string{"-config", badConfig}, "asr.max_batch"},
		{"missing config file", []string{"-config", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"busy SIP port", []string{"-sip", busy.LocalAddr().String()}, "sip.udp: listen udp"},
		{"busy HTTP port", []string{"-http", busyTCP.Addr().String()}, "http.addr: listen tcp"},
		{"no model", []string{"-model", t.TempDir()}, "no encoder"},
		{"no second-pass model", []string{"-final-model", t.TempDir()}, "asr.final_model"},
		{"bad HTTPS key", []string{"-config", badTLS}, "http.tls_cert_file"},
	} {
		_, stderr, err := runServeAll(append([]string{"-sip", freePort(t, "udp"), "-http", freePort(t, "tcp"), "-redis", freePort(t, "tcp"),
			"-rtp-ports", "35000-35100", "-model", testModelDir(t)}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		lastLine := lines[len(lines)-1]
		if err == nil || !strings.Contains(lastLine, tc.want) || !strings.HasPrefix(lastLine, "callscribe serve: ") {
			t.Errorf("%s: %v, last line %q", tc.name, err, lastLine)
		}
		// Refused before the models load (the first pass's calibration
		// says the capacity), not seconds after.
		if strings.Contains(stderr, "callscribe: capacity") {
			t.Errorf("%s: refused after the models loaded:\n%s", tc.name, stderr)
		}
	}
}

// SIGHUP reads the configuration file again: new SIP requests need the
// digest users it now names and /metrics its token; a call in progress
// goes on to its transcript; a change that needs a restart (sip.invite_rate)
// is named; a file that does not validate changes nothing.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	metrics := func(token string) int {
		code, _ := g.request(t, "GET", "/metrics", token)
		return code
	}
	waitLog := func(msg string) string {
		t.Helper()
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
			if out := g.out.String(); strings.Contains(out, msg) {
				return out
			}
		}
		t.Fatalf("no %q in the log:\n%s", msg, g.out.String())
		return ""
	}
	talked := callAsync(t, g.sip, testWAV(t, "8k.wav").Samples)
	time.Sleep(time.Second) // the call is up

	if err := os.WriteFile(config, []byte("sip:\n  users: {alice: s3cret}\n  invite_rate: 50\nhttp:\n  metrics_token: m3trics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	out := waitLog("callscribe: configuration reloaded")
	if !strings.Contains(out, "need_restart=[sip]") {
		t.Errorf("sip.invite_rate needs a restart, log:\n%s", out)
	}
	if got := metrics(""); got != 401 {
		t.Errorf("/metrics without the new token: %d", got)
	}
	if got := metrics("m3trics"); got != 200 {
		t.Errorf("/metrics with it: %d", got)
	}
	other, err := siptest.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if res, err := other.Call(g.sip, siptest.PCMU(make([]float32, 1600))); err != nil || res.Code != 401 {
		t.Errorf("a new call without credentials: %d %v", res.Code, err)
	}
	answeredAndHeard(t, rd.Addr, talked, "8k.wav", "the call across the reload")

	// A file that does not validate: refused, the token stays.
	if err := os.WriteFile(config, []byte("asr:\n  max_batch: -3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("callscribe: configuration not reloaded")
	if got := metrics(""); got != 401 {
		t.Errorf("/metrics after a refused reload: %d", got)
	}
	_, body := g.request(t, "GET", "/metrics", "m3trics")
	for _, m := range []string{`callscribe_config_reloads_total{result="ok"} 1`, `callscribe_config_reloads_total{result="error"} 1`} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "callscribe devel go1.") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

// serve -check finds what a start would stop on, without binding a port
// or reaching Redis, and says what it found when all is well.
func TestServeCheck(t *testing.T) {
	dir := t.TempDir()
	badConfig := configFile(t, "asr:\n  max_batch: -3\n")
	badTLS := configFile(t, "http:\n  tls_cert_file: "+badConfig+"\n  tls_key_file: "+badConfig+"\n")
	badCA := configFile(t, "sip:\n  tls_client:\n    ca_file: "+badConfig+"\n")
	vad := configFile(t, "asr:\n  endpoint:\n    mode: vad\n  vad_model: "+filepath.Join(dir, "none.onnx")+"\n")
	busy, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string // on stderr's last line; empty: exit 0 and "configuration ok"
	}{
		{"bad config file", []string{"-config", badConfig}, "asr.max_batch"},
		{"no model", []string{"-model", dir}, "no encoder"},
		{"bad HTTPS key", []string{"-config", badTLS}, "http.tls_cert_file"},
		{"bad CA file", []string{"-config", badCA}, "sip.tls_client.ca_file"},
		{"no VAD model", []string{"-config", vad}, "asr.vad_model"},
		{"no second-pass model", []string{"-final-model", dir}, "asr.final_model"},
		{"busy SIP port, nothing bound", []string{"-sip", busy.LocalAddr().String()}, ""},
	} {
		stdout, last, err := runServe(append([]string{"-check", "-redis", freePort(t, "tcp"), "-model", testModelDir(t)}, tc.args...)...)
		switch {
		case tc.want == "" && (err != nil || !strings.Contains(stdout, "configuration ok: model "+testModelDir(t))):
			t.Errorf("%s: %v, stdout %q, stderr's last line %q", tc.name, err, stdout, last)
		case tc.want != "" && (err == nil || !strings.Contains(last, tc.want) || !strings.HasPrefix(last, "callscribe serve: ")):
			t.Errorf("%s: %v, last line %q", tc.name, err, last)
		}
	}
}

// The gateway as a process: concurrent SIP calls in PCMU and PCMA with
// speech; on Redis every call has call.start with its headers, partials,
// finals equal to what transcribe gives for the same 8 kHz audio (the last
// utterance before BYE included), call.end, and strictly increasing seq.
func TestServeEndToEnd(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	payloads := map[uint8][]byte{0: siptest.PCMU(a.Samples), 8: siptest.PCMA(a.Samples)}
	done := make(chan struct{})
	for i, pt := range []uint8{0, 8, 0} {
		go func() {
			defer func() { done <- struct{}{} }()
			ph := siptest.NewPhone(t)
			ph.PT = pt
			ph.Talk(t, g.sip, payloads[pt], sipmsg.NewHeader("X-Call-Ref", fmt.Sprint("ref-", i)))
		}()
	}
	for range 3 {
		<-done
	}
	// What transcribe prints for the same audio after G.711, as 8 kHz WAVs.
	want := map[string]string{}
	for pt, name := range map[uint8]string{0: "PCMU", 8: "PCMA"} {
		c, _ := media.LookupCodec(name)
		d, _ := c.NewDecoder()
		pcm, _ := d.Decode(nil, payloads[pt])
		path := filepath.Join(t.TempDir(), name+".wav")
		var buf bytes.Buffer
		media.WriteWAV(&buf, media.Audio{SampleRate: 8000, Samples: pcm})
		os.WriteFile(path, buf.Bytes(), 0o644)
		var out, errb bytes.Buffer
		if code := run([]string{"transcribe", "-model", testModelDir(t), path}, &out, &errb); code != 0 {
			t.Fatalf("transcribe: %s", errb.String())
		}
		_, text, _ := strings.Cut(strings.TrimSpace(out.String()), "\t")
		want[name] = text
	}
	var events map[string][]map[string]any
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		events = callEvents(t, rd.Addr)
		ended := 0
		for _, evs := range events {
			if evs[len(evs)-1]["type"] == "call.end" {
				ended++
			}
		}
		if ended == 3 {
			break
		}
	}
	if len(events) != 3 {
		t.Fatalf("%d calls on Redis", len(events))
	}
	for k, evs := range events {
		var finals, types []string
		last := 0
		for _, e := range evs {
			var seq int
			fmt.Sscan(e["seq"].(string), &seq)
			if seq <= last {
				t.Errorf("%s: seq %d after %d", k, seq, last)
			}
			last = seq
			types = append(types, e["type"].(string))
			if e["type"] == "final" {
				finals = append(finals, e["text"].(string))
			}
		}
		start, end := evs[0], evs[len(evs)-1]
		codec, _ := start["codec"].(string)
		if start["type"] != "call.start" || !strings.HasPrefix(fmt.Sprint(start["hdr:X-Call-Ref"]), "ref-") ||
			end["type"] != "call.end" || end["reason"] != "bye" || !strings.Contains(strings.Join(types, " "), "partial") {
			t.Errorf("%s: types %v, start %v, end %v", k, types, start, end)
		}
		if got := strings.Join(finals, " "); got != want[codec] || got == "" {
			t.Errorf("%s (%s): finals %q, transcribe %q", k, codec, got, want[codec])
		}
	}
}

// A browser call over WHIP to the gateway process reaches Redis as a
// webrtc call with a browser leg.
func TestServeWHIP(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	c := webrtctest.NewClient(t)
	c.Publish(t, "http://"+g.http+"/whip")
	for start := time.Now(); c.PC.ConnectionState() != pw.PeerConnectionStateConnected; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("not connected")
		}
	}
	c.Speak(siptest.PCMU(a.Samples))
	c.Hangup(t, "http://"+g.http)
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		for _, evs := range callEvents(t, rd.Addr) {
			last := evs[len(evs)-1]
			if last["type"] != "call.end" {
				continue
			}
			var finals []string
			for _, e := range evs {
				if e["type"] == "final" && e["leg"] == "browser" {
					finals = append(finals, e["text"].(string))
				}
			}
			if evs[0]["source"] != "webrtc" || !strings.Contains(strings.Join(finals, " "), "APPREHENSION") {
				t.Fatalf("start %v, finals %q", evs[0], finals)
			}
			// Counted by source; a refused offer too.
			res, err := http.Post("http://"+g.http+"/whip", "application/sdp", strings.NewReader("v=0 garbage"))
			if err != nil || res.StatusCode != 400 {
				t.Fatalf("a bad offer: %v %v", res, err)
			}
			m := metricsText(t, g.http)
			for _, want := range []string{`callscribe_calls_started_total{source="webrtc"} 1`, `callscribe_calls_started_total{source="sip"} 0`,
				`callscribe_calls_rejected_total{reason="bad_request",source="webrtc"} 1`} {
				if !strings.Contains(m, want+"\n") {
					t.Errorf("metrics lack %s", want)
				}
			}
			return
		}
	}
	t.Fatal("no call.end on Redis")
}

// With a certificate the HTTP side is HTTPS (what a browser on another
// machine needs for the microphone): health, the page, WHIP, all of it.
func TestServeHTTPS(t *testing.T) {
	certFile, keyFile := testcert.Write(t)
	config := configFile(t, "http:\n  tls_cert_file: "+certFile+"\n  tls_key_file: "+keyFile+"\n")
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr, "-config", config)
	pem, _ := os.ReadFile(certFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 5 * time.Second}
	var res *http.Response
	var err error
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if res, err = client.Get("https://" + g.http + "/readyz"); err == nil && res.StatusCode == 200 {
			res.Body.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("https /readyz: %v %v", res, err)
		}
	}
	if res, err = client.Get("https://" + g.http + "/"); err != nil || res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("the page over https: %v %v", res, err)
	}
	res.Body.Close()
	if res, err := http.Get("http://" + g.http + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Error("plain http answered")
	}
}

// The gateway on a Redis Cluster (redis.cluster): a call's events land in
// its stream, read back through the cluster from another node.
func TestServeOnRedisCluster(t *testing.T) {
	nodes := transcripttest.StartCluster(t, 3)
	config := configFile(t, "redis:\n  cluster: true\n")
	g := startGateway(t, nodes[0], "-config", config)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	talked, err := siptest.NewPhone(t).Call(g.sip, siptest.PCMU(a.Samples))
	if err != nil || talked.Code != 200 {
		t.Fatalf("call: %d %v", talked.Code, err)
	}
	if finals := finalsOnRedis(t, transcript.FollowerOptions{Addr: nodes[2], Cluster: true}, talked.CallID); !strings.Contains(finals, "APPREHENSION") {
		t.Errorf("finals %q", finals)
	}
}

// A Redis that speaks only TLS and wants AUTH (a managed service): the
// gateway given its CA, an ACL user and the password from the environment
// is ready and delivers a call's transcript.
func TestServeOnRedisWithTLSAndAUTH(t *testing.T) {
	rd := transcripttest.StartSecure(t)
	config := configFile(t, fmt.Sprintf("redis:\n  username: %s\n  tls: true\n  tls_ca_file: %q\n", rd.User, rd.CAFile))
	g := startGatewayEnv(t, []string{"CALLSCRIBE_REDIS_PASSWORD=" + rd.UserPass, "CALLSCRIBE_FINAL_MODEL=none"}, rd.Addr, "-config", config)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	talked, err := siptest.NewPhone(t).Call(g.sip, siptest.PCMU(a.Samples))
	if err != nil || talked.Code != 200 {
		t.Fatalf("call: %d %v", talked.Code, err)
	}
	conn := transcript.Conn{Username: rd.User, Password: rd.UserPass, TLS: true, TLSCAFile: rd.CAFile}
	if finals := finalsOnRedis(t, transcript.FollowerOptions{Addr: rd.Addr, Conn: conn}, talked.CallID); !strings.Contains(finals, "APPREHENSION") {
		t.Errorf("finals %q", finals)
	}
}

// finalsOnRedis follows a call's stream to its call.end and returns its
// finals' texts.
func finalsOnRedis(t *testing.T, o transcript.FollowerOptions, callID string) string {
	t.Helper()
	f, err := transcript.NewFollower(o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var finals []string
	after := ""
	for ended := false; !ended; {
		ms, err := f.Read(ctx, callID, after, 100, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			after = m.ID
			if m.Event.Type == transcript.Final {
				finals = append(finals, m.Event.Fields["text"])
			}
			ended = ended || m.Event.Type == transcript.CallEnd
		}
	}
	return strings.Join(finals, " ")
}

// A gateway killed (SIGKILL) in the middle of a call: its stream expires
// even so, and the same instance started again ends the call with call.end
// reason restart, seq after the last one written.
func TestServeKilledCallEndsOnRestart(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr)
	g.waitReady(t, 200)
	a := testWAV(t, "8k.wav")
	phone, err := siptest.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	called := make(chan struct{})
	go func() {
		defer close(called)
		phone.Call(g.sip, siptest.PCMU(a.Samples)) // cut short by the kill
	}()
	defer func() { <-called }()
	var key string
	var before []map[string]any
	for start := time.Now(); key == "" && time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		for k, evs := range callEvents(t, rd.Addr) {
			for _, e := range evs {
				if e["type"] == "partial" {
					key, before = k, evs
				}
			}
		}
	}
	if key == "" {
		t.Fatal("no partial on Redis")
	}
	g.cmd.Process.Kill()
	<-g.exited
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := context.Background()
	if ttl := rc.TTL(ctx, key).Val(); ttl <= 0 {
		t.Errorf("the live call's stream has no expiry (ttl %v)", ttl)
	}
	before = callEvents(t, rd.Addr)[key]
	lastSeq, _ := strconv.Atoi(before[len(before)-1]["seq"].(string))
	if before[len(before)-1]["type"] == "call.end" {
		t.Fatal("call.end written by a killed process")
	}

	g2 := startGateway(t, rd.Addr, "-sip", g.sip) // the same instance: host and SIP address
	g2.waitReady(t, 200)
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		evs := callEvents(t, rd.Addr)[key]
		last := evs[len(evs)-1]
		if last["type"] != "call.end" {
			continue
		}
		if last["reason"] != "restart" || last["seq"] != strconv.Itoa(lastSeq+1) || len(evs) != len(before)+1 {
			t.Fatalf("after the restart: %v (before: %d events, last seq %d)", last, len(before), lastSeq)
		}
		return
	}
	t.Fatal("the restarted gateway did not end the call")
}

// The HTTP side faces strangers: a request body that never comes is cut
// at http.read_timeout, an event stream is not, and /metrics can require a
// token.
func TestServeHTTPLimits(t *testing.T) {
	rd := transcripttest.Start(t)
	config := configFile(t, "http:\n  read_timeout: 1s\n  metrics_token: m3trics\n")
	g := startGateway(t, rd.Addr, "-config", config)
	g.waitReady(t, 200)

	slow, err := net.Dial("tcp", g.http)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n")
	start := time.Now()
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(slow) // until the server closes it
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a body that never comes held the connection %v", d)
	}

	stream, err := http.Get("http://" + g.http + "/events/some-call")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(stream.Body)
		done <- err
	}()
	defer func() { stream.Body.Close(); <-done }()
	select {
	case err := <-done:
		t.Errorf("the event stream ended after the read timeout: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}

	without, _ := g.request(t, "GET", "/metrics", "")
	with, _ := g.request(t, "GET", "/metrics", "m3trics")
	if without != 401 || with != 200 {
		t.Errorf("/metrics: %d without the token, %d with it", without, with)
	}
}
