package transcripttest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/callscribe/callscribe/internal/testcert"
)

// Secure is a redis-server that speaks only TLS and wants AUTH, as a
// managed Redis service does: the default user has a password
// (requirepass) and an ACL user has another.
type Secure struct {
	Addr     string // 127.0.0.1:PORT, TLS only
	CAFile   string // PEM: the self-signed certificate it serves (127.0.0.1, localhost)
	Password string // the default user's
	User     string // an ACL user with every right
	UserPass string // its password
}

// StartSecure runs such a server on a free port until the test ends.
func StartSecure(t testing.TB) *Secure {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (run make setup): %v", err)
	}
	dir := t.TempDir()
	cert, key := testcert.Write(t)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	s := &Secure{Addr: addr, CAFile: cert, Password: "s3cret-default", User: "gateway", UserPass: "s3cret-gateway"}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", "0", "--tls-port", port, "--tls-cert-file", cert,
		"--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no", "--requirepass", s.Password,
		"--user", s.User, "on", ">"+s.UserPass, "~*", "&*", "+@all", "--dir", dir, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(b)
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "AUTH %s\r\nPING\r\n", s.Password)
		r := bufio.NewReader(c)
		ok, _ := r.ReadString('\n')
		pong, _ := r.ReadString('\n')
		c.Close()
		if ok == "+OK\r\n" && pong == "+PONG\r\n" {
			return s
		}
	}
	t.Fatalf("redis-server with TLS did not come up on %s", addr)
	return nil
}
