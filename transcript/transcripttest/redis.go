// Package transcripttest runs a real redis-server for tests, on loopback,
// stopped when the test ends. Its data is kept in an append-only file in a
// temporary directory, so that it survives Stop and Restart as a production
// server's would.
package transcripttest

import (
	"net"
	"os/exec"
	"testing"
)

// Redis is a redis-server process started by a test.
type Redis struct {
	Addr string
	t    testing.TB
	dir  string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free 127.0.0.1 port.
func Start(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{Addr: freeAddr(t), t: t, dir: t.TempDir()}
	r.Restart()
	t.Cleanup(r.Stop)
	return r
}

// Restart starts the server again on the same address (after Stop).
func (r *Redis) Restart() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatalf("redis-server not found (run make setup): %v", err)
	}
	host, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command(bin, "--bind", host, "--port", port, "--dir", r.dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	waitPong(r.t, r.Addr)
}

// Stop kills the server (an outage). Idempotent.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// freeAddr is a 127.0.0.1 address whose port was free a moment ago, for a
// redis-server to listen on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
