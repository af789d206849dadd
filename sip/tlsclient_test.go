package sip

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/internal/testcert"
)

// The TLS client options verify the peers we dial: against the CA file
// given, else the system's (which do not know a private certificate), or
// not at all when verification is off; a server name overrides the host.
func TestTLSClientVerifiesPeers(t *testing.T) {
	certFile, keyFile := testcert.Write(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		opts TLSClient
		ok   bool
	}{
		{"system CAs", TLSClient{}, false},
		{"system CAs, verify said", TLSClient{Verify: new(true)}, false},
		{"our CA", TLSClient{CAFile: certFile}, true},
		{"our CA, another name", TLSClient{CAFile: certFile, ServerName: "sbc.example.com"}, false},
		{"no verification", TLSClient{Verify: new(false)}, true},
	} {
		cfg, err := tc.opts.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", l.Addr().String(), cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if c != nil {
			c.Close()
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)
	for _, f := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := NewServer(Config{UDP: "127.0.0.1:0", TLSClient: TLSClient{CAFile: f}}, nil); err == nil || !strings.Contains(err.Error(), "ca_file") {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A BYE nobody answers (the caller vanished) is logged and counted.
func TestByeFailureCounted(t *testing.T) {
	srv, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	dead, _ := net.ListenPacket("udp", "127.0.0.1:0")
	deadPort := dead.LocalAddr().(*net.UDPAddr).Port
	dead.Close()
	phone.dc = sipgo.NewDialogClientCache(phone.cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "gone", Host: "127.0.0.1", Port: deadPort}})
	_, c, _ := call(t, phone, rec, addr, 40000)
	srv.Close()
	if c.Reason() != "shutdown" || srv.ByeFailures() != 1 {
		t.Errorf("reason %q, %d BYE failures", c.Reason(), srv.ByeFailures())
	}
}
