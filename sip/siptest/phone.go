// Package siptest is a SIP phone for tests and load generators: it places
// calls over loopback with sipgo and streams G.711 audio in real time.
package siptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/sip"
)

// Phone is one SIP user agent with an RTP socket.
type Phone struct {
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	dc  *sipgo.DialogClientCache
	rtp *net.UDPConn
	sig net.PacketConn // the SIP socket
	// served is closed when the SIP socket's reader has returned.
	served chan struct{}
	// Byes counts BYEs received from the far end.
	Byes chan struct{}
	// PT is the payload type offered and sent: 0 (PCMU, the default) or 8 (PCMA).
	PT uint8
	// Hold, if positive, stops the audio for this long once HoldAfter of it
	// has gone out, as a sender on hold that pauses its RTP clock: no
	// packets, and the timestamps go on from where they stopped.
	HoldAfter, Hold time.Duration
}

// NewPhone starts a phone on 127.0.0.1, closed when the test ends.
func NewPhone(t testing.TB) *Phone {
	t.Helper()
	p, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Dial starts a phone on 127.0.0.1 for programs (load generators); Close
// it when done.
func Dial() (*Phone, error) {
	ua, err := sipgo.NewUA()
	if err != nil {
		return nil, err
	}
	srv, _ := sipgo.NewServer(ua)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		ua.Close()
		return nil, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	p := &Phone{ua: ua, srv: srv, sig: pc, served: make(chan struct{}), Byes: make(chan struct{}, 16),
		dc: sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "phone", Host: "127.0.0.1", Port: port}})}
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		p.dc.ReadBye(req, tx)
		select {
		case p.Byes <- struct{}{}:
		default:
		}
	})
	if p.rtp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		pc.Close()
		ua.Close()
		return nil, err
	}
	go func() {
		defer close(p.served)
		srv.ServeUDP(pc)
	}()
	return p, nil
}

// Close stops the phone and waits for its reader.
func (p *Phone) Close() error {
	p.rtp.Close()
	p.srv.Close()
	err := p.ua.Close()
	p.sig.Close()
	<-p.served
	return err
}

// PCMU encodes 8 kHz samples in [-1, 1].
func PCMU(x []float32) []byte { return g711Encode(x, g711.EncodeUlawFrame) }

// PCMA encodes 8 kHz samples in [-1, 1].
func PCMA(x []float32) []byte { return g711Encode(x, g711.EncodeAlawFrame) }

func g711Encode(x []float32, enc func(int16) uint8) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = enc(int16(max(-1, min(1, v)) * 32767))
	}
	return b
}

// Talk calls addr (host:port), streams payload (G.711 of p.PT, 8 kHz) in real time
// and hangs up, unless the far end hangs up first. It returns the final
// INVITE status (200 when answered).
func (p *Phone) Talk(t testing.TB, addr string, payload []byte, hdrs ...sipmsg.Header) int {
	t.Helper()
	c, err := p.Call(addr, payload, hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	return c.Code
}

// Talked is how a call went.
type Talked struct {
	Code   int       // the INVITE's final status
	CallID string    // the SIP Call-ID (the gateway's call_id)
	Start  time.Time // when the first RTP packet went out
	Answer []byte    // the SDP answer
}

// Call is Talk for programs: an error only when the call could not be
// placed or answered in a readable way.
func (p *Phone) Call(addr string, payload []byte, hdrs ...sipmsg.Header) (Talked, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second+time.Duration(len(payload))*time.Second/8000)
	defer cancel()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return Talked{}, err
	}
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %d\r\n",
		p.rtp.LocalAddr().(*net.UDPAddr).Port, p.PT)
	sess, talked, err := p.invite(ctx, sipmsg.Uri{User: "transcribe", Host: ap.Addr().String(), Port: int(ap.Port())}, []byte(sdp), hdrs...)
	if sess == nil || talked.Code != 200 {
		return talked, err
	}
	defer sess.Close()
	ans, err := sip.ParseOffer(talked.Answer)
	if err != nil {
		return talked, err
	}
	talked.Start = time.Now()
	held := time.Duration(0)
	for k := 0; (k+1)*160 <= len(payload); k++ {
		if p.Hold > 0 && held == 0 && time.Duration(k)*20*time.Millisecond >= p.HoldAfter {
			held = p.Hold
			time.Sleep(held)
		}
		select {
		case <-sess.Context().Done(): // the far end hung up
			return talked, nil
		default:
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.PT, SequenceNumber: uint16(k), Timestamp: uint32(160 * k), SSRC: 77},
			Payload: payload[160*k : 160*(k+1)]}
		b, _ := pkt.Marshal()
		p.rtp.WriteToUDPAddrPort(b, ans.Addr)
		time.Sleep(time.Until(talked.Start.Add(held + time.Duration(k+1)*20*time.Millisecond)))
	}
	sess.Bye(ctx)
	return talked, nil
}

