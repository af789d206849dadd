package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// opt builds an OPTIONS-like request from a request line and header lines
// (LOCAL: the sender's address, SERVER: the gateway's).
func opt(first string, headers ...string) string {
	return first + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n"
}

// std are the headers of a plain request, for method m and Call-ID id.
func std(m, id string) []string {
	return []string{"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK" + id, "Max-Forwards: 70", "From: <sip:a@example.com>;tag=" + id,
		"To: <sip:svc@SERVER>", "Call-ID: " + id, "CSeq: 1 " + m, "Content-Length: 0"}
}

// tortureCases follow RFC 4475 case by case: each carries the name and the
// defect (or oddity) of one of its messages, written here for this server
// (the RFC's own text is not copied), plus a few floods of size. Valid ones
// must be parsed; invalid ones answered with an error or dropped; none may
// crash the server or start a call.
var tortureCases = []struct{ name, msg string }{
	// 3.1.1 valid messages.
	{"wsinv: folding, LWS, compact and odd-case names", "OPTIONS sip:svc@SERVER;unknownparam SIP/2.0\r\nTO :\r\n sip:svc@SERVER ;   tag    = 1918\r\nfrom   : \"A \\\"B\\\" C\"  <sip:a@example.com>\r\n  ;\r\n  tag = 98asjd8\r\nMaX-fOrWaRdS: 0068\r\ni: wsinv.1\r\nContent-Length   : 0\r\ncseq: 0009\r\n  OPTIONS\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    LOCAL;branch=z9hG4bKwsinv\r\ns :\r\nNewFangled:   value\r\n continued\r\nOdd: ;;,,;;,;\r\n\r\n"},
	{"intmeth: an unusual method and token characters", opt("NEWMETHOD-0123_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@SERVER SIP/2.0",
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-.!%66*_+`'~", "To: <sip:svc@SERVER>", "From: token1~` token2'+_ <sip:a@example.com>;tag=_token~1'+`*%!-.",
		"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", "CSeq: 139122385 NEWMETHOD-0123_*+`.%indeed'~", "Max-Forwards: 255", "Content-Length: 0")},
	{"esc01: escapes in URIs", opt("OPTIONS sip:sips%3Auser%40example.com@SERVER SIP/2.0", "To: sip:%75se%72@example.com", "From: <sip:I%20have%20spaces@example.net>;tag=esc01",
		"Max-Forwards: 87", "i: esc01.1", "CSeq: 234234 OPTIONS", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKesc01", "Contact: <sip:cal%6Cer@LOCAL;%6C%72;n%61me=v%61lue%25%34%31>", "Content-Length: 0")},
	{"escnull: an escaped NUL in a user part", opt("OPTIONS sip:null-%00-null@SERVER SIP/2.0", "To: <sip:null-%00-null@SERVER>", "From: <sip:null-%00-null@example.com>;tag=escnull",
		"Call-ID: escnull.1", "CSeq: 1 OPTIONS", "Max-Forwards: 70", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKescnull", "Content-Length: 0")},
	{"esc02: an escaped method name", opt("RE%47ISTER sip:SERVER SIP/2.0", append(std("RE%47ISTER", "esc02"), "Contact: <sip:a@LOCAL>")...)},
	{"lwsdisp: no LWS between display name and <", opt("OPTIONS sip:svc@SERVER SIP/2.0", "To: <sip:svc@SERVER>", "From: caller<sip:a@example.com>;tag=lwsdisp",
		"Call-ID: lwsdisp.1", "CSeq: 1 OPTIONS", "Max-Forwards: 70", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKlwsdisp", "Content-Length: 0")},
	{"longreq: very long values everywhere", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKlongreq;"+strings.Repeat("p", 2000)+"=1",
		"Max-Forwards: 70", "From: \""+strings.Repeat("name ", 400)+"\" <sip:a@example.com>;tag=longreq", "To: <sip:svc@SERVER>", "Call-ID: longreq."+strings.Repeat("id", 500),
		"CSeq: 1 OPTIONS", "X-Long: "+strings.Repeat("x", 10000), "Content-Length: 0")},
	{"dblreq: two requests in one datagram", opt("OPTIONS sip:svc@SERVER SIP/2.0", std("OPTIONS", "dblreq1")...) + opt("OPTIONS sip:svc@SERVER SIP/2.0", std("OPTIONS", "dblreq2")...)},
	{"semiuri: a semicolon-separated user part", opt("OPTIONS sip:user;par=u%40example.net@SERVER SIP/2.0", std("OPTIONS", "semiuri")...)},
	{"transports: unknown transports in Vias", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKtransports", "Via: SIP/2.0/SCTP t1.example.com;branch=z9hG4bKa",
		"Via: SIP/2.0/TLS t2.example.com;branch=z9hG4bKb", "Via: SIP/2.0/UNKNOWN t3.example.com;branch=z9hG4bKc", "Max-Forwards: 70", "From: <sip:a@example.com>;tag=tr",
		"To: <sip:svc@SERVER>", "Call-ID: transports.1", "CSeq: 1 OPTIONS", "Content-Length: 0")},
	{"mpart01: a multipart body with a binary part", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "mpart01")[:6],
		"Content-Type: multipart/mixed;boundary=7a9cbec02ceef655", "Content-Length: 105")...) + "--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\x02\xff\xfe binary\r\n--7a9cbec02ceef655--\r\n"},
	{"unreason: an unusual reason phrase in a response", "SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe\r\nVia: SIP/2.0/UDP SERVER;branch=z9hG4bKunreason\r\nCall-ID: unreason.1\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:svc@SERVER>;tag=2\r\nContent-Length: 0\r\n\r\n"},
	{"noreason: no reason phrase", "SIP/2.0 100 \r\nVia: SIP/2.0/UDP SERVER;branch=z9hG4bKnoreason\r\nCall-ID: noreason.1\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:svc@SERVER>\r\nContent-Length: 0\r\n\r\n"},
	// 3.1.2 invalid messages.
	{"badinv01: a bad header and a broken SDP", opt("INVITE sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKbadinv01", "Max-Forwards: 70", "From: <sip:a@example.com>;tag=b1",
		"To: <sip:svc@SERVER>", "Call-ID: badinv01.1", "CSeq: 1 INVITE", "Contact: <sip:a@LOCAL>", "Content-Type: application/sdp", "Content-Length: 20") + "v=0\r\no=\r\nm=audio\r\n"},
	{"clerr: Content-Length past the body", opt("INVITE sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKclerr", "Max-Forwards: 70", "From: <sip:a@example.com>;tag=clerr",
		"To: <sip:svc@SERVER>", "Call-ID: clerr.1", "CSeq: 1 INVITE", "Content-Type: application/sdp", "Content-Length: 9999") + "v=0\r\n"},
	{"scalar02: a negative Content-Length", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "scalar02")[:6], "Content-Length: -999")...)},
	{"scalarlg: overlarge scalar values", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKscalarlg", "Max-Forwards: 300000000000",
		"From: <sip:a@example.com>;tag=lg", "To: <sip:svc@SERVER>", "Call-ID: scalarlg.1", "CSeq: 36893488147419103232 OPTIONS", "Expires: 10000000000000000", "Content-Length: 0")},
	{"quotbal: unbalanced quotes", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKquotbal", "Max-Forwards: 70",
		"From: \"Mr. J. User <sip:a@example.com>;tag=qb", "To: <sip:svc@SERVER>", "Call-ID: quotbal.1", "CSeq: 1 OPTIONS", "Content-Length: 0")},
	{"ltgtruri: <> around the Request-URI", opt("OPTIONS <sip:svc@SERVER> SIP/2.0", std("OPTIONS", "ltgtruri")...)},
	{"lwsruri: LWS inside the Request-URI", opt("OPTIONS sip:svc@SERVER;lr SIP/2.0;tag=x SIP/2.0", std("OPTIONS", "lwsruri")...)},
	{"lwsstart: more than one SP in the request line", opt("OPTIONS  sip:svc@SERVER  SIP/2.0", std("OPTIONS", "lwsstart")...)},
	{"trws: trailing whitespace after the version", opt("OPTIONS sip:svc@SERVER SIP/2.0 ", std("OPTIONS", "trws")...)},
	{"escruri: an unescaped space in a URI", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKescruri", "Max-Forwards: 70", "From: <sip:a@example.com>;tag=er",
		"To: <sip:svc@SERVER>", "Call-ID: escruri.1", "CSeq: 1 OPTIONS", "Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>", "Content-Length: 0")},
	{"baddate: a non-GMT date", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "baddate"), "Date: Fri, 01 Jan 2010 16:00:00 EST")...)},
	{"regbadct: a Contact with an unquoted URI with parameters", opt("REGISTER sip:SERVER SIP/2.0", append(std("REGISTER", "regbadct"), "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E")...)},
	{"badaspec: a space before the addr-spec's >", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKbadaspec", "Max-Forwards: 70",
		"From: \"Bell, Alexander\" <sip:a.g.bell@example.com >;tag=ba", "To: <sip:svc@SERVER>", "Call-ID: badaspec.1", "CSeq: 1 OPTIONS", "Content-Length: 0")},
	{"baddn: an unquoted display name with a comma", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKbaddn", "Max-Forwards: 70",
		"From: Bell, Alexander <sip:a.g.bell@example.com>;tag=bd", "To: <sip:svc@SERVER>", "Call-ID: baddn.1", "CSeq: 1 OPTIONS", "Content-Length: 0")},
	{"badvers: SIP/7.0", opt("OPTIONS sip:svc@SERVER SIP/7.0", std("OPTIONS", "badvers")...)},
	{"mismatch01: CSeq of another method", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "mismatch01")[:5], "CSeq: 1 INVITE", "Content-Length: 0")...)},
	{"mismatch02: an unknown method with CSeq of another", opt("NEWMETHOD sip:svc@SERVER SIP/2.0", append(std("NEWMETHOD", "mismatch02")[:5], "CSeq: 1 INVITE", "Content-Length: 0")...)},
	{"bigcode: a response code out of range", "SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP SERVER;branch=z9hG4bKbigcode\r\nCall-ID: bigcode.1\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:svc@SERVER>;tag=2\r\nContent-Length: 0\r\n\r\n"},
	// 3.3 application-layer semantics.
	{"insuf: required headers missing", opt("OPTIONS sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKinsuf", "Max-Forwards: 70", "CSeq: 1 OPTIONS", "Content-Length: 0")},
	{"unkscm: an unknown URI scheme", opt("OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0", std("OPTIONS", "unkscm")...)},
	{"novelsc: a novel scheme in To", opt("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0", append(std("OPTIONS", "novelsc")[:3], "To: <soap.beep://192.0.2.103:3002>",
		"Call-ID: novelsc.1", "CSeq: 1 OPTIONS", "Content-Length: 0")...)},
	{"unksm2: an unknown scheme in To only", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "unksm2")[:3], "To: isbn:2983792873",
		"Call-ID: unksm2.1", "CSeq: 1 OPTIONS", "Content-Length: 0")...)},
	{"bext01: Require of an unknown extension", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "bext01"), "Require: nothingSupportsThis, nothingSupportsThisEither")...)},
	{"cparam01: Contact parameters of a REGISTER", opt("REGISTER sip:SERVER SIP/2.0", append(std("REGISTER", "cparam01"), "Contact: sip:+19725552222@gw1.example.net;unknownparam")...)},
	{"regescrt: an escaped Route in a Contact", opt("REGISTER sip:SERVER SIP/2.0", append(std("REGISTER", "regescrt"), "Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>")...)},
	{"sdp01: an INVITE accepting only an unknown body type", opt("INVITE sip:svc@SERVER SIP/2.0", append(std("INVITE", "sdp01")[:6], "Contact: <sip:a@LOCAL>",
		"Accept: text/nobodyKnowsThis", "Content-Type: application/sdp", "Content-Length: 0")...)},
	{"inv2543: an RFC 2543 INVITE (no branch cookie, no tags)", opt("INVITE sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL", "Max-Forwards: 70", "From: <sip:a@example.com>",
		"To: <sip:svc@SERVER>", "Call-ID: inv2543.1", "CSeq: 1 INVITE", "Contact: <sip:a@LOCAL>", "Content-Length: 0")},
	{"zeromf: an INVITE with Max-Forwards 0", opt("INVITE sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKzeromf", "Max-Forwards: 0", "From: <sip:a@example.com>;tag=z",
		"To: <sip:svc@SERVER>", "Call-ID: zeromf.1", "CSeq: 1 INVITE", "Contact: <sip:a@LOCAL>", "Content-Length: 0")},
	{"multi01: several values in single-value headers", opt("INVITE sip:svc@SERVER SIP/2.0", "Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKmulti01", "Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=m1", "From: <sip:b@example.com>;tag=m2", "To: <sip:svc@SERVER>", "To: <sip:other@SERVER>", "Call-ID: multi01.1", "Call-ID: multi01.2",
		"CSeq: 1 INVITE", "Contact: <sip:a@LOCAL>", "Content-Length: 0")},
	{"mcl01: several Content-Lengths", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(std("OPTIONS", "mcl01")[:6], "Content-Length: 0", "Content-Length: 4", "l: 8")...)},
	{"bcast: a broadcast Request-URI", opt("OPTIONS sip:svc@255.255.255.255 SIP/2.0", std("OPTIONS", "bcast")...)},
	// Beyond the RFC: sizes and garbage.
	{"fifty Vias", opt("OPTIONS sip:svc@SERVER SIP/2.0", append(append([]string{"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKvias"}, strings.Split(strings.TrimSuffix(strings.Repeat("Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\n", 50), "\n"), "\n")...),
		std("OPTIONS", "vias")[1:]...)...)},
	{"binary garbage", "OPTIONS sip:svc@SERVER SIP/2.0\r\n\x00\x01\x02\xff\xfe\r\nCall-ID: bin.1\r\n\r\n"},
	{"empty lines only", "\r\n\r\n\r\n\r\n"},
}

