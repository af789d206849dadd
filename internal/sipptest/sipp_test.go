package sipptest

import (
	"bytes"
	"net"
	"testing"
)

// A SIP port taken between the check and sipp's bind is tried again on
// other ports: the second run gets past binding and fails only at the
// target, where nothing listens.
func TestBindRaceTriesOtherPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	ports := func(t testing.TB) (int, int) {
		calls++
		if calls == 1 {
			return taken, taken + 2
		}
		return sippPorts(t)
	}
	// A target that refuses: nothing listens on the port just released.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := c.LocalAddr().String()
	c.Close()
	out, err := run(t, t.TempDir(), ports, []string{"-sn", "uac", "-t", "t1", "-m", "1", "-nostdin", "-timeout", "2s", target})
	if calls != 2 {
		t.Errorf("ports asked %d times, want 2", calls)
	}
	if err == nil || bytes.Contains(out, []byte("Unable to bind")) {
		t.Errorf("second run: %v\n%s", err, out)
	}
}
