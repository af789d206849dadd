package transcripttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartCluster runs a Redis Cluster of n masters (n >= 3) on loopback,
// the hash slots spread over them, stopped when the test ends. It returns
// the nodes' addresses; any one of them reaches the cluster.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (run make setup): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found (run make setup): %v", err)
	}
	dir := t.TempDir()
	var addrs []string
	for i := range n {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		nodeDir := filepath.Join(dir, fmt.Sprint("node", i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", nodeDir, "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--protected-mode", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitPong(t, addr)
		addrs = append(addrs, addr)
	}
	var out bytes.Buffer
	create := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	create.Stdout, create.Stderr = &out, &out
	if err := create.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		info, _ := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
		if strings.Contains(string(info), "cluster_state:ok") {
			return addrs
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the cluster did not come up:\n%s", info)
		}
	}
}

// waitPong waits until a redis-server answers PING.
func waitPong(t testing.TB, addr string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			fmt.Fprintf(c, "PING\r\n")
			buf := make([]byte, 16)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
	}
	t.Fatalf("redis-server did not come up on %s", addr)
}