// Every torture case through the real server, over UDP and over TCP (each
// on a connection of its own, then all on one): each gets an answer or
// none, no handler panics, no call starts but the valid delayed offers,
// those with a defined answer get it, and the server still answers a
// proper OPTIONS.
func TestTortureMessages(t *testing.T) {
	srv, rec, addr := startServer(t, Config{TCP: "127.0.0.1:0", AckTimeout: time.Second})
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
	// The ones with an answer RFC 3261 names get it.
	want := map[string]int{"badvers": 505, "mismatch01": 400, "zeromf": 483, "multi01": 400}
	for _, tc := range tortureCases {
		name, _, _ := strings.Cut(tc.name, ":")
		if code, ok := want[name]; ok {
			if got := rawStatus(t, addr, fill(tc.msg, "LOCAL", addr)); got != code {
				t.Errorf("%s: %d, want %d", name, got, code)
			}
		}
	}
	// Only the two well-formed INVITEs without SDP (inv2543, sdp01) are
	// calls: delayed offers, answered, never ACKed.
	for _, c := range rec.StartedCalls() {
		if id := c.SIPCallID; id != "inv2543.1" && id != "sdp01" {
			t.Errorf("a call started by torture message %s", id)
		}
	}
	probe := fmt.Sprintf("OPTIONS sip:svc@%s SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKalive\r\nMax-Forwards: 70\r\n"+
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:svc@%s>\r\nCall-ID: alive.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", addr, addr)
	if code := rawStatus(t, addr, probe); code != 200 {
		t.Errorf("OPTIONS after the torture: %d", code)
	}
}
