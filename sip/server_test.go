package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/ingest/ingesttest"
	"github.com/callscribe/callscribe/internal/testcert"
	"github.com/callscribe/callscribe/media"
)

// recorder is the Admitter of these tests.
type recorder = ingesttest.Admitter[*Call]

// ringOf is where leg i of c went.
func ringOf(c *Call, i int) *media.Ring { return c.Legs[i].Leg.Sink().(*media.Ring) }

func startServer(t *testing.T, cfg Config) (*Server, *recorder, string) {
	t.Helper()
	if cfg.UDP == "" {
		cfg.UDP = "127.0.0.1:0"
	}
	cfg.RTPPorts = media.PortRange{Lo: 31000, Hi: 31999}
	rec := ingesttest.New[*Call]()
	s, err := NewServer(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Lookup = s.Call
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec, s.Addrs()[0].String()
}

// uac is a SIP phone made of sipgo's client and dialog API.
type uac struct {
	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	dc      *sipgo.DialogClientCache
	port    int
	byes    chan struct{}
	updates atomic.Int32 // UPDATEs the server sent (session refreshes)
	// optionsStatus answers the server's OPTIONS (keepalives); 0: none
	// answered, as from a phone that is gone. Default 200.
	optionsStatus atomic.Int32
	options       atomic.Int32 // OPTIONS the server sent
}

func newUAC(t *testing.T) *uac {
	t.Helper()
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	u := &uac{ua: ua, cli: cli, port: port, byes: make(chan struct{}, 4)}
	u.dc = sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "uac", Host: "127.0.0.1", Port: port}})
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		u.dc.ReadBye(req, tx)
		u.byes <- struct{}{}
	})
	srv.OnUpdate(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		u.updates.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	u.optionsStatus.Store(200)
	srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		u.options.Add(1)
		if code := int(u.optionsStatus.Load()); code != 0 {
			tx.Respond(sipmsg.NewResponseFromRequest(req, code, "Keepalive Answer", nil))
		}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeUDP(pc)
	}()
	t.Cleanup(func() { srv.Close(); ua.Close(); pc.Close(); <-served })
	return u
}

func offer(rtpPort int, formats string, extra ...string) []byte {
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", rtpPort, formats)
	for _, e := range extra {
		s += e + "\r\n"
	}
	return []byte(s)
}

func target(addr string) sipmsg.Uri {
	ap := netip.MustParseAddrPort(addr)
	return sipmsg.Uri{User: "transcribe", Host: ap.Addr().String(), Port: int(ap.Port())}
}

// answered places a call and acknowledges its 200 OK; the dialog is
// closed when the test ends.
func answered(t *testing.T, ctx context.Context, dc *sipgo.DialogClientCache, to sipmsg.Uri, body []byte, hdrs ...sipmsg.Header) *sipgo.DialogClientSession {
	t.Helper()
	sess, err := dc.Invite(ctx, to, body, hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	return sess
}

// sendTone streams a 8 kHz tone as 20 ms PCMU packets in real time.
func sendTone(t *testing.T, conn *net.UDPConn, to netip.AddrPort, freq float64, ms int) {
	t.Helper()
	for k := range ms / 20 {
		payload := make([]byte, 160)
		for j := range payload {
			v := 0.5 * math.Sin(2*math.Pi*freq*float64(k*160+j)/8000)
			payload[j] = g711.EncodeUlawFrame(int16(v * 32767))
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(k), Timestamp: uint32(k * 160), SSRC: 42}, Payload: payload}
		b, _ := p.Marshal()
		if _, err := conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peak finds the strongest frequency of x (16 kHz) with a DFT over 50 Hz steps.
func peak(x []float32) float64 {
	best, bestF := 0.0, 0.0
	for f := 100.0; f < 4000; f += 50 {
		var re, im float64
		for i, v := range x {
			a := 2 * math.Pi * f * float64(i) / 16000
			re += float64(v) * math.Cos(a)
			im += float64(v) * math.Sin(a)
		}
		if p := re*re + im*im; p > best {
			best, bestF = p, f
		}
	}
	return bestF
}

func TestCallCarriesAudioAndEndsOnBye(t *testing.T) {
	for _, workers := range []int{0, 1} {
		t.Run(fmt.Sprintf("rtp_read_workers=%d", workers), func(t *testing.T) {
			testCallCarriesAudio(t, Config{RTPReadWorkers: workers})
		})
	}
}

func testCallCarriesAudio(t *testing.T, cfg Config) {
	_, rec, addr := startServer(t, cfg)
	phone := newUAC(t)
	rtpConn := rtpSocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess := answered(t, ctx, phone.dc, target(addr), offer(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0 101", "a=rtpmap:101 telephone-event/8000"),
		sipmsg.NewHeader("X-Correlation-Id", "abc-123"), sipmsg.NewHeader("User-to-User", "00ff;encoding=hex"))
	ans, err := ParseOffer(sess.InviteResponse.Body())
	if err != nil {
		t.Fatalf("answer: %v\n%s", err, sess.InviteResponse.Body())
	}
	c := <-rec.Started
	if c.Codec != "PCMU" || c.Headers["X-Correlation-Id"] != "abc-123" || c.Headers["User-to-User"] == "" || c.From == "" {
		t.Errorf("call %+v", c)
	}
	if ans.Addr != c.LocalRTP() {
		t.Errorf("answer says %v, media at %v", ans.Addr, c.LocalRTP())
	}
	sendTone(t, rtpConn, ans.Addr, 1000, 600)
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end")
	}
	if c.Reason() != "bye" {
		t.Errorf("reason %q", c.Reason())
	}
	y := make([]float32, ringOf(c, 0).Len())
	n, _ := ringOf(c, 0).Read(y)
	if n < 9000 {
		t.Fatalf("only %d samples arrived", n)
	}
	if f := peak(y[:n]); f != 1000 {
		t.Errorf("tone at %g Hz, sent 1000", f)
	}
}

func TestRejections(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		body []byte
		code int
	}{
		{"no common codec", Config{}, offer(4000, "18", "a=rtpmap:18 G729/8000"), 488},
		{"malformed SDP", Config{}, []byte("v=0\r\nthis is not sdp"), 400},
		{"source not allowed", Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, offer(4000, "0"), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, addr := startServer(t, tc.cfg)
			if code, _ := inviteStatus(t, newUAC(t), addr, tc.body, sipgo.AnswerOptions{}); code != tc.code {
				t.Fatalf("got %d, want %d", code, tc.code)
			}
			if srv.ActiveCalls() != 0 {
				t.Error("call registered")
			}
		})
	}
}

