package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/redis/go-redis/v9"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

func modelDir(t testing.TB) string {
	d := os.Getenv("CALLSCRIBE_MODEL")
	if d == "" {
		d = filepath.Join("..", "..", "shared", "models", "sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile")
	}
	if _, err := os.Stat(filepath.Join(d, "tokens.txt")); err != nil {
		t.Fatalf("model: %v", err)
	}
	return d
}

func newBatcher(t testing.TB) *asr.Batcher {
	t.Helper()
	if err := asr.InitRuntime(""); err != nil {
		t.Fatal(err)
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: modelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := asr.NewBatcher(info, asr.BatcherOptions{Endpoint: asr.DefaultEndpointConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// phone places one call and streams PCMU in real time.
type phone struct {
	dc   *sipgo.DialogClientCache
	rtp  *net.UDPConn
	done func()
}

func newPhone(t *testing.T) *phone {
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	p := &phone{dc: sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{User: "phone", Host: "127.0.0.1", Port: port}})}
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { p.dc.ReadBye(req, tx) })
	go srv.ServeUDP(pc)
	p.rtp, _ = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	t.Cleanup(func() { p.rtp.Close(); srv.Close(); ua.Close() })
	return p
}

func pcmu(x []float32) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = g711.EncodeUlawFrame(int16(max(-1, min(1, v)) * 32767))
	}
	return b
}

// talk calls addr, streams payload (PCMU, 8 kHz) in real time, then hangs up.
func (p *phone) talk(t *testing.T, addr string, payload []byte, hdrs ...sipmsg.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ap := netip.MustParseAddrPort(addr)
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", p.rtp.LocalAddr().(*net.UDPAddr).Port)
	sess, err := p.dc.Invite(ctx, sipmsg.Uri{User: "transcribe", Host: ap.Addr().String(), Port: int(ap.Port())}, []byte(sdp), hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	sess.Ack(ctx)
	ans, err := sip.ParseOffer(sess.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for k := 0; (k+1)*160 <= len(payload); k++ {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(k), Timestamp: uint32(160 * k), SSRC: 77},
			Payload: payload[160*k : 160*(k+1)]}
		b, _ := pkt.Marshal()
		p.rtp.WriteToUDPAddrPort(b, ans.Addr)
		time.Sleep(time.Until(start.Add(time.Duration(k+1) * 20 * time.Millisecond)))
	}
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCallToTranscriptOnRedis(t *testing.T) {
	rd := transcripttest.Start(t)
	pub := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	defer pub.Close()
	calls := NewCalls(newBatcher(t), pub, nil)
	srv, err := sip.NewServer(sip.Config{UDP: "127.0.0.1:0", RTPPortLo: 33000, RTPPortHi: 33999}, calls)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	a, err := media.ReadWAVFile(filepath.Join(modelDir(t), "test_wavs", "8k.wav"))
	if err != nil {
		t.Fatal(err)
	}
	speech := pcmu(a.Samples)
	var wg sync.WaitGroup
	for i := range 3 { // concurrent calls
		wg.Add(1)
		go func() {
			defer wg.Done()
			newPhone(t).talk(t, srv.Addrs()[0].String(), speech, sipmsg.NewHeader("X-Agent-Id", strconv.Itoa(i)))
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := calls.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// What transcribe gives for the same 8 kHz audio (after G.711).
	dec, _ := media.LookupCodec("PCMU")
	d, _ := dec.NewDecoder()
	pcm, _ := d.Decode(nil, speech)
	x, _ := media.ResampleFilter(pcm, 8000, 16000, media.FilterKaldi)
	ref, err := asr.DecodeAll(newBatcher(t), [][]float32{x}, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := asr.FinalText(ref[0])
	if want == "" {
		t.Fatal("reference transcript is empty")
	}
	t.Logf("transcribe of the G.711 audio: %q", want)

	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	keys, _ := rc.Keys(ctx, "stt:call:*").Result()
	if len(keys) != 3 {
		t.Fatalf("%d call streams: %v", len(keys), keys)
	}
	for _, k := range keys {
		msgs, _ := rc.XRange(ctx, k, "-", "+").Result()
		var types, finals []string
		last := 0
		for _, m := range msgs {
			seq, _ := strconv.Atoi(m.Values["seq"].(string))
			if seq <= last {
				t.Errorf("%s: seq %d after %d", k, seq, last)
			}
			last = seq
			types = append(types, m.Values["type"].(string))
			if m.Values["type"] == "final" {
				finals = append(finals, m.Values["text"].(string))
			}
		}
		if types[0] != "call.start" || types[len(types)-1] != "call.end" || !contains(types, "partial") {
			t.Errorf("%s: types %v", k, types)
		}
		if msgs[0].Values["hdr:X-Agent-Id"] == nil || msgs[len(msgs)-1].Values["reason"] != "bye" {
			t.Errorf("%s: start %v end %v", k, msgs[0].Values, msgs[len(msgs)-1].Values)
		}
		if got := strings.Join(finals, " "); got != want {
			t.Errorf("%s: finals %q, transcribe gives %q", k, got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
