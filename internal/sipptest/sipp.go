// Package sipptest runs Debian's sipp (sip-tester) for tests on loopback.
package sipptest

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// Sipp runs Debian's sipp (sip-tester) from dir with args (scenario,
// options, the target last) on 127.0.0.1, its SIP port free for UDP and
// TCP and its media ports free for UDP. Ports found free can be taken by
// another process before sipp binds them; a run that could not bind
// ("Unable to bind", exit 254 before any call) is tried again on new
// ports, three times at most. It returns sipp's stdout followed by its stderr
// and its exit error.
func Sipp(t testing.TB, dir string, args ...string) ([]byte, error) {
	t.Helper()
	return run(t, dir, sippPorts, args)
}

func run(t testing.TB, dir string, ports func(testing.TB) (sig, media int), args []string) ([]byte, error) {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("no sipp on PATH: run scripts/setup (it installs Debian's sip-tester)")
	}
	var out []byte
	for range 3 {
		sig, media := ports(t)
		all := append([]string{"-i", "127.0.0.1", "-p", strconv.Itoa(sig), "-mp", strconv.Itoa(media)}, args...)
		cmd := exec.Command(bin, all...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		out = append(out, stderr.Bytes()...)
		if err == nil || !bytes.Contains(stderr.Bytes(), []byte("Unable to bind")) {
			return out, err
		}
		t.Logf("sipp could not bind its ports, trying others: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	return out, err
}

// FreeSIPPort is a port on 127.0.0.1 free for both UDP and TCP (a SIP
// listener takes both).
func FreeSIPPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// sippPorts finds a SIP port (FreeSIPPort) and a media port with the four
// after it free for UDP (sipp's audio and video RTP and RTCP): the two
// after the SIP port.
func sippPorts(t testing.TB) (sig, media int) {
	t.Helper()
	for range 100 {
		port := FreeSIPPort(t)
		free := port+5 < 65536
		var held []net.PacketConn
		for p := port + 1; free && p <= port+5; p++ {
			if c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				held = append(held, c)
			} else {
				free = false
			}
		}
		for _, c := range held {
			c.Close()
		}
		if free {
			return port, port + 2
		}
	}
	t.Fatal("no free ports for sipp on 127.0.0.1")
	return 0, 0
}
