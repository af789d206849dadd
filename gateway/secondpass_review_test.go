package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/sip"
)

// A second pass too slow for even one talking stream (its measured cost
// over a second per second of audio: base on a contended core, a CUDA
// fallback) must not lift admission's bound: capacity() rounds the streams
// served down to 0, which MaxStreams reads as "no bound", and every call is
// admitted.
func TestSlowSecondPassKeepsAdmissionBounded(t *testing.T) {
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := asr.NewBatcher(info, asr.BatcherOptions{Calibrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	_, _, plain, _ := testGateway(t, b, CallsOptions{MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
	without := plain.MaxStreams()
	if without <= 0 {
		t.Fatalf("the recognizer's capacity is %d: not measured", without)
	}
	pass := withPass(t, failing{}, SecondPassOptions{})
	pass.cost.Store(int64(2 * time.Second)) // as a busy round measures it on a slow core
	_, _, calls, _ := testGateway(t, b, CallsOptions{MaxLag: -1, SecondPass: pass}, sip.Config{UDP: "127.0.0.1:0"})
	t.Logf("capacity without a second pass %d streams, with it MaxStreams() = %d", without, calls.MaxStreams())
	for i := range without + 1 {
		tk, err := calls.Admit(ingest.Offer{ID: fmt.Sprintf("c%d", i), Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
		if errors.Is(err, ingest.ErrCapacity) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer tk.End("bye", nil)
	}
	t.Errorf("%d calls admitted, more than the first pass alone serves (%d), with a second pass slower than real time", without+1, without)
}
