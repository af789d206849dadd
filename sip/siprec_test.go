package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

func TestSplitBody(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + "\r\n--b1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n--b1--\r\n"
	s, meta, err := splitBody(`multipart/mixed; boundary="b1"`, []byte(body))
	if err != nil || string(s) != sdp || string(meta) != "<recording/>" {
		t.Fatalf("sdp %q meta %q err %v", s, meta, err)
	}
	if s, meta, err := splitBody("application/sdp", []byte(sdp)); err != nil || string(s) != sdp || meta != nil {
		t.Errorf("plain: %q %q %v", s, meta, err)
	}
	for _, c := range []struct{ ct, body string }{
		{"multipart/mixed", body},                   // no boundary
		{"multipart/mixed;boundary=zz", body},       // wrong boundary
		{"multipart/mixed;boundary=b1", "--b1\r\n"}, // truncated
		{"multipart/mixed;boundary=b1", strings.Replace(body, "application/sdp", "text/plain", 1)}, // no SDP part
	} {
		if _, _, err := splitBody(c.ct, []byte(c.body)); !errors.Is(err, ErrBadSDP) {
			t.Errorf("%s %.30q: %v", c.ct, c.body, err)
		}
	}
}

func TestStreamSenders(t *testing.T) {
	// RFC 7865 style: participantstreamassoc.
	meta := `<recording xmlns="urn:ietf:params:xml:ns:recording:1">
	  <participant participant_id="a"><nameID aor="sip:alice@example.com"><name>Alice</name></nameID></participant>
	  <participant participant_id="b"><nameID aor="sip:agent7@agents.example.com"/></participant>
	  <stream stream_id="s1"><label>10</label></stream><stream stream_id="s2"><label>20</label></stream>
	  <participantstreamassoc participant_id="a"><send>s1</send><recv>s2</recv></participantstreamassoc>
	  <participantstreamassoc participant_id="b"><send>s2</send><recv>s1</recv></participantstreamassoc>
	</recording>`
	got, err := streamSenders([]byte(meta))
	if err != nil || got["10"] != (Participant{AOR: "sip:alice@example.com", Name: "Alice"}) || got["20"].AOR != "sip:agent7@agents.example.com" {
		t.Fatalf("%+v %v", got, err)
	}
	// Older drafts: send inside participant, id attributes, aor element.
	old := `<recording xmlns="urn:ietf:params:xml:ns:recording">
	  <participant id="x"><aor>sip:bob@example.com</aor><send>m1</send></participant>
	  <stream id="m1"><label>1</label></stream></recording>`
	if got, err := streamSenders([]byte(old)); err != nil || got["1"].AOR != "sip:bob@example.com" {
		t.Errorf("old style: %+v %v", got, err)
	}
	if _, err := streamSenders([]byte("<recording><participant")); err == nil {
		t.Error("broken XML read")
	}
}

func TestLegNames(t *testing.T) {
	agents := []string{"*@agents.example.com", "sip-agent-*"}
	cust, agent := Participant{AOR: "sip:+15551234@trunk.example.com"}, Participant{AOR: "SIP:Agent7@Agents.Example.com"}
	for _, c := range []struct {
		senders []Participant
		agents  []string
		want    string
	}{
		{[]Participant{{}}, nil, "caller"},
		{[]Participant{cust, agent}, nil, "caller,callee"},
		{[]Participant{cust, agent}, agents, "customer,agent"},
		{[]Participant{agent, cust}, agents, "agent,customer"},
		{[]Participant{agent, agent}, agents, "caller,callee"}, // not told apart
		{[]Participant{cust, {}}, agents, "caller,callee"},
		{[]Participant{cust, agent, {AOR: "tel:+15559999"}}, agents, "customer,agent,customer2"},
		{[]Participant{{}, {}, {}}, nil, "caller,callee,leg3"},
	} {
		if got := strings.Join(legNames(c.senders, c.agents), ","); got != c.want {
			t.Errorf("%+v with %v: %s, want %s", c.senders, c.agents, got, c.want)
		}
	}
}

// twoStreams is an offer with two audio streams (as a recording session's
// SDP, without the metadata), each with a label; direction for both.
func twoStreams(port int, direction string, streams int) []byte {
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
	for i := range streams {
		s += fmt.Sprintf("m=audio %d RTP/AVP 0\r\na=label:%d\r\na=%s\r\n", port+2*i, i+1, direction)
	}
	s += "m=video 0 RTP/AVP 96\r\n" // refused, answered with port 0
	return []byte(s)
}