func TestOptionsAndUnknownMethods(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		m    sipmsg.RequestMethod
		code int
	}{{sipmsg.OPTIONS, 200}, {sipmsg.MESSAGE, 405}, {sipmsg.SUBSCRIBE, 405}} {
		res, err := phone.cli.Do(ctx, sipmsg.NewRequest(tc.m, target(addr)))
		if err != nil || res.StatusCode != tc.code {
			t.Errorf("%s: %v %v", tc.m, res, err)
			continue
		}
		if allow := res.GetHeader("Allow"); allow == nil || !strings.Contains(allow.Value(), "INVITE") {
			t.Errorf("%s: no Allow header", tc.m)
		}
	}
}

// A load balancer's OPTIONS probe gets 503 once the server takes no new
// calls: draining here.
func TestOptionsWhileDraining(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec.SetDraining(true)
	res, err := phone.cli.Do(ctx, sipmsg.NewRequest(sipmsg.OPTIONS, target(addr)))
	if err != nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("OPTIONS while draining: %v %v", res, err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// call places a call from phone and returns the established session, the
// server's call and the RTP address to send to.
func call(t *testing.T, phone *uac, rec *recorder, addr string, rtpPort int) (*sipgo.DialogClientSession, *Call, netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess := answered(t, ctx, phone.dc, target(addr), offer(rtpPort, "0 101", "a=rtpmap:101 telephone-event/8000"))
	ans, err := ParseOffer(sess.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-rec.Started:
		return sess, c, ans.Addr
	case <-time.After(5 * time.Second):
		t.Fatal("call not started")
	}
	return nil, nil, netip.AddrPort{}
}

func TestCallLimit(t *testing.T) {
	srv, rec, addr := startServer(t, Config{})
	rec.SetMax(1)
	phone := newUAC(t)
	first, c, _ := call(t, phone, rec, addr, 40000)
	defer func() { first.Bye(context.Background()); <-c.Done() }()
	if code, res := inviteStatus(t, phone, addr, offer(40002, "0"), sipgo.AnswerOptions{}); code != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("second call: %d", code)
	}
	if srv.ActiveCalls() != 1 {
		t.Errorf("%d calls", srv.ActiveCalls())
	}
	// At the limit, a load balancer's OPTIONS probe hears it too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := phone.cli.Do(ctx, sipmsg.NewRequest(sipmsg.OPTIONS, target(addr))); err != nil || res.StatusCode != 503 {
		t.Errorf("OPTIONS at the limit: %v %v", res, err)
	}
}

func TestCancelBeforeAnswer(t *testing.T) {
	srv, rec, addr := startServer(t, Config{AnswerDelay: 3 * time.Second})
	phone := newUAC(t)
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := phone.dc.Invite(context.Background(), target(addr), offer(40000, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var res *sipmsg.Response
	done := make(chan error, 1)
	go func() {
		done <- sess.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sipmsg.Response) error {
			if r.IsProvisional() {
				cancel() // hang up before the answer: WaitAnswer sends CANCEL
			}
			res = r
			return nil
		}})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the call was answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to CANCEL")
	}
	if res == nil || !res.IsProvisional() {
		t.Fatalf("last response %v", res)
	}
	// The server must not have answered, and must have let the port go.
	for start := time.Now(); time.Since(start) < 4*time.Second; time.Sleep(20 * time.Millisecond) {
		n := len(rec.StartedCalls())
		if n != 0 {
			t.Fatal("cancelled call started")
		}
		if srv.ActiveCalls() == 0 && srv.ports.InUse() == 0 {
			return
		}
	}
	t.Fatalf("after CANCEL: %d calls, %d ports", srv.ActiveCalls(), srv.ports.InUse())
}

