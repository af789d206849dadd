package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// heldCall places a call from conn that is answered inactive (on hold from
// the start) and ACKs it; conn then answers nothing, as a caller that
// vanished.
func heldCall(t *testing.T, conn *net.UDPConn, to, callID string) {
	t.Helper()
	local := conn.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=inactive\r\n"
	head := "Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n" +
		"From: <sip:caller@127.0.0.1>;tag=t" + callID + "\r\nCall-ID: " + callID + "\r\n"
	send := func(msg string) {
		addr, _ := net.ResolveUDPAddr("udp", to)
		if _, err := conn.WriteToUDP([]byte(msg), addr); err != nil {
			t.Fatal(err)
		}
	}
	send("INVITE sip:service@" + to + " SIP/2.0\r\n" + fmt.Sprintf(head, callID) +
		"To: <sip:service@" + to + ">\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@" + local + ">\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp)
	ok := readSIP(t, conn, func(msg string) bool {
		return strings.HasPrefix(msg, "SIP/2.0 ") && msg[8] != '1' && headerValue(msg, "Call-ID") == callID
	})
	if !strings.HasPrefix(ok, "SIP/2.0 200") {
		t.Fatalf("held call %s: %.40q", callID, ok)
	}
	contact := headerValue(ok, "Contact")
	target := contact[strings.Index(contact, "<")+1 : strings.Index(contact, ">")]
	send("ACK " + target + " SIP/2.0\r\n" + fmt.Sprintf(head, callID+"ack") + "To: " + headerValue(ok, "To") + "\r\n" +
		"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
}

// readSIP reads SIP messages on conn until one that want takes (within
// 10 s) and returns it.
func readSIP(t *testing.T, conn *net.UDPConn, want func(string) bool) string {
	t.Helper()
	buf := make([]byte, 65535)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no message awaited: %v", err)
		}
		if msg := string(buf[:n]); want(msg) {
			return msg
		}
	}
}

// headerValue is the value of msg's first header named name.
func headerValue(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// A gateway whose every slot (sip.max_calls) is held by calls on hold whose
// callers vanished takes calls again once sip.keepalive_interval's probes
// have found them gone: the gateway asks each an OPTIONS, and after two
// unanswered ends it (call.end reason keepalive), sends its BYE and frees
// its slot.
func TestServeEndsAbandonedHeldCalls(t *testing.T) {
	const slots = 2
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr, "-config", configFile(t, fmt.Sprintf("sip:\n  max_calls: %d\n  keepalive_interval: 500ms\n", slots)))
	g.waitReady(t, 200)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range slots {
		heldCall(t, conn, g.sip, fmt.Sprint("held-", i))
	}
	if res, err := siptest.NewPhone(t).Call(g.sip, siptest.PCMU(make([]float32, 1600))); res.Code != 503 {
		t.Fatalf("a call while abandoned calls hold every slot: %+v %v", res, err)
	}
	full := time.Now()
	options, byes := map[string]map[string]bool{}, map[string]bool{} // Call-ID → the OPTIONS' CSeqs
	for len(byes) < slots {
		msg := readSIP(t, conn, func(msg string) bool {
			return strings.HasPrefix(msg, "OPTIONS ") || strings.HasPrefix(msg, "BYE ")
		})
		id := headerValue(msg, "Call-ID")
		if strings.HasPrefix(msg, "BYE ") {
			byes[id] = true
			continue
		}
		if options[id] == nil {
			options[id] = map[string]bool{}
		}
		options[id][headerValue(msg, "CSeq")] = true
	}
	t.Logf("the abandoned calls ended %v after the gateway was full", time.Since(full))
	for id, probes := range options {
		if len(probes) < 2 {
			t.Errorf("%s: %d OPTIONS before the BYE, want 2", id, len(probes))
		}
	}
	// A slot comes free once its call's call.end is out (about when the BYE goes).
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		res, err := siptest.NewPhone(t).Call(g.sip, siptest.PCMU(make([]float32, 8000)))
		if res.Code == 200 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("a call after the keepalive ended the abandoned ones: %+v %v", res, err)
		}
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		ended := 0
		for _, evs := range callEvents(t, rd.Addr) {
			if last := evs[len(evs)-1]; last["type"] == "call.end" && last["reason"] == "keepalive" {
				ended++
			}
		}
		if ended == slots {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%d calls with call.end reason keepalive on Redis, want %d", ended, slots)
		}
	}
}
