package sip

import (
	"context"
	"net"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// A BYE whose CSeq is older than the peer's last request in the dialog is
// out of order (RFC 3261 12.2.2): 500, and the call goes on — its audio
// still arrives, and a BYE with a proper CSeq ends it.
func TestStaleByeRefused(t *testing.T) {
	_, rec, addr := startServer(t, Config{})
	phone := newUAC(t)
	a := rtpSocket(t)
	sess, c, to := call(t, phone, rec, addr, a.LocalAddr().(*net.UDPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	confirmed(t, c)
	// An UPDATE moves the peer's CSeq one past the INVITE's.
	if res, err := sess.Do(ctx, sipmsg.NewRequest(sipmsg.UPDATE, sess.InviteResponse.Contact().Address)); err != nil || res.StatusCode != 200 {
		t.Fatalf("UPDATE: %v %v", res, err)
	}
	callID := sess.InviteRequest.CallID().Value()
	fromTag, _ := sess.InviteRequest.From().Params.Get("tag")
	toTag, _ := sess.InviteResponse.To().Params.Get("tag")
	stale := int(sess.InviteRequest.CSeq().SeqNo)
	if code := strangerRequest(t, addr, "BYE", callID, fromTag, toTag, stale, nil); code != 500 {
		t.Errorf("BYE with the INVITE's CSeq after an UPDATE: %d, want 500", code)
	}
	if r := c.Reason(); r != "" {
		t.Fatalf("the stale BYE ended the call: %s", r)
	}
	before := ringOf(c, 0).Len()
	sendTone(t, a, to, 440, 200)
	if ringOf(c, 0).Len() <= before {
		t.Error("no audio after the stale BYE")
	}
	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	<-c.Done()
	if c.Reason() != "bye" {
		t.Errorf("reason %q", c.Reason())
	}
}

// confirmed waits until the server has read the ACK of c's 200: a request
// the phone sends next must not overtake it (an ACK read after a request
// with a higher CSeq does not confirm the dialog).
func confirmed(t *testing.T, c *Call) {
	t.Helper()
	for start := time.Now(); c.dlg.LoadState() != sipmsg.DialogStateConfirmed; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the ACK was not read: dialog %v", c.dlg.LoadState())
		}
	}
}
