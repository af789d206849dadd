package sip

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/media"
)

// srtpOffer is an SDP offer of one or more audio m-lines on port, each
// "AVP" or "SAVP" (the SAVP ones with crypto's a=crypto lines).
func srtpOffer(port int, lines []string, crypto ...string) []byte {
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
	for i, l := range lines {
		s += fmt.Sprintf("m=audio %d %s 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", port+2*i, l)
		if strings.Contains(l, "SAVP") {
			for _, c := range crypto {
				s += "a=crypto:" + c + "\r\n"
			}
		}
	}
	return []byte(s)
}

func inlineKey(n int) string {
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(i + 1)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// The SRTP policy decides per m-line: SAVP needs a usable a=crypto and a
// policy other than off, AVP a policy other than required; of an AVP and
// SAVP pair offering one stream, one is taken and the other answered with
// port 0. What no stream survives gets 488 with a Warning saying why.
func TestSRTPPolicy(t *testing.T) {
	aes80 := "1 AES_CM_128_HMAC_SHA1_80 inline:" + inlineKey(30)
	gcm := "2 AEAD_AES_128_GCM inline:" + inlineKey(28)
	unknown := "3 F8_128_HMAC_SHA1_80 inline:" + inlineKey(30)
	withMKI := "4 AES_CM_128_HMAC_SHA1_80 inline:" + inlineKey(30) + "|2^20|1:4"
	for _, tc := range []struct {
		policy string
		lines  []string
		crypto []string
		status int
		want   []string // answer lines
	}{
		{SRTPOffer, []string{"RTP/SAVP"}, []string{aes80}, 200, []string{"RTP/SAVP 0 101", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"}},
		{SRTPOffer, []string{"RTP/SAVP"}, []string{unknown, gcm, aes80}, 200, []string{"a=crypto:2 AEAD_AES_128_GCM inline:"}},
		{SRTPOffer, []string{"RTP/SAVP"}, []string{unknown, withMKI}, 488, nil},
		{SRTPOffer, []string{"RTP/AVP", "RTP/SAVP"}, []string{aes80}, 200, []string{"m=audio 0 RTP/AVP 0 101", "RTP/SAVP 0 101"}},
		{SRTPOffer, []string{"RTP/AVP"}, nil, 200, []string{"RTP/AVP 0 101"}},
		{SRTPOffer, []string{"UDP/TLS/RTP/SAVP"}, nil, 488, nil},
		{SRTPOff, []string{"RTP/SAVP"}, []string{aes80}, 488, nil},
		{SRTPOff, []string{"RTP/SAVP", "RTP/AVP"}, []string{aes80}, 200, []string{"m=audio 0 RTP/SAVP 0 101", "RTP/AVP 0 101"}},
		{SRTPRequired, []string{"RTP/AVP"}, nil, 488, nil},
		{SRTPRequired, []string{"RTP/AVP", "RTP/SAVP"}, []string{gcm}, 200, []string{"m=audio 0 RTP/AVP", "a=crypto:2 AEAD_AES_128_GCM"}},
	} {
		name := fmt.Sprintf("%s/%s/%d", tc.policy, strings.Join(tc.lines, "+"), len(tc.crypto))
		t.Run(name, func(t *testing.T) {
			_, rec, addr := startServer(t, Config{SRTP: tc.policy, Codecs: []string{"PCMU"}})
			phone := newUAC(t)
			status, res := inviteStatus(t, phone, addr, srtpOffer(40000, tc.lines, tc.crypto...), sipgo.AnswerOptions{})
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if status != 200 {
				if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "RTP") {
					t.Errorf("warning %v", w)
				}
				return
			}
			ans := string(res.Body())
			for _, w := range tc.want {
				if !strings.Contains(ans, w) {
					t.Errorf("answer lacks %q:\n%s", w, ans)
				}
			}
			if strings.Contains(ans, inlineKey(30)) || strings.Contains(ans, inlineKey(28)) {
				t.Errorf("the answer gives the caller's key back:\n%s", ans)
			}
			c := rec.WaitEnded(t, 1)[0]
			if len(c.Legs) != 1 {
				t.Errorf("%d legs, want 1", len(c.Legs))
			}
		})
	}
}

// answerKey reads the a=crypto of an answer.
func answerKey(t *testing.T, sdp []byte) Crypto {
	t.Helper()
	o, err := ParseOffer(sdp)
	if err != nil || len(o.Crypto) != 1 {
		t.Fatalf("answer %v: %s", err, sdp)
	}
	return o.Crypto[0]
}

func srtpContext(t *testing.T, c Crypto) *srtp.Context {
	t.Helper()
	n := 16 // the suites used here have 128-bit keys
	profile := srtp.ProtectionProfileAes128CmHmacSha1_80
	if c.Suite.Name == "AEAD_AES_128_GCM" {
		profile = srtp.ProtectionProfileAeadAes128Gcm
	}
	ctx, err := srtp.CreateContext(c.Key[:n], c.Key[n:], profile)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// sendSRTPTone streams a tone of freq Hz as SRTP-protected PCMU in real time.
func sendSRTPTone(t *testing.T, conn *net.UDPConn, to netip.AddrPort, enc *srtp.Context, seq *uint16, freq float64, ms int) {
	t.Helper()
	for range ms / 20 {
		payload := make([]byte, 160)
		for j := range payload {
			payload[j] = g711.EncodeUlawFrame(int16(8000 * math.Sin(2*math.Pi*freq*float64(int(*seq)*160+j)/8000)))
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: *seq, Timestamp: uint32(*seq) * 160, SSRC: 77}, Payload: payload}
		b, _ := p.Marshal()
		sealed, err := enc.EncryptRTP(nil, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.WriteToUDPAddrPort(sealed, to)
		*seq++
		time.Sleep(20 * time.Millisecond)
	}
}

// An SRTP call end to end: the answer keys the stream with our key, what the
// caller sends under its key becomes audio, our receiver reports reach its
// RTCP port as SRTCP under our key. A re-INVITE with the same keys keeps the
// SRTP context (its rollover count); one with a new key rekeys the leg.
func TestSRTPCall(t *testing.T) {
	_, rec, addr := startServer(t, Config{Codecs: []string{"PCMU"}})
	phone := newUAC(t)
	rtpConn := rtpSocket(t)
	port := rtpConn.LocalAddr().(*net.UDPAddr).Port
	rtcpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
	if err != nil {
		t.Fatalf("the phone's RTCP port: %v", err)
	}
	defer rtcpConn.Close()
	theirs := Crypto{Tag: "1", Key: make([]byte, 30)}
	theirs.Suite, _ = media.LookupSRTPSuite("AES_CM_128_HMAC_SHA1_80")
	for i := range theirs.Key {
		theirs.Key[i] = byte(3 * i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line := "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(theirs.Key)
	sess := answered(t, ctx, phone.dc, target(addr), srtpOffer(port, []string{"RTP/SAVP"}, line))
	c := <-rec.Started
	ours := answerKey(t, sess.InviteResponse.Body())
	to := c.LocalRTP()
	var seq uint16
	enc := srtpContext(t, theirs)
	sendSRTPTone(t, rtpConn, to, enc, &seq, 440, 1500)
	if n := ringOf(c, 0).Len(); n < 16000 {
		t.Errorf("%d samples of audio after 1.5 s of SRTP", n)
	}

	// A report within the next seconds, under our key.
	rtcpConn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, err := rtcpConn.Read(buf)
	if err != nil {
		t.Fatalf("no RTCP from the gateway: %v", err)
	}
	plain, err := srtpContext(t, ours).DecryptRTCP(nil, buf[:n], nil)
	if err != nil {
		t.Fatalf("RTCP not SRTCP under the answer's key: %v", err)
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if rr, ok := pkts[0].(*rtcp.ReceiverReport); !ok || len(rr.Reports) != 1 || rr.Reports[0].SSRC != 77 {
		t.Errorf("report %v", pkts)
	}

	reinvite := func(body []byte) *sipmsg.Response {
		req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
		req.SetBody(body)
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res, err := sess.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE: %v %v", res, err)
		}
		return res
	}
	before := c.Legs[0].Leg.SRTP()
	res := reinvite(srtpOffer(port, []string{"RTP/SAVP"}, line))
	if c.Legs[0].Leg.SRTP() != before || answerKey(t, res.Body()).Key == nil ||
		string(answerKey(t, res.Body()).Key) != string(ours.Key) {
		t.Error("the same keys offered again changed the leg's SRTP")
	}
	newKey := make([]byte, 28)
	newKey[0] = 9
	res = reinvite(srtpOffer(port, []string{"RTP/SAVP"}, "5 AEAD_AES_128_GCM inline:"+base64.StdEncoding.EncodeToString(newKey)))
	if c.Legs[0].Leg.SRTP() == before || !strings.Contains(string(res.Body()), "a=crypto:5 AEAD_AES_128_GCM") {
		t.Fatalf("not rekeyed:\n%s", res.Body())
	}
	gcm := Crypto{Tag: "5", Key: newKey}
	gcm.Suite, _ = media.LookupSRTPSuite("AEAD_AES_128_GCM")
	got := ringOf(c, 0).Len()
	sendSRTPTone(t, rtpConn, to, srtpContext(t, gcm), &seq, 440, 500)
	if ringOf(c, 0).Len() < got+6000 {
		t.Errorf("no audio under the new key: %d → %d samples", got, ringOf(c, 0).Len())
	}
	sess.Bye(ctx)
	<-c.Done()
	if st := c.Legs[0].rcv.Stats(); st.Unauthenticated != 0 || st.Reports < 1 {
		t.Errorf("stats %+v", st)
	}
}

// A recording session's streams (SIPREC), each RTP/SAVP under its own key:
// one leg per stream, each keyed with its stream's key, the answer giving a
// key of ours per stream with its label.
func TestSRTPRecordingStreams(t *testing.T) {
	_, rec, addr := startServer(t, Config{Codecs: []string{"PCMU"}})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
	for i := range 2 {
		key := make([]byte, 30)
		key[0] = byte(i + 1)
		s += fmt.Sprintf("m=audio %d RTP/SAVP 0\r\na=label:%d\r\na=sendonly\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\n",
			41000+2*i, i+1, base64.StdEncoding.EncodeToString(key))
	}
	sess := answered(t, ctx, phone.dc, target(addr), []byte(s))
	c := <-rec.Started
	ans := string(sess.InviteResponse.Body())
	if len(c.Legs) != 2 || strings.Count(ans, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") != 2 ||
		!strings.Contains(ans, "a=label:1") || !strings.Contains(ans, "a=label:2") {
		t.Fatalf("%d legs, answer:\n%s", len(c.Legs), ans)
	}
	a, b := c.Legs[0], c.Legs[1]
	if a.Leg.SRTP() == nil || b.Leg.SRTP() == nil || a.peerKey[0] != 1 || b.peerKey[0] != 2 || string(a.crypto.Key) == string(b.crypto.Key) {
		t.Errorf("legs not keyed per stream")
	}
	sess.Bye(ctx)
	<-c.Done()
}

// INFO with X-Callscribe-Control pauses and resumes a call's transcription;
// another value is refused 400.
func TestInfoPauseResume(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess := answered(t, ctx, phone.dc, target(addr), offer(40000, "0"))
	c := <-rec.Started
	info := func(v string) int {
		req := sipmsg.NewRequest(sipmsg.INFO, sess.InviteResponse.Contact().Address)
		req.AppendHeader(sipmsg.NewHeader(ControlHeader, v))
		res, err := sess.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if info("pause") != 200 || info("resume") != 200 || info("stop") != 400 {
		t.Error("INFO statuses")
	}
	if pauses := rec.Pauses(); len(pauses) != 2 || !pauses[0] || pauses[1] {
		t.Errorf("pauses %v", pauses)
	}
	sess.Bye(ctx)
	<-c.Done()
}

// A delayed offer under sip.srtp: required: our offer in the 200 is RTP/SAVP
// with our key; the answer in the ACK keys what the caller sends, and its
// SRTP becomes audio.
func TestDelayedOfferSRTPRequired(t *testing.T) {
	_, rec, addr := startServer(t, Config{SRTP: SRTPRequired, Codecs: []string{"PCMU"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess := inviteWithoutOffer(t, ctx, addr)
	body := string(sess.InviteResponse.Body())
	if !strings.Contains(body, "RTP/SAVP") {
		t.Fatalf("our offer is not SRTP:\n%s", body)
	}
	ours := answerKey(t, sess.InviteResponse.Body())
	conn := rtpSocket(t)
	theirs := Crypto{Tag: ours.Tag, Suite: ours.Suite, Key: make([]byte, 30)}
	for i := range theirs.Key {
		theirs.Key[i] = byte(7 * i)
	}
	ackWithAnswer(t, ctx, sess, srtpOffer(conn.LocalAddr().(*net.UDPAddr).Port, []string{"RTP/SAVP"},
		ours.Tag+" "+ours.Suite.Name+" inline:"+base64.StdEncoding.EncodeToString(theirs.Key)))
	c := <-rec.Started
	var seq uint16
	sendSRTPTone(t, conn, c.LocalRTP(), srtpContext(t, theirs), &seq, 1000, 600)
	y := awaitSamples(c, 6000)
	if len(y) < 6000 || peak(y) != 1000 || c.Legs[0].Leg.SRTP() == nil {
		t.Errorf("%d samples, peak %v Hz, keyed %v: not the tone sent under the ACK's key", len(y), peak(y), c.Legs[0].Leg.SRTP() != nil)
	}
	sess.Bye(ctx)
	<-c.Done()
	if st := c.Legs[0].rcv.Stats(); st.Unauthenticated != 0 {
		t.Errorf("stats %+v", st)
	}
}