func TestMediaTimeoutAndHold(t *testing.T) {
	_, rec, addr := startServer(t, Config{MediaTimeout: 800 * time.Millisecond})
	phone := newUAC(t)
	rtpConn := rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, rtpConn.LocalAddr().(*net.UDPAddr).Port)
	sendTone(t, rtpConn, to, 440, 200)

	// Hold by re-INVITE: no RTP for well over the timeout, the call stays.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reinvite := func(dir string) {
		req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
		req.SetBody(offer(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0", "a="+dir))
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res, err := sess.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE %s: %v %v", dir, res, err)
		}
		if ans, err := ParseOffer(res.Body()); err != nil || ans.Addr != to {
			t.Fatalf("re-INVITE answer %v %v", ans, err)
		}
	}
	reinvite("sendonly")
	if !c.OnHold() {
		t.Fatal("not on hold")
	}
	select {
	case <-c.Done():
		t.Fatalf("call ended on hold: %s", c.Reason())
	case <-time.After(2500 * time.Millisecond):
	}
	reinvite("sendrecv")
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no media timeout after resume")
	}
	if c.Reason() != "timeout" {
		t.Errorf("reason %q", c.Reason())
	}
	waitBye(t, phone)
}

func TestDTMFDigits(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	rtpConn := rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, rtpConn.LocalAddr().(*net.UDPAddr).Port)
	seq := uint16(0)
	for i, digit := range []byte{1, 2, 11} { // '1', '2', '#'
		for k := range 5 {
			e := byte(10)
			if k >= 2 {
				e |= 0x80 // end, sent three times
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq, Timestamp: uint32(8000 * (i + 1)), SSRC: 5},
				Payload: []byte{digit, e, 0, byte(160 * (k + 1))}}
			b, _ := p.Marshal()
			rtpConn.WriteToUDPAddrPort(b, to)
			seq++
			time.Sleep(5 * time.Millisecond)
		}
	}
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
		if got := rec.Digits(); got == "12#" {
			sess.Bye(context.Background())
			<-c.Done()
			return
		}
	}
	t.Fatalf("digits %q", rec.Digits())
}

func TestCallOverTCP(t *testing.T) {
	srv, rec, _ := startServer(t, Config{TCP: "127.0.0.1:0"})
	addr := srv.Addrs()[1].String() // the TCP listener
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	to := target(addr)
	to.UriParams = sipmsg.NewParams()
	to.UriParams.Add("transport", "tcp")
	sess := answered(t, ctx, phone.dc, to, offer(40000, "8"))
	c := <-rec.Started
	if c.Codec != "PCMA" {
		t.Errorf("codec %s", c.Codec)
	}
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end")
	}
}

func TestDigestAuth(t *testing.T) {
	srv, rec, addr := startServer(t, Config{Users: map[string]string{"alice": "s3cret"}})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		user, pass string
		code       int
	}{{"", "", 401}, {"alice", "wrong", 401}, {"mallory", "s3cret", 401}, {"alice", "s3cret", 200}} {
		sess, err := phone.dc.Invite(ctx, target(addr), offer(40000, "0"))
		if err != nil {
			t.Fatal(err)
		}
		err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: tc.user, Password: tc.pass})
		code := 200
		var de *sipgo.ErrDialogResponse
		if errorsAs(err, &de) {
			code = de.Res.StatusCode
			if code == 401 && de.Res.GetHeader("WWW-Authenticate") == nil {
				t.Error("401 without a challenge")
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("%s/%s: %d, want %d", tc.user, tc.pass, code, tc.code)
		}
		if code == 401 && srv.ports.InUse() != 0 {
			t.Errorf("media allocated before authentication")
		}
		if code == 200 {
			sess.Ack(ctx)
			c := <-rec.Started
			sess.Bye(ctx)
			<-c.Done()
		}
		sess.Close()
	}
}

// SetAccess (a reload) changes who may call from the next request on:
// digest users where there were none, then a source list without us.
func TestSetAccess(t *testing.T) {
	srv, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	first, c, _ := call(t, phone, rec, addr, 40000) // up before the change, and stays
	defer func() { first.Bye(context.Background()); <-c.Done() }()
	srv.SetAccess(map[string]string{"alice": "s3cret"}, nil)
	if code, _ := inviteStatus(t, phone, addr, offer(40002, "0"), sipgo.AnswerOptions{}); code != 401 {
		t.Errorf("without credentials after users were set: %d", code)
	}
	if code, _ := inviteStatus(t, phone, addr, offer(40002, "0"), sipgo.AnswerOptions{Username: "alice", Password: "s3cret"}); code != 200 {
		t.Errorf("alice after users were set: %d", code)
	}
	srv.SetAccess(nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	if code, _ := inviteStatus(t, phone, addr, offer(40004, "0"), sipgo.AnswerOptions{}); code != 403 {
		t.Errorf("from a source no longer allowed: %d", code)
	}
	select {
	case <-c.Done():
		t.Error("the call in progress ended")
	default:
	}
}

func TestCallsPerSourceLimit(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	rec.SetMax(1) // admission refuses; the server answers 503
	phone := newUAC(t)
	first, c, _ := call(t, phone, rec, addr, 40000)
	defer func() { first.Bye(context.Background()); <-c.Done() }()
	if code, _ := inviteStatus(t, phone, addr, offer(40002, "0"), sipgo.AnswerOptions{}); code != 503 {
		t.Fatalf("second call from the same source: %d", code)
	}
}

func TestSessionTimer(t *testing.T) {
	_, rec, addr := startServer(t, Config{MinSE: time.Second})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Too small an interval: 422 with our minimum.
	sess, err := phone.dc.Invite(ctx, target(addr), offer(40000, "0"), sipmsg.NewHeader("Session-Expires", "0;refresher=uac"))
	if err != nil {
		t.Fatal(err)
	}
	var de *sipgo.ErrDialogResponse
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); !errorsAs(err, &de) || de.Res.StatusCode != 400 {
		t.Errorf("Session-Expires 0: %v", err)
	}
	sess.Close()
	sess = answered(t, ctx, phone.dc, target(addr), offer(40000, "0"), sipmsg.NewHeader("Session-Expires", "2"),
		sipmsg.NewHeader("Supported", "timer"))
	if h := sess.InviteResponse.GetHeader("Session-Expires"); h == nil || !strings.HasPrefix(h.Value(), "2;refresher=uac") ||
		sess.InviteResponse.GetHeader("Require") == nil {
		t.Errorf("200 OK Session-Expires: %v", h)
	}
	c := <-rec.Started
	// Refreshed by UPDATE every 0.8 s, the call outlives its 2 s interval
	// (with room for a loaded test machine)...
	for range 4 {
		time.Sleep(800 * time.Millisecond)
		req := sipmsg.NewRequest(sipmsg.UPDATE, sess.InviteResponse.Contact().Address)
		if res, err := sess.Do(ctx, req); err != nil || res.StatusCode != 200 || res.GetHeader("Session-Expires") == nil {
			t.Fatalf("UPDATE: %v %v", res, err)
		}
	}
	if c.Reason() != "" {
		t.Fatalf("ended while refreshed: %s", c.Reason())
	}
	// ...and ends once refreshes stop.
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not expire")
	}
	if c.Reason() != "timeout" {
		t.Errorf("reason %q", c.Reason())
	}
}

