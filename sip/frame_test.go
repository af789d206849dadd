package sip

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFramerFollowsMessages(t *testing.T) {
	msg := func(body string, extra string) string {
		return "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n" + extra + "Content-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	stream := "\r\n\r\n" + msg("v=0\r\n", "") + msg("", "l: 0\r\n") + "\r\n" + msg(strings.Repeat("x", 60000), "")
	for _, chunk := range []int{1, 7, 1500, len(stream)} {
		f := &framer{}
		for i := 0; i < len(stream); i += chunk {
			if !f.feed([]byte(stream[i:min(i+chunk, len(stream))])) {
				t.Fatalf("chunks of %d: a message taken for too large", chunk)
			}
		}
		if len(f.hdr) != 0 || f.body != 0 {
			t.Errorf("chunks of %d: %d header bytes, %d body bytes left", chunk, len(f.hdr), f.body)
		}
	}
	for name, big := range map[string]string{
		"headers": msg("", "X-Big: "+strings.Repeat("y", 70000)+"\r\n"),
		"body":    "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nContent-Length: 100000\r\n\r\n",
	} {
		f := &framer{}
		ok := true
		for i := 0; i < len(big) && ok; i += 1500 {
			ok = f.feed([]byte(big[i:min(i+1500, len(big))]))
		}
		if ok {
			t.Errorf("too large %s not seen", name)
		}
		if res := string(tooLarge(f.hdr)); !strings.HasPrefix(res, "SIP/2.0 513 ") || !strings.Contains(res, "Via: SIP/2.0/TCP h;branch=z9hG4bK") {
			t.Errorf("%s: answer %q", name, res)
		}
	}
}

// An oversized message over TCP gets 513, then the connection closes.
func TestOversizedMessageOverTCP(t *testing.T) {
	srv, _, _ := startServer(t, Config{TCP: "127.0.0.1:0"})
	var tcp string
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			tcp = a.String()
		}
	}
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "OPTIONS sip:svc@" + tcp + " SIP/2.0\r\nVia: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bKbig\r\n" +
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:svc@" + tcp + ">\r\nCall-ID: big.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n" +
		"X-Big: " + strings.Repeat("z", 70000) + "\r\nContent-Length: 0\r\n\r\n"
	go c.Write([]byte(msg))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); !strings.HasPrefix(got, "SIP/2.0 513 Message Too Large") || !strings.Contains(got, "Call-ID: big.1") {
		t.Errorf("answer to a 70 kB message: %q", got)
	}
}
