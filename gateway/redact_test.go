package gateway

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
)

// With redaction on, a DTMF event says when a key was pressed, not which;
// a call's own redaction list is checked (400 when it cannot be read).
func TestRedactionMasksDTMF(t *testing.T) {
	rd, pub, calls, _ := startGatewayWith(t, CallsOptions{Redact: redact.Policy{SSN: true}})
	if _, err := calls.Admit(ingest.Offer{ID: "bad", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"},
		Redact: "cards"}); ingest.AsRefusal(err).SIP != 400 {
		t.Fatalf("bad list: %v", err)
	}
	tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(map[string]string{})
	tk.DTMF(0, media.DTMF{Digit: '7', StartMs: 100, DurationMs: 80})
	tk.End("bye", nil)
	<-tk.Done()
	pub.Flush(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, evs := range callStreams(t, ctx, rd.Addr) {
		for _, e := range evs {
			if e["type"] != "dtmf" {
				continue
			}
			if _, ok := e["digit"]; ok || e["redacted"] != "dtmf" || e["start_ms"] != "100" {
				t.Errorf("dtmf event %v", e)
			}
			return
		}
	}
	t.Error("no dtmf event")
}