func TestSessionIntervalTooSmall(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	code, res := inviteStatus(t, newUAC(t), addr, offer(40000, "0"), sipgo.AnswerOptions{}, sipmsg.NewHeader("Session-Expires", "30"))
	if code != 422 || res.GetHeader("Min-SE") == nil || res.GetHeader("Min-SE").Value() != "90" {
		t.Fatalf("Session-Expires 30: %d", code)
	}
}

// Speech sent as PCMU arrives intact: the leg's 16 kHz audio correlates with
// the source put through the same decode and resampling offline.
func TestSpeechArrivesIntact(t *testing.T) {
	src, err := media.ReadWAVFile("../media/testdata/speech-8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	rtpConn := rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, rtpConn.LocalAddr().(*net.UDPAddr).Port)
	var sent []byte
	for k := 0; (k+1)*160 <= len(src.Samples); k++ {
		payload := make([]byte, 160)
		for j := range payload {
			payload[j] = g711.EncodeUlawFrame(int16(src.Samples[k*160+j] * 32767))
		}
		sent = append(sent, payload...)
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(k), Timestamp: uint32(k * 160), SSRC: 3}, Payload: payload}
		b, _ := p.Marshal()
		rtpConn.WriteToUDPAddrPort(b, to)
		time.Sleep(20 * time.Millisecond)
	}
	sess.Bye(context.Background())
	<-c.Done()
	got := make([]float32, ringOf(c, 0).Len())
	n, _ := ringOf(c, 0).Read(got)
	got = got[:n]
	// The reference: the same bytes decoded and resampled in one go.
	pcmu, _ := media.LookupCodec("PCMU")
	dec, _ := pcmu.NewDecoder()
	pcm, _ := dec.Decode(nil, sent)
	want, _ := media.ResampleFilter(pcm, 8000, 16000, media.FilterKaldi)
	if len(got) < len(want)-40 {
		t.Fatalf("%d samples arrived of %d", len(got), len(want))
	}
	var ab, aa, bb float64
	for i := range min(len(got), len(want)) {
		ab += float64(got[i]) * float64(want[i])
		aa += float64(got[i]) * float64(got[i])
		bb += float64(want[i]) * float64(want[i])
	}
	if r := ab / math.Sqrt(aa*bb); r < 0.999 {
		t.Fatalf("correlation %.4f", r)
	}
}

// Malformed SIP never brings the server down: garbage is dropped, an INVITE
// without a Contact gets 400, and the server still answers afterwards.
func TestMalformedSIP(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	for _, garbage := range []string{"\x00\xff garbage", "INVITE\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n", strings.Repeat("A", 4000)} {
		conn.Write([]byte(garbage))
	}
	noContact := "INVITE sip:transcribe@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-malformed-1\r\n" +
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:transcribe@127.0.0.1>\r\nCall-ID: malformed-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(offer(40000, "0"))) + "\r\n\r\n" + string(offer(40000, "0"))
	conn.Write([]byte(noContact))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4000)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer to an INVITE without Contact: %v", err)
		}
		if strings.HasPrefix(string(buf[:n]), "SIP/2.0 100") {
			continue
		}
		if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 400") {
			t.Fatalf("got %q", strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
		}
		break
	}
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := phone.cli.Do(ctx, sipmsg.NewRequest(sipmsg.OPTIONS, target(addr))); err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS after garbage: %v %v", res, err)
	}
}