// RecordingMetadata is SIPREC metadata (RFC 7865) in which the participant
// with the i-th address of record sends the stream labelled i+1.
func RecordingMetadata(aors ...string) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\n")
	b.WriteString("  <datamode>complete</datamode>\n  <session session_id=\"c2Vzc2lvbg==\"><sipSessionID>test</sipSessionID></session>\n")
	for i, aor := range aors {
		fmt.Fprintf(&b, "  <participant participant_id=\"p%d\"><nameID aor=\"%s\"><name>Party %d</name></nameID></participant>\n", i, aor, i+1)
		fmt.Fprintf(&b, "  <stream stream_id=\"s%d\" session_id=\"c2Vzc2lvbg==\"><label>%d</label></stream>\n", i, i+1)
	}
	for i := range aors {
		fmt.Fprintf(&b, "  <participantstreamassoc participant_id=\"p%d\"><send>s%d</send>", i, i)
		for j := range aors {
			if j != i {
				fmt.Fprintf(&b, "<recv>s%d</recv>", j)
			}
		}
		b.WriteString("</participantstreamassoc>\n")
	}
	b.WriteString("</recording>\n")
	return b.String()
}

// Record opens a SIPREC recording session on addr, as a session border
// controller does: a multipart INVITE with one sendonly stream per payload
// (labels 1, 2, ...) and the metadata; it streams the payloads side by side
// in real time and hangs up. Over TCP: a recording INVITE outgrows a UDP
// datagram.
func (p *Phone) Record(addr, metadata string, payloads ...[]byte) (Talked, error) {
	longest := 0
	for _, x := range payloads {
		longest = max(longest, len(x))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second+time.Duration(longest)*time.Second/8000)
	defer cancel()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return Talked{}, err
	}
	port := p.rtp.LocalAddr().(*net.UDPAddr).Port
	var sdp strings.Builder
	sdp.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
	for i := range payloads {
		fmt.Fprintf(&sdp, "m=audio %d RTP/AVP %d\r\na=label:%d\r\na=sendonly\r\n", port+2*i, p.PT, i+1)
	}
	const boundary = "callscribe-siprec-boundary"
	body := "--" + boundary + "\r\nContent-Type: application/sdp\r\n\r\n" + sdp.String() +
		"\r\n--" + boundary + "\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" +
		metadata + "\r\n--" + boundary + "--\r\n"
	uri := sipmsg.Uri{User: "recorder", Host: ap.Addr().String(), Port: int(ap.Port()), UriParams: sipmsg.NewParams()}
	uri.UriParams.Add("transport", "tcp")
	sess, talked, err := p.invite(ctx, uri, []byte(body),
		sipmsg.NewHeader("Content-Type", "multipart/mixed;boundary="+boundary), sipmsg.NewHeader("Require", "siprec"))
	if sess == nil || talked.Code != 200 {
		return talked, err
	}
	defer sess.Close()
	streams, err := sip.ParseOffers(talked.Answer)
	if err != nil {
		return talked, err
	}
	var to []netip.AddrPort
	for _, st := range streams {
		if !st.Refused {
			to = append(to, st.Addr)
		}
	}
	if len(to) != len(payloads) {
		return talked, fmt.Errorf("the answer has %d streams for %d offered", len(to), len(payloads))
	}
	talked.Start = time.Now()
	held := time.Duration(0)
	for k := 0; (k+1)*160 <= longest; k++ {
		if p.Hold > 0 && held == 0 && time.Duration(k)*20*time.Millisecond >= p.HoldAfter {
			held = p.Hold
			time.Sleep(held)
		}
		select {
		case <-sess.Context().Done():
			return talked, nil
		default:
		}
		for i, x := range payloads {
			if (k+1)*160 > len(x) {
				continue
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.PT, SequenceNumber: uint16(k), Timestamp: uint32(160 * k),
				SSRC: 100 + uint32(i)}, Payload: x[160*k : 160*(k+1)]}
			b, _ := pkt.Marshal()
			p.rtp.WriteToUDPAddrPort(b, to[i])
		}
		time.Sleep(time.Until(talked.Start.Add(held + time.Duration(k+1)*20*time.Millisecond)))
	}
	sess.Bye(ctx)
	return talked, nil
}

// invite sends an INVITE and waits for its answer: the dialog (nil when
// it did not come about) and the status; on 200 it is acknowledged.
func (p *Phone) invite(ctx context.Context, to sipmsg.Uri, body []byte, hdrs ...sipmsg.Header) (*sipgo.DialogClientSession, Talked, error) {
	sess, err := p.dc.Invite(ctx, to, body, hdrs...)
	if err != nil {
		return nil, Talked{}, err
	}
	talked := Talked{CallID: sess.InviteRequest.CallID().Value()}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		sess.Close()
		var de *sipgo.ErrDialogResponse
		if errorsAs(err, &de) {
			talked.Code = de.Res.StatusCode
			return nil, talked, nil
		}
		return nil, talked, err
	}
	talked.Code = 200
	talked.Answer = sess.InviteResponse.Body()
	sess.Ack(ctx)
	return sess, talked, nil
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
