package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/redis/go-redis/v9"
)

func TestTailPrintsTranscripts(t *testing.T) {
	rd := transcripttest.Start(t)
	pub, err := transcript.NewPublisher(transcript.Options{Addr: rd.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Publish(transcript.Event{Type: transcript.CallStart, CallID: "c1", Fields: map[string]string{"from": "sip:a@x", "to": "sip:b@y", "codec": "PCMU", "hdr:X-Id": "7"}})
	pub.Publish(transcript.Event{Type: transcript.Partial, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "HEL"}})
	pub.Publish(transcript.Event{Type: transcript.Final, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "0", "text": "HELLO THERE"}})
	pub.Publish(transcript.Event{Type: transcript.Final, CallID: "c1", Fields: map[string]string{"leg": "caller", "utt": "1",
		"text": "DIAL 2 NOW", "display": "Dial 2 now.", "second_pass": "moonshine-tiny"}})
	pub.Publish(transcript.Event{Type: transcript.DTMF, CallID: "c1", Fields: map[string]string{"leg": "caller", "digit": "5"}})
	pub.Publish(transcript.Event{Type: transcript.CallEnd, CallID: "c1", Fields: map[string]string{"reason": "bye", "duration_ms": "1000"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub.Flush(ctx)
	for _, tc := range []struct {
		tty, json bool
		want      []string
	}{
		{false, false, []string{"call c1 started: sip:a@x -> sip:b@y (PCMU) [X-Id=7]", "[c1 caller] HELLO THERE", "[c1 caller] Dial 2 now. (moonshine-tiny)", "[c1 caller] DTMF 5", "call c1 ended: bye after 1000 ms"}},
		{true, false, []string{"[c1 caller] HEL\r\x1b[K[c1 caller] HELLO THERE"}},
		{false, true, []string{`"text":"HELLO THERE"`, `"type":"call.end"`}},
	} {
		var out bytes.Buffer
		rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
		defer rc.Close()
		if err := tail(ctx, rc, "stt:events:0", tc.json, 1, true, tc.tty, &out); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("tty=%v json=%v: output lacks %q:\n%s", tc.tty, tc.json, w, out.String())
			}
		}
		if !tc.tty && !tc.json && strings.Contains(out.String(), "HEL\n") {
			t.Error("partial printed to a pipe")
		}
	}
}
