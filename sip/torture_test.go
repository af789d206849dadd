package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// tortureCases are hostile and tortuous messages after the categories of
// RFC 4475 (written here, not copied): folding and odd spacing, escapes,
// unknown methods and headers, huge and missing fields, lying lengths,
// broken quoting, binary garbage. LOCAL is the sender's address, SERVER the
// gateway's.
var tortureCases = []struct{ name, msg string }{
	{"folded and spaced headers", "OPTIONS sip:svc@SERVER;unknownparam SIP/2.0\r\nTO :\r\n sip:svc@SERVER ;   tag    = 1918\r\nfrom   : \"A \\\"B\\\" C\"  <sip:a@example.com>\r\n  ;\r\n  tag = 98asjd8\r\nMaX-fOrWaRdS: 0068\r\ni: fold.1\r\nContent-Length   : 0\r\ncseq: 0009\r\n  OPTIONS\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    LOCAL;branch=z9hG4bKfold1\r\nNewFangled:   value\r\n continued\r\nOdd: ;;,,;;,;\r\n\r\n"},
	{"escapes in URIs", "OPTIONS sip:sips%3Auser%40example.com@SERVER SIP/2.0\r\nTo: sip:%75se%72@example.com\r\nFrom: <sip:I%20have%20spaces@example.net>;tag=esc\r\nMax-Forwards: 87\r\nCall-ID: esc.1\r\nCSeq: 234234 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKesc1\r\nContent-Length: 0\r\n\r\n"},
	{"unknown method", "FROBNICATE sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=1\r\nMax-Forwards: 70\r\nCall-ID: meth.1\r\nCSeq: 1 FROBNICATE\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKmeth1\r\nContent-Length: 0\r\n\r\n"},
	{"IPv6 references", "OPTIONS sip:[2001:db8::10]:5070 SIP/2.0\r\nTo: <sip:[2001:db8::10]>\r\nFrom: <sip:a@[2001:db8::9]>;tag=v6\r\nMax-Forwards: 70\r\nCall-ID: v6.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKv61\r\nContact: <sip:a@[2001:db8::9]:5060>\r\nContent-Length: 0\r\n\r\n"},
	{"a 10 kB header", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=long\r\nMax-Forwards: 70\r\nCall-ID: long.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKlong1\r\nX-Long: " + strings.Repeat("x", 10000) + "\r\nContent-Length: 0\r\n\r\n"},
	{"fifty Vias", "OPTIONS sip:svc@SERVER SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKvias1\r\n" + strings.Repeat("Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n", 50) + "To: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=vias\r\nMax-Forwards: 70\r\nCall-ID: vias.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"},
	{"Content-Length past the body", "INVITE sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=cl\r\nMax-Forwards: 70\r\nCall-ID: cl.1\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKcl1\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\nv=0\r\n"},
	{"negative Content-Length", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=ncl\r\nMax-Forwards: 70\r\nCall-ID: ncl.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKncl1\r\nContent-Length: -999\r\n\r\n"},
	{"huge Content-Length", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=hcl\r\nMax-Forwards: 70\r\nCall-ID: hcl.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKhcl1\r\nContent-Length: 99999999999999999999\r\n\r\n"},
	{"non-numeric CSeq", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=cs\r\nMax-Forwards: 70\r\nCall-ID: cs.1\r\nCSeq: abc OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKcs1\r\nContent-Length: 0\r\n\r\n"},
	{"overlarge numbers", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=big\r\nMax-Forwards: 300000000000\r\nCall-ID: big.1\r\nCSeq: 36893488147419103232 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKbig1\r\nExpires: 10000000000000000\r\nContent-Length: 0\r\n\r\n"},
	{"no Call-ID, From or To", "OPTIONS sip:svc@SERVER SIP/2.0\r\nMax-Forwards: 70\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKmiss1\r\nContent-Length: 0\r\n\r\n"},
	{"spaces in the request line", "OPTIONS  sip:svc@SERVER  SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=sp\r\nMax-Forwards: 70\r\nCall-ID: sp.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKsp1\r\nContent-Length: 0\r\n\r\n"},
	{"unterminated quote", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: \"Mr. J. User <sip:a@example.com>;tag=q\r\nMax-Forwards: 70\r\nCall-ID: q.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKq1\r\nContent-Length: 0\r\n\r\n"},
	{"unbracketed URI with parameters", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: sip:svc@SERVER;tag=a;lr\r\nFrom: sip:a@example.com?Subject=x;tag=ub\r\nContact: sip:a@LOCAL;expires=1, <sip:b@LOCAL>\r\nMax-Forwards: 70\r\nCall-ID: ub.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKub1\r\nContent-Length: 0\r\n\r\n"},
	{"binary garbage", "OPTIONS sip:svc@SERVER SIP/2.0\r\n\x00\x01\x02\xff\xfe\r\nCall-ID: bin.1\r\n\r\n"},
	{"an unsolicited response", "SIP/2.0 200 OK\r\nTo: <sip:svc@SERVER>;tag=r\r\nFrom: <sip:a@example.com>;tag=r\r\nCall-ID: resp.1\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP SERVER;branch=z9hG4bKresp1\r\nContent-Length: 0\r\n\r\n"},
	{"two To headers", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nTo: <sip:other@SERVER>\r\nFrom: <sip:a@example.com>;tag=2to\r\nMax-Forwards: 70\r\nCall-ID: 2to.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK2to1\r\nContent-Length: 0\r\n\r\n"},
	{"an INVITE with garbage SDP", "INVITE sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=sdp\r\nMax-Forwards: 70\r\nCall-ID: sdp.1\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKsdp1\r\nContact: <sip:a@LOCAL>\r\nContent-Type: application/sdp\r\nContent-Length: 30\r\n\r\nm=audio -1 RTP/AVP 0 0 0\r\nc=IN\r\n"},
	{"no Via branch", "OPTIONS sip:svc@SERVER SIP/2.0\r\nTo: <sip:svc@SERVER>\r\nFrom: <sip:a@example.com>;tag=nb\r\nMax-Forwards: 70\r\nCall-ID: nb.1\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP LOCAL\r\nContent-Length: 0\r\n\r\n"},
	{"empty lines only", "\r\n\r\n\r\n\r\n"},
}

// Every torture case through the real server, over UDP and over TCP (each
// on a connection of its own, then all on one): each gets an answer or
// none, no handler panics, and the server still answers a proper OPTIONS.
func TestTortureMessages(t *testing.T) {
	srv, _, addr := startServer(t, Config{TCP: "127.0.0.1:0", AckTimeout: time.Second})
	var tcp string
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			tcp = a.String()
		}
	}
	udp := rtpSocket(t)
	to, _ := net.ResolveUDPAddr("udp", addr)
	fill := func(msg, local, server string) string {
		return strings.ReplaceAll(strings.ReplaceAll(msg, "LOCAL", local), "SERVER", server)
	}
	for _, tc := range tortureCases {
		udp.WriteToUDP([]byte(fill(tc.msg, udp.LocalAddr().String(), addr)), to)
		c, err := net.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.ReplaceAll(fill(tc.msg, c.LocalAddr().String(), tcp), "SIP/2.0/UDP", "SIP/2.0/TCP")
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		if n, err := c.Read(buf); err == nil && !strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
			t.Errorf("%s over TCP: not a SIP answer: %q", tc.name, buf[:n])
		}
		c.Close()
	}
	all, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tortureCases {
		all.Write([]byte(strings.ReplaceAll(fill(tc.msg, all.LocalAddr().String(), tcp), "SIP/2.0/UDP", "SIP/2.0/TCP")))
	}
	all.Close()
	time.Sleep(200 * time.Millisecond)
	if n := srv.Panics(); n != 0 {
		t.Errorf("%d handlers panicked", n)
	}
	probe := fmt.Sprintf("OPTIONS sip:svc@%s SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKalive\r\nMax-Forwards: 70\r\n"+
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:svc@%s>\r\nCall-ID: alive.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", addr, addr)
	if code := rawStatus(t, addr, probe); code != 200 {
		t.Errorf("OPTIONS after the torture: %d", code)
	}
}
