package sip

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/media"
)

// peerMsg is a SIP message that reached a proxyPeer, with how it came.
type peerMsg struct {
	transport string // "UDP" or "TCP"
	text      string
	reply     func(string) // sends a message back the way this one came
}

// proxyPeer stands for the proxy next to us of a call that came through
// several: a UDP socket on 127.0.0.1 and, when asked, a TCP listener on
// the same port. What reaches either comes on msgs; its goroutines end
// when the test does.
type proxyPeer struct {
	udp  *net.UDPConn
	tcp  net.Listener // nil: none
	msgs chan peerMsg
	port int
}

func newProxyPeer(t *testing.T, withTCP bool) *proxyPeer {
	t.Helper()
	p := &proxyPeer{msgs: make(chan peerMsg, 64)}
	for try := 0; p.udp == nil && try < 20; try++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if withTCP {
			l, err := net.Listen("tcp", u.LocalAddr().String())
			if err != nil { // the port is taken for TCP: another
				u.Close()
				continue
			}
			p.tcp = l
		}
		p.udp = u
	}
	if p.udp == nil {
		t.Fatal("no port free for UDP and TCP")
	}
	p.port = p.udp.LocalAddr().(*net.UDPAddr).Port
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := p.udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.msgs <- peerMsg{"UDP", string(buf[:n]), func(s string) { p.udp.WriteToUDP([]byte(s), from) }}
		}
	}()
	if p.tcp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := p.tcp.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					readStream(c, p.msgs)
				}()
			}
		}()
	}
	t.Cleanup(func() {
		p.udp.Close()
		if p.tcp != nil {
			p.tcp.Close()
		}
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// readStream reads SIP messages off a TCP connection until it closes.
func readStream(c net.Conn, out chan<- peerMsg) {
	r := bufio.NewReader(c)
	for {
		var head strings.Builder
		length := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		out <- peerMsg{"TCP", head.String() + string(body), func(s string) { c.Write([]byte(s)) }}
	}
}

// await returns the first message on msgs that want takes, within 10 s.
func (p *proxyPeer) await(t *testing.T, what string, want func(peerMsg) bool) peerMsg {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-p.msgs:
			if want(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("%s never came", what)
		}
	}
}

// sipHeader is the value of msg's first header named name.
func sipHeader(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// okTo is a 200 answering req (its Via, From, To, Call-ID and CSeq).
func okTo(req string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, line := range strings.Split(req, "\r\n") {
		k, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "from", "to", "call-id", "cseq":
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// An SRTP call through four proxies (four Via, four Record-Route, long
// names) over UDP: its 200 OK, well over 1,300 bytes, is sent all the same
// (RFC 3261 18.2.2) and the call carries audio. Our BYE, over 1,300 bytes
// with the route set, goes over TCP to the next hop when that hop takes TCP
// connections and does not ask for UDP (RFC 3261 18.1.1), else over UDP.
func TestBigMessagesOverUDP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tcp     bool   // the next hop listens on TCP at its port
		param   string // the next hop's transport parameter
		wantTCP bool
	}{
		{"next hop on TCP too", true, "", true},
		{"next hop on UDP only", false, "", false},
		{"next hop asks for UDP", true, ";transport=udp", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startServer(t, Config{Codecs: []string{"PCMU"}, MediaTimeout: time.Second})
			peer := newProxyPeer(t, tc.tcp)
			rtpConn := rtpSocket(t)
			theirs := Crypto{Tag: "1", Key: make([]byte, 30)}
			theirs.Suite, _ = media.LookupSRTPSuite("AES_CM_128_HMAC_SHA1_80")
			for i := range theirs.Key {
				theirs.Key[i] = byte(5 * i)
			}
			sdp := srtpOffer(rtpConn.LocalAddr().(*net.UDPAddr).Port, []string{"RTP/SAVP"},
				"1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(theirs.Key))
			local := peer.udp.LocalAddr().String()
			long := strings.Repeat("x", 200)
			invite := "INVITE sip:transcribe@" + addr + " SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bKbig1;rport\r\n"
			for i := 2; i <= 4; i++ {
				invite += fmt.Sprintf("Via: SIP/2.0/UDP sbc-%d.edge.interconnect.carrier-%s.example.net:5060;branch=z9hG4bK%d%s;received=192.0.2.%d\r\n", i, long[:40], i, long[:30], i)
			}
			invite += fmt.Sprintf("Record-Route: <sip:%s;lr%s;x-state=%s>\r\n", local, tc.param, long)
			for i := 2; i <= 4; i++ {
				invite += fmt.Sprintf("Record-Route: <sip:sbc-%d.edge.interconnect.carrier-%s.example.net;lr;x-state=%s>\r\n", i, long[:40], long)
			}
			invite += "Max-Forwards: 66\r\nFrom: <sip:caller@example.net>;tag=bigfrom\r\nTo: <sip:transcribe@example.net>\r\n" +
				"Call-ID: big-" + strings.ReplaceAll(tc.name, " ", "-") + "\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@" + local + ">\r\n" +
				"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + string(sdp)
			peer.udp.WriteToUDP([]byte(invite), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			ok := peer.await(t, "the 200 OK", func(m peerMsg) bool { return strings.HasPrefix(m.text, "SIP/2.0 200") })
			if len(ok.text) <= 1300 || strings.Count(ok.text, "Record-Route:") != 4 {
				t.Fatalf("a 200 of %d bytes, %d Record-Route: the test wants one over 1,300 through four proxies", len(ok.text), strings.Count(ok.text, "Record-Route:"))
			}
			_, body, _ := strings.Cut(ok.text, "\r\n\r\n")
			answerKey(t, []byte(body)) // the answer keys the stream
			contact := sipHeader(ok.text, "Contact")
			ack := "ACK " + contact[strings.Index(contact, "<")+1:strings.Index(contact, ">")] + " SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bKbigack;rport\r\nMax-Forwards: 66\r\n" +
				"From: " + sipHeader(ok.text, "From") + "\r\nTo: " + sipHeader(ok.text, "To") + "\r\n" +
				"Call-ID: " + sipHeader(ok.text, "Call-ID") + "\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
			peer.udp.WriteToUDP([]byte(ack), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			c := <-rec.Started
			confirmed(t, c)
			var seq uint16
			sendSRTPTone(t, rtpConn, c.LocalRTP(), srtpContext(t, theirs), &seq, 1000, 600)
			y := make([]float32, ringOf(c, 0).Len())
			n, _ := ringOf(c, 0).Read(y)
			if n < 8000 || peak(y[:n]) != 1000 {
				t.Errorf("%d samples of SRTP audio, peak %v Hz, want 1000", n, peak(y[:n]))
			}
			// No more audio: the media timeout ends the call with our BYE.
			bye := peer.await(t, "our BYE", func(m peerMsg) bool { return strings.HasPrefix(m.text, "BYE ") })
			bye.reply(okTo(bye.text))
			if len(bye.text) <= 1300 || (bye.transport == "TCP") != tc.wantTCP {
				t.Errorf("a BYE of %d bytes over %s", len(bye.text), bye.transport)
			}
			t.Logf("a 200 OK of %d bytes over UDP; a BYE of %d bytes over %s", len(ok.text), len(bye.text), bye.transport)
			<-c.Done()
			if c.Reason() != "timeout" {
				t.Errorf("reason %q", c.Reason())
			}
		})
	}
}
