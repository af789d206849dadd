package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// startKamailio runs the load balancer of deployments/kamailio in front of
// the given gateways; it returns its SIP address.
func startKamailio(t *testing.T, gateways ...string) string {
	t.Helper()
	return startKamailioWith(t, nil, gateways...)
}

// startKamailioWith is startKamailio with -A defines of the configuration
// (WITH_SST, SST_MIN_SE=2).
func startKamailioWith(t *testing.T, defines []string, gateways ...string) string {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		t.Fatal("no kamailio on PATH: run scripts/setup (it installs Debian's kamailio)")
	}
	dir := t.TempDir()
	var list strings.Builder
	for _, g := range gateways {
		fmt.Fprintf(&list, "1 sip:%s\n", g)
	}
	os.WriteFile(filepath.Join(dir, "dispatcher.list"), []byte(list.String()), 0o644)
	addr := freePort(t, "udp")
	logf, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := []string{"-DD", "-E", "-f", "../../deployments/kamailio/kamailio.cfg", "-l", "udp:" + addr,
		"-Y", dir, "-A", `DISPATCHER_LIST="` + filepath.Join(dir, "dispatcher.list") + `"`}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers are stopped with it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("kamailio:\n%s", b)
		}
	})
	// Up once it answers an OPTIONS of its own.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	probe := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-probe\r\nMax-Forwards: 70\r\n"+
		"From: <sip:test@127.0.0.1>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		addr, conn.LocalAddr(), addr)
	buf := make([]byte, 2048)
	for start := time.Now(); ; {
		conn.Write([]byte(probe))
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("kamailio did not answer OPTIONS")
		}
	}
	return addr
}

func callsStarted(t *testing.T, g *gatewayProc) int {
	t.Helper()
	v := strings.Fields(metric(metricsText(t, g.http), `callscribe_calls_started_total{source="sip"}`))
	n, err := strconv.ParseFloat(v[len(v)-1], 64)
	if err != nil {
		t.Fatalf("calls_started: %v", v)
	}
	return int(n)
}

// The Kamailio configuration of deployments/ in front of two gateway
// processes: new calls are spread over both; once one drains (SIGTERM with
// a call in progress), its OPTIONS answer 503 and every new call goes to the
// other, none refused.
func TestKamailioBalancesAndDrains(t *testing.T) {
	rd := transcripttest.Start(t)
	g1 := startGateway(t, rd.Addr, "-drain", "30s")
	g2 := startGateway(t, rd.Addr, "-rtp-ports", "36000-36999")
	g1.waitReady(t, 200)
	g2.waitReady(t, 200)
	lb := startKamailio(t, g1.sip, g2.sip)

	tone := make([]float32, 4000) // half a second
	for i := range tone {
		tone[i] = 0.1
	}
	short := siptest.PCMU(tone)
	for i := range 4 {
		if code := siptest.NewPhone(t).Talk(t, lb, short); code != 200 {
			t.Fatalf("call %d through the balancer: %d", i, code)
		}
	}
	n1, n2 := callsStarted(t, g1), callsStarted(t, g2)
	if n1+n2 != 4 || n1 == 0 || n2 == 0 {
		t.Fatalf("calls per gateway: %d and %d, want both used", n1, n2)
	}

	// g1 drains with a call in progress (placed on it directly).
	long := siptest.PCMU(make([]float32, 8000*8))
	done := make(chan int)
	go func() { done <- siptest.NewPhone(t).Talk(t, g1.sip, long) }()
	for start := time.Now(); callsStarted(t, g1) != n1+1; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the long call did not start on g1")
		}
	}
	g1.cmd.Process.Signal(syscall.SIGTERM)
	for i := range 4 {
		if code := siptest.NewPhone(t).Talk(t, lb, short); code != 200 {
			t.Fatalf("call %d while g1 drains: %d", i, code)
		}
	}
	if got := callsStarted(t, g1); got != n1+1 {
		t.Errorf("g1 took %d calls while draining", got-n1-1)
	}
	if got := callsStarted(t, g2); got != n2+4 {
		t.Errorf("g2 took %d of the 4 calls", got-n2)
	}
	if code := <-done; code != 200 {
		t.Errorf("the call on the draining gateway: %d", code)
	}
}

// Two gateways with room for two calls each behind the Kamailio
// configuration: four calls at once are all answered, two on each; a
// gateway that is full answers 503 and the balancer tries the other.
func TestKamailioRoutesAroundAFullGateway(t *testing.T) {
	rd := transcripttest.Start(t)
	g1 := startGateway(t, rd.Addr, "-max-streams", "2")
	g2 := startGateway(t, rd.Addr, "-max-streams", "2", "-rtp-ports", "36000-36999")
	g1.waitReady(t, 200)
	g2.waitReady(t, 200)
	lb := startKamailio(t, g1.sip, g2.sip)
	speech := siptest.PCMU(make([]float32, 8000*3))
	codes, err := siptest.PlaceCalls(4, lb, speech, 100*time.Millisecond).Wait()
	if err != nil {
		t.Error(err)
	}
	for i, c := range codes {
		if c != 200 {
			t.Errorf("call %d through the balancer: %d (all: %v)", i, c, codes)
		}
	}
	if n1, n2 := callsStarted(t, g1), callsStarted(t, g2); n1 != 2 || n2 != 2 {
		t.Errorf("calls per gateway: %d and %d, want 2 and 2", n1, n2)
	}
}