func TestCallOverTLS(t *testing.T) {
	certFile, keyFile := testcert.Write(t)
	srv, rec, _ := startServer(t, Config{TLS: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	addr := srv.Addrs()[1].String() // after UDP
	ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	defer ua.Close()
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	dc := sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "uac", Host: "127.0.0.1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	to := target(addr)
	to.UriParams = sipmsg.NewParams()
	to.UriParams.Add("transport", "tls")
	sess := answered(t, ctx, dc, to, offer(40000, "0"))
	if ct := sess.InviteResponse.Contact(); ct == nil || !strings.Contains(ct.Value(), "transport=tls") {
		t.Errorf("Contact %v", ct)
	}
	c := <-rec.Started
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end")
	}
	// A bad certificate is a clear error at start.
	bad := Config{UDP: "127.0.0.1:0", TLS: "127.0.0.1:0", TLSCertFile: keyFile, TLSKeyFile: keyFile, RTPPorts: media.PortRange{Lo: 31000, Hi: 31010}}
	s2, err := NewServer(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Listen(); err == nil || !strings.Contains(err.Error(), "tls certificate") {
		t.Errorf("bad certificate: %v", err)
	}
	s2.Close()
}

// Closing the server ends calls with our BYE, reason shutdown.
func TestShutdownSendsBye(t *testing.T) {
	cfg := Config{UDP: "127.0.0.1:0", RTPPorts: media.PortRange{Lo: 31000, Hi: 31999}}
	rec := ingesttest.New[*Call]()
	srv, err := NewServer(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Lookup = srv.Call
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	phone := newUAC(t)
	_, c, _ := call(t, phone, rec, srv.Addrs()[0].String(), 40000)
	srv.Close()
	srv.Close() // idempotent
	if c.Reason() != "shutdown" {
		t.Errorf("reason %q", c.Reason())
	}
	waitBye(t, phone)
}

// After a re-INVITE the media may come from a new address: the receiver
// latches on it.
func TestReinviteRelatchesMedia(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	a, b := rtpSocket(t), rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, a.LocalAddr().(*net.UDPAddr).Port)
	sendTone(t, a, to, 440, 100)
	sendTone(t, b, to, 440, 40) // not latched: ignored
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
	req.SetBody(offer(b.LocalAddr().(*net.UDPAddr).Port, "0"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	if res, err := sess.Do(ctx, req); err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	sendTone(t, b, to, 440, 100)
	if src, _ := c.Legs[0].rcv.Source(); src.Port() != uint16(b.LocalAddr().(*net.UDPAddr).Port) {
		t.Errorf("latched on %v", src)
	}
	if c.Legs[0].rcv.Ignored() != 2 {
		t.Errorf("%d packets ignored, want 2", c.Legs[0].rcv.Ignored())
	}
	sess.Bye(ctx)
	<-c.Done()
}

// rtpSocket is a loopback UDP socket closed when the test ends.
func rtpSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitBye waits for the server's BYE at the phone.
func waitBye(t *testing.T, phone *uac) {
	t.Helper()
	select {
	case <-phone.byes:
	case <-time.After(3 * time.Second):
		t.Fatal("the phone got no BYE")
	}
}

// inviteStatus places an INVITE and returns the final status (the session
// is closed; a 200 is acknowledged and hung up).
func inviteStatus(t *testing.T, phone *uac, addr string, body []byte, opts sipgo.AnswerOptions, hdrs ...sipmsg.Header) (int, *sipmsg.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, err := phone.dc.Invite(ctx, target(addr), body, hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	err = sess.WaitAnswer(ctx, opts)
	var de *sipgo.ErrDialogResponse
	if errorsAs(err, &de) {
		return de.Res.StatusCode, de.Res
	}
	if err != nil {
		t.Fatal(err)
	}
	sess.Ack(ctx)
	sess.Bye(ctx)
	return sess.InviteResponse.StatusCode, sess.InviteResponse
}

// strangerRequest sends an in-dialog request from another socket: the
// call's Call-ID with the given tags and CSeq, and returns the status.
func strangerRequest(t *testing.T, addr, method, callID, fromTag, toTag string, cseq int, body []byte) int {
	t.Helper()
	msg := method + " sip:callscribe@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK" + fmt.Sprint(method, cseq, fromTag) + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:mallory@127.0.0.1>;tag=" + fromTag + "\r\n" +
		"To: <sip:service@" + addr + ">;tag=" + toTag + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		fmt.Sprintf("CSeq: %d %s\r\n", cseq, method) +
		"Contact: <sip:mallory@LOCAL>\r\n"
	if body != nil {
		msg += "Content-Type: application/sdp\r\n"
	}
	msg += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	code := rawStatus(t, addr, msg)
	if code == 0 {
		t.Fatalf("%s: no answer", method)
	}
	return code
}

// A stranger who knows a live call's Call-ID cannot re-INVITE or UPDATE it
// (481 without the dialog's tags), the peer's stale CSeq gets 500, and the
// media stays latched on the caller.
func TestStrangerCannotTakeOverACall(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	a, evil := rtpSocket(t), rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, a.LocalAddr().(*net.UDPAddr).Port)
	sendTone(t, a, to, 440, 100)
	callID := sess.InviteRequest.CallID().Value()
	fromTag, _ := sess.InviteRequest.From().Params.Get("tag")
	toTag, _ := sess.InviteResponse.To().Params.Get("tag")
	steal := offer(evil.LocalAddr().(*net.UDPAddr).Port, "0")
	for _, tc := range []struct {
		name, method, from, to string
		cseq, want             int
	}{
		{"made-up tags", "INVITE", "x1", "x2", 100, 481},
		{"the caller's tag only", "INVITE", fromTag, "x2", 101, 481},
		{"UPDATE with made-up tags", "UPDATE", "x1", "x2", 102, 481},
		{"BYE with made-up tags", "BYE", "x1", "x2", 103, 481},
		{"the dialog's tags, a stale CSeq", "INVITE", fromTag, toTag, 0, 500},
	} {
		body := steal
		if tc.method != "INVITE" {
			body = nil
		}
		if code := strangerRequest(t, addr, tc.method, callID, tc.from, tc.to, tc.cseq, body); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	sendTone(t, evil, to, 440, 400) // 20 packets, not latched: ignored
	sendTone(t, a, to, 440, 100)
	if src, _ := c.Legs[0].rcv.Source(); src.Port() != uint16(a.LocalAddr().(*net.UDPAddr).Port) {
		t.Errorf("the media moved to %v", src)
	}
	for start := time.Now(); c.Legs[0].rcv.Ignored() < 20 && time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	if c.Legs[0].rcv.Ignored() != 20 {
		t.Errorf("%d packets ignored, want the stranger's 20", c.Legs[0].rcv.Ignored())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess.Bye(ctx)
	<-c.Done()
}

// Flooding a call's RTP port before its peer sends (from another host)
// does not take the leg: the flood is ignored and counted, the caller's
// audio latches; ports are handed out in no guessable order.
func TestPreLatchFloodIsIgnored(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	a := rtpSocket(t)
	evil, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}) // another host
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	sess, c, to := call(t, phone, rec, addr, a.LocalAddr().(*net.UDPAddr).Port)
	sendTone(t, evil, to, 2000, 400) // 20 packets before the caller's first
	sendTone(t, a, to, 1000, 400)
	for start := time.Now(); c.Legs[0].rcv.Packets() < 20 && time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	if src, _ := c.Legs[0].rcv.Source(); src.Port() != uint16(a.LocalAddr().(*net.UDPAddr).Port) {
		t.Errorf("latched on %v, not the caller", src)
	}
	if n := c.Legs[0].rcv.Ignored(); n != 20 {
		t.Errorf("%d packets ignored, want the flood's 20", n)
	}
	y := make([]float32, ringOf(c, 0).Len())
	n, _ := ringOf(c, 0).Read(y)
	if f := peak(y[:n]); f != 1000 {
		t.Errorf("the leg heard %v Hz, not the caller's 1000", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess.Bye(ctx)
	<-c.Done()

	ports, _ := media.NewPorts(40000, 40999)
	var got []int
	for range 8 {
		conn, err := ports.Listen("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		got = append(got, conn.LocalAddr().(*net.UDPAddr).Port)
	}
	inOrder := true
	for i := 1; i < len(got); i++ {
		inOrder = inOrder && got[i] == got[i-1]+2
	}
	if inOrder {
		t.Errorf("ports handed out in order: %v", got)
	}
}

// rawStatus sends one SIP message over UDP and returns the final status.
func rawStatus(t *testing.T, addr, msg string) int {
	t.Helper()
	conn := rtpSocket(t)
	msg = strings.ReplaceAll(msg, "LOCAL", conn.LocalAddr().String())
	to, _ := net.ResolveUDPAddr("udp", addr)
	conn.WriteToUDP([]byte(msg), to)
	buf := make([]byte, 65535)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return 0 // no answer
		}
		if s := string(buf[:n]); strings.HasPrefix(s, "SIP/2.0 ") && s[8] != '1' {
			code := 0
			fmt.Sscanf(s[8:11], "%d", &code)
			return code
		}
	}
}

// What the parser takes but RFC 3261 does not gets its proper answer, not 200.
func TestLaxRequestsRefused(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	head := func(first, maxFwd, cseq string, callIDs ...string) string {
		m := first + "\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK" + fmt.Sprint(time.Now().UnixNano()) + "\r\nMax-Forwards: " + maxFwd +
			"\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@" + addr + ">\r\n"
		for _, id := range callIDs {
			m += "Call-ID: " + id + "\r\n"
		}
		return m + "CSeq: " + cseq + "\r\nContact: <sip:a@LOCAL>\r\n"
	}
	sdp := string(offer(40000, "0"))
	invite := func(maxFwd string) string {
		return head("INVITE sip:b@"+addr+" SIP/2.0", maxFwd, "1 INVITE", "lax-1@test") +
			fmt.Sprintf("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
	}
	for _, tc := range []struct {
		name string
		msg  string
		want int
	}{
		{"INVITE with Max-Forwards 0", invite("0"), 483},
		{"CSeq of another method", head("OPTIONS sip:b@"+addr+" SIP/2.0", "70", "1 INVITE", "lax-2@test") + "Content-Length: 0\r\n\r\n", 400},
		{"two Call-IDs", head("OPTIONS sip:b@"+addr+" SIP/2.0", "70", "1 OPTIONS", "lax-3@test", "lax-4@test") + "Content-Length: 0\r\n\r\n", 400},
		{"SIP/3.0", head("OPTIONS sip:b@"+addr+" SIP/3.0", "70", "1 OPTIONS", "lax-5@test") + "Content-Length: 0\r\n\r\n", 505},
		{"a proper OPTIONS", head("OPTIONS sip:b@"+addr+" SIP/2.0", "70", "1 OPTIONS", "lax-6@test") + "Content-Length: 0\r\n\r\n", 200},
	} {
		if got := rawStatus(t, addr, tc.msg); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if n := len(rec.StartedCalls()); n != 0 {
		t.Errorf("%d calls started", n)
	}
}

// TCP connections from strangers: more than the per-source bound are
// closed at once, a silent one is closed after the idle timeout, and calls
// over TCP still work.
func TestTCPConnectionsBounded(t *testing.T) {
	srv, _, _ := startServer(t, Config{TCP: "127.0.0.1:0", TCPIdleTimeout: time.Second, TCPMaxPerSource: 2})
	var tcp string
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			tcp = a.String()
		}
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	if !closedWithin(conns[2], time.Second) {
		t.Error("a third connection from one address stayed open")
	}
	start := time.Now()
	if !closedWithin(conns[0], 3*time.Second) {
		t.Error("a silent connection stayed open past the idle timeout")
	} else if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("a connection closed after %v, before the idle timeout", d)
	}
}

// One address may have only so many INVITEs in progress (answered and not
// ACKed here): the next is refused at once; another address still calls.
func TestUnackedPerSourceBounded(t *testing.T) {
	_, _, addr := startServer(t, Config{MaxUnackedPerSource: 2, AckTimeout: 2 * time.Second})
	sdp := string(offer(40000, "0"))
	invite := func(id string) string {
		return "INVITE sip:b@" + addr + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK" + id + "\r\nMax-Forwards: 70\r\n" +
			"From: <sip:a@127.0.0.1>;tag=" + id + "\r\nTo: <sip:b@" + addr + ">\r\nCall-ID: " + id + "\r\nCSeq: 1 INVITE\r\n" +
			"Contact: <sip:a@LOCAL>\r\n" + fmt.Sprintf("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
	}
	var got []int
	for i := range 3 {
		got = append(got, rawStatus(t, addr, invite(fmt.Sprint("unacked-", i))))
	}
	if fmt.Sprint(got) != "[200 200 503]" {
		t.Errorf("three INVITEs never ACKed: %v, want [200 200 503]", got)
	}
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	msg := strings.ReplaceAll(invite("elsewhere-1"), "LOCAL", other.LocalAddr().String())
	to, _ := net.ResolveUDPAddr("udp", addr)
	other.WriteToUDP([]byte(msg), to)
	buf := make([]byte, 65535)
	other.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := other.ReadFromUDP(buf)
		if err != nil {
			t.Fatal("no answer to a caller at another address")
		}
		if s := string(buf[:n]); strings.HasPrefix(s, "SIP/2.0 ") && s[8] != '1' {
			if !strings.HasPrefix(s, "SIP/2.0 200") {
				t.Errorf("a caller at another address: %s", s[:20])
			}
			break
		}
	}
}

// Carrier details: DTMF in INFO (dtmf-relay and dtmf) becomes digits; an
// unknown Require gets 420 with Unsupported; the 200 to a re-INVITE has a
// Contact; a 100 over TCP carries the TCP Contact.
func TestCarrierDetails(t *testing.T) {
	_, rec, addr := startServer(t, Config{TCP: "127.0.0.1:0"})
	phone := newUAC(t)
	sess, c, _ := call(t, phone, rec, addr, 40000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range []struct{ ct, body string }{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"},
		{"application/dtmf", "#"},
		{"application/dtmf-relay", "Signal=\r\n"}, // no digit: 200, nothing reported
	} {
		req := sipmsg.NewRequest(sipmsg.INFO, sess.InviteResponse.Contact().Address)
		req.AppendHeader(sipmsg.NewHeader("Content-Type", b.ct))
		req.SetBody([]byte(b.body))
		if res, err := sess.Do(ctx, req); err != nil || res.StatusCode != 200 {
			t.Fatalf("INFO %s: %v %v", b.ct, res, err)
		}
	}
	if got := rec.Digits(); got != "5#" {
		t.Errorf("digits from INFO %q, want 5#", got)
	}
	req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
	req.SetBody(offer(40000, "0"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res, err := sess.Do(ctx, req)
	if err != nil || res.StatusCode != 200 || res.Contact() == nil {
		t.Errorf("200 to a re-INVITE without Contact: %v %v", res, err)
	}
	sess.Bye(ctx)
	<-c.Done()

	if code, res := inviteStatus(t, phone, addr, offer(40002, "0"), sipgo.AnswerOptions{}, sipmsg.NewHeader("Require", "timer, 100rel, foo")); code != 420 ||
		res.GetHeader("Unsupported") == nil || res.GetHeader("Unsupported").Value() != "100rel, foo" {
		t.Errorf("unknown Require: %d %v", code, res)
	}
}

// Session-Expires from a caller that does not support timers (a proxy
// added it, as Kamailio's sst module does): we are the refresher (RFC 4028
// 9), without Require, and refresh by UPDATE, so the call outlives several
// intervals; a refresh re-INVITE without SDP gets our SDP and the timer.
func TestSessionTimerWeRefresh(t *testing.T) {
	_, rec, addr := startServer(t, Config{MinSE: time.Second})
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sess := answered(t, ctx, phone.dc, target(addr), offer(40000, "0"), sipmsg.NewHeader("Session-Expires", "2"))
	if h := sess.InviteResponse.GetHeader("Session-Expires"); h == nil || h.Value() != "2;refresher=uas" || sess.InviteResponse.GetHeader("Require") != nil {
		t.Errorf("200 OK: Session-Expires %v, Require %v", h, sess.InviteResponse.GetHeader("Require"))
	}
	c := <-rec.Started
	time.Sleep(5 * time.Second) // two and a half intervals, no refresh from the caller
	if c.Reason() != "" || phone.updates.Load() < 3 {
		t.Fatalf("ended %q, %d refreshes sent", c.Reason(), phone.updates.Load())
	}
	req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
	res, err := sess.Do(ctx, req)
	if err != nil || res.StatusCode != 200 || len(res.Body()) == 0 || res.GetHeader("Session-Expires") == nil {
		t.Fatalf("re-INVITE without SDP: %v %v", res, err)
	}
	if _, err := ParseOffer(res.Body()); err != nil {
		t.Errorf("the SDP in the 200: %v", err)
	}
	sess.Bye(ctx)
	<-c.Done()
	if c.Reason() != "bye" {
		t.Errorf("reason %q", c.Reason())
	}
}

// inviteWithoutOffer starts a delayed-offer call: an INVITE without SDP,
// answered with our offer in the 200.
func inviteWithoutOffer(t *testing.T, ctx context.Context, addr string) *sipgo.DialogClientSession {
	t.Helper()
	sess, err := newUAC(t).dc.Invite(ctx, target(addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	return sess
}

// ackWithAnswer sends the ACK of a delayed-offer call with its SDP answer.
func ackWithAnswer(t *testing.T, ctx context.Context, sess *sipgo.DialogClientSession, sdp []byte) {
	t.Helper()
	ack := sipmsg.NewRequest(sipmsg.ACK, sess.InviteResponse.Contact().Address)
	ack.SetBody(sdp)
	ack.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err := sess.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
}

// awaitSamples waits up to 3 s for n samples on the call's first leg and
// returns what is there.
func awaitSamples(c *Call, n int) []float32 {
	for start := time.Now(); ringOf(c, 0).Len() < n && time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	y := make([]float32, ringOf(c, 0).Len())
	k, _ := ringOf(c, 0).Read(y)
	return y[:k]
}

// A delayed offer (an INVITE without SDP, as Cisco trunks send): the 200
// offers every codec, the ACK brings the answer (PCMA here), and the audio
// sent with it arrives.
func TestDelayedOffer(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess := inviteWithoutOffer(t, ctx, addr)
	ours, err := ParseOffer(sess.InviteResponse.Body())
	if err != nil || len(ours.Codecs) < 5 || ours.Direction != "recvonly" {
		t.Fatalf("our offer: %+v %v\n%s", ours, err, sess.InviteResponse.Body())
	}
	a := rtpSocket(t)
	ackWithAnswer(t, ctx, sess, offer(a.LocalAddr().(*net.UDPAddr).Port, "8"))
	c := <-rec.Started
	p := make([]byte, 160)
	for i := range p {
		p[i] = g711.EncodeAlawFrame(int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/8000)))
	}
	for k := range 25 {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: uint16(k), Timestamp: uint32(160 * k), SSRC: 5}, Payload: p}
		b, _ := pkt.Marshal()
		a.WriteToUDPAddrPort(b, ours.Addr)
		time.Sleep(5 * time.Millisecond)
	}
	y := awaitSamples(c, 6000)
	if len(y) < 6000 || peak(y) != 1000 {
		t.Errorf("%d samples, peak %v Hz", len(y), peak(y))
	}
	// A stranger's ACK naming the call, with an answer of its own, changes
	// nothing.
	fake := "ACK sip:callscribe@" + addr + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKfakeack\r\nMax-Forwards: 70\r\n" +
		"From: <sip:mallory@127.0.0.1>;tag=x1\r\nTo: <sip:svc@" + addr + ">;tag=x2\r\nCall-ID: " + sess.InviteRequest.CallID().Value() +
		"\r\nCSeq: 1 ACK\r\nContent-Type: application/sdp\r\n"
	body := string(offer(9, "9"))
	fake += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	rawStatus(t, addr, fake) // no answer to an ACK: waits out its deadline
	c.mu.Lock()
	codec := c.Legs[0].choice.Name
	c.mu.Unlock()
	if codec != "PCMA" {
		t.Errorf("codec from the answer: %q", codec)
	}
	sess.Bye(ctx)
	<-c.Done()
}

// Our BYE over TLS goes back on the caller's connection: the caller's
// Contact takes no connections (as phones behind NAT and many SBCs).
func TestByeOverTLSReusesTheConnection(t *testing.T) {
	certFile, keyFile := testcert.Write(t)
	srv, rec, _ := startServer(t, Config{TLS: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	addr := srv.Addrs()[1].String()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	defer ua.Close()
	phoneSrv, _ := sipgo.NewServer(ua) // requests on its client connections
	byes := make(chan struct{}, 1)
	phoneSrv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
		byes <- struct{}{}
	})
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	dc := sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "uac", Host: "127.0.0.1", Port: 9}}) // nothing listens
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	to := target(addr)
	to.UriParams = sipmsg.NewParams()
	to.UriParams.Add("transport", "tls")
	answered(t, ctx, dc, to, offer(40000, "0"))
	c := <-rec.Started
	srv.Close() // reason shutdown: our BYE
	if c.Reason() != "shutdown" {
		t.Errorf("reason %q", c.Reason())
	}
	select {
	case <-byes:
	case <-time.After(3 * time.Second):
		t.Fatal("our BYE did not arrive on the caller's TLS connection")
	}
}
