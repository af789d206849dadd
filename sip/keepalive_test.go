package sip

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// A call without media (answered inactive or to 0.0.0.0, put on hold, or
// with no RTP arriving) has its peer checked by OPTIONS in the dialog every
// KeepaliveInterval: a peer that answers none, or answers 481 or 408, twice
// in a row, loses its call within about two intervals and a probe's wait
// (reason keepalive, our BYE sent); a peer that answers anything else
// keeps it.
func TestKeepaliveEndsCallsWhosePeerIsGone(t *testing.T) {
	const every = 500 * time.Millisecond
	zero := []byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n")
	for _, tc := range []struct {
		name   string
		body   []byte
		hold   bool  // put on hold by re-INVITE once answered
		status int32 // the phone's answer to OPTIONS; 0: none
		ends   bool
	}{
		{"answered inactive, the phone gone", offer(40000, "0", "a=inactive"), false, 0, true},
		{"answered to 0.0.0.0, the phone answers 481", zero, false, 481, true},
		{"put on hold, the phone answers 408", offer(40000, "0"), true, 408, true},
		{"no RTP arriving, the phone gone", offer(40000, "0"), false, 0, true},
		{"answered inactive, the phone answers 200", offer(40000, "0", "a=inactive"), false, 200, false},
		{"on hold, the phone answers 405", offer(40000, "0"), true, 405, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startServer(t, Config{KeepaliveInterval: every, MediaTimeout: time.Minute})
			phone := newUAC(t)
			phone.optionsStatus.Store(tc.status)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sess := answered(t, ctx, phone.dc, target(addr), tc.body)
			c := <-rec.Started
			confirmed(t, c)
			if tc.hold {
				req := sipmsg.NewRequest(sipmsg.INVITE, sess.InviteResponse.Contact().Address)
				req.SetBody(offer(40000, "0", "a=sendonly"))
				req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
				if res, err := sess.Do(ctx, req); err != nil || res.StatusCode != 200 {
					t.Fatalf("re-INVITE: %v %v", res, err)
				}
			}
			start := time.Now()
			if !tc.ends {
				for phone.options.Load() < 3 && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				if n := phone.options.Load(); n < 3 || c.Reason() != "" {
					t.Fatalf("after %d OPTIONS answered %d: ended %q", n, tc.status, c.Reason())
				}
				sess.Bye(ctx)
				<-c.Done()
				return
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatalf("the call outlived its peer (%d OPTIONS sent)", phone.options.Load())
			}
			// Two intervals until the second probe, and its wait (one
			// interval), with room for a loaded machine.
			if took := time.Since(start); c.Reason() != "keepalive" || took > 3*every+2*time.Second {
				t.Errorf("ended %q after %v", c.Reason(), took)
			}
			if n := phone.options.Load(); n < 2 {
				t.Errorf("%d OPTIONS sent, want 2", n)
			}
			waitBye(t, phone)
		})
	}
}

// Over TCP the keepalive goes back on the caller's connection, as our BYE
// does: a caller whose Contact takes no connections (behind NAT) but
// answers on its connection keeps its held call.
func TestKeepaliveOverTCPReusesTheConnection(t *testing.T) {
	srv, rec, _ := startServer(t, Config{TCP: "127.0.0.1:0", KeepaliveInterval: 300 * time.Millisecond})
	addr := srv.Addrs()[1].String() // the TCP listener
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	phoneSrv, _ := sipgo.NewServer(ua) // requests on its client connections
	var options atomic.Int32
	phoneSrv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		options.Add(1)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	phoneSrv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	dc := sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "uac", Host: "127.0.0.1", Port: 9}}) // nothing listens
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := target(addr)
	to.UriParams = sipmsg.NewParams()
	to.UriParams.Add("transport", "tcp")
	sess := answered(t, ctx, dc, to, offer(40000, "0", "a=inactive"))
	c := <-rec.Started
	for options.Load() < 3 && ctx.Err() == nil && c.Reason() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	if n := options.Load(); n < 3 || c.Reason() != "" {
		t.Fatalf("%d OPTIONS answered on the caller's connection; the call ended %q", n, c.Reason())
	}
	sess.Bye(ctx)
	<-c.Done()
}