// A two-stream call: two legs, both answered; a re-INVITE holds and
// resumes both; one that drops a stream is refused (488) and changes
// nothing.
func TestTwoStreamCallReinvite(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess := answered(t, ctx, phone.dc, target(addr), twoStreams(40100, "sendonly", 2))
	ans := string(sess.InviteResponse.Body())
	if strings.Count(ans, "m=audio ") != 2 || !strings.Contains(ans, "m=video 0 RTP/AVP 96") || strings.Count(ans, "a=recvonly") != 2 {
		t.Fatalf("answer:\n%s", ans)
	}
	var c *Call
	select {
	case c = <-rec.Started:
	case <-time.After(5 * time.Second):
		t.Fatal("call not started")
	}
	if len(c.Legs) != 2 || c.Legs[0].Name != "caller" || c.Legs[1].Name != "callee" || c.OnHold() {
		t.Fatalf("legs %d, hold %v", len(c.Legs), c.OnHold())
	}
	reinvite := func(body []byte) int {
		req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
		req.SetBody(body)
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res, err := sess.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if code := reinvite(twoStreams(40100, "inactive", 2)); code != 200 || !c.OnHold() {
		t.Errorf("hold: %d, on hold %v", code, c.OnHold())
	}
	if code := reinvite(twoStreams(40100, "sendonly", 1)); code != 488 || !c.OnHold() {
		t.Errorf("one stream of two: %d, on hold %v", code, c.OnHold())
	}
	if code := reinvite(twoStreams(40100, "sendonly", 2)); code != 200 || c.OnHold() {
		t.Errorf("resume: %d, on hold %v", code, c.OnHold())
	}
	sess.Bye(ctx)
	<-c.Done()
}

// Whatever a recording INVITE carries, reading it returns or errs: no panic.
func FuzzRecordingBody(f *testing.F) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=label:1\r\n"
	meta := `<recording xmlns="urn:ietf:params:xml:ns:recording:1"><participant participant_id="a"><nameID aor="sip:a@b"/></participant>` +
		`<stream stream_id="s"><label>1</label></stream><participantstreamassoc participant_id="a"><send>s</send></participantstreamassoc></recording>`
	f.Add("multipart/mixed;boundary=b", "--b\r\nContent-Type: application/sdp\r\n\r\n"+sdp+"\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n"+meta+"\r\n--b--\r\n")
	f.Add("application/sdp", sdp)
	f.Fuzz(func(t *testing.T, ct, body string) {
		s, m, err := splitBody(ct, []byte(body))
		if err != nil {
			return
		}
		if offers, err := ParseOffers(s); err == nil {
			var senders []Participant
			if m != nil {
				by, _ := streamSenders(m)
				for _, o := range offers {
					senders = append(senders, by[o.Label])
				}
			}
			legNames(senders, []string{"*@b"})
		}
	})
}

func TestParseLegNames(t *testing.T) {
	for _, c := range []struct {
		v       string
		streams int
		want    string
	}{
		{"agent", 1, "agent"},
		{" Customer , AGENT ", 2, "customer,agent"},
		{"agent", 2, ""},           // one name for two streams
		{"agent,agent", 2, ""},     // not distinct
		{"agent,cust omer", 2, ""}, // not a name
		{"", 1, ""},
		{"a{b}", 1, ""},
	} {
		got, ok := parseLegNames(c.v, c.streams)
		if strings.Join(got, ",") != c.want || ok != (c.want != "") {
			t.Errorf("parseLegNames(%q, %d) = %v, %v; want %q", c.v, c.streams, got, ok, c.want)
		}
	}
}

// A configured header names the legs: here the only one, "agent"; a value
// that does not fit (two names for one stream) leaves the default.
func TestLegNamesHeader(t *testing.T) {
	_, rec, addr := startServer(t, Config{LegNamesHeader: "X-Leg-Names"})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct{ value, want string }{{"Agent", "agent"}, {"agent,customer", "caller"}} {
		sess := answered(t, ctx, phone.dc, target(addr), offer(40200, "0"), sipmsg.NewHeader("X-Leg-Names", c.value))
		call := <-rec.Started
		if call.Legs[0].Name != c.want {
			t.Errorf("X-Leg-Names: %s: leg %q, want %q", c.value, call.Legs[0].Name, c.want)
		}
		sess.Bye(ctx)
		<-call.Done()
	}
}
