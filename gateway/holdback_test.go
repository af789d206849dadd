package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// promptDir holds Asterisk's English prompts in a real voice (package
// asterisk-core-sounds-en-wav, installed by scripts/setup).
const promptDir = "/usr/share/asterisk/sounds/en_US_f_Allison"

// speech strings prompts and pauses together, as 16 kHz samples: a string
// names a prompt ("digits/4", "extension"), a duration is silence.
func speech(t *testing.T, parts ...any) []float32 {
	t.Helper()
	var x []float32
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			a, err := media.ReadWAVFile(filepath.Join(promptDir, p+".wav"))
			if err != nil {
				t.Fatalf("prompt %s (scripts/setup installs asterisk-core-sounds-en-wav): %v", p, err)
			}
			y, err := media.ResampleFilter(a.Samples, a.SampleRate, 16000, media.FilterKaldi)
			if err != nil {
				t.Fatal(err)
			}
			x = append(x, y...)
		case time.Duration:
			x = append(x, make([]float32, p.Milliseconds()*16)...)
		default:
			t.Fatalf("speech part %T", p)
		}
	}
	return x
}

// card says a card number in groups of digits with pause between them.
func card(t *testing.T, pause time.Duration, groups ...string) []float32 {
	var parts []any
	for _, g := range groups {
		for _, d := range g {
			parts = append(parts, "digits/"+string(d))
		}
		parts = append(parts, pause)
	}
	return speech(t, parts...)
}

// batcherWith is the model's batcher endpointing by mode.
func batcherWith(t testing.TB, mode string) *asr.Batcher {
	t.Helper()
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	ep := asr.DefaultEndpointConfig()
	ep.Mode = mode
	b, err := asr.NewBatcher(info, asr.BatcherOptions{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// sayOnCall places a one-leg call that says x (fed four times faster than
// real time, in 20 ms blocks) and returns its events once call.end is out.
func sayOnCall(t *testing.T, b *asr.Batcher, o CallsOptions, redactList string, x []float32) []map[string]any {
	t.Helper()
	o.MaxStreams, o.MaxLag = -1, -1
	rd, pub, calls, _ := testGateway(t, b, o, sip.Config{UDP: "127.0.0.1:0"})
	tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"},
		Redact: redactList})
	if err != nil {
		t.Fatal(err)
	}
	tk.Start(nil)
	sink := tk.Sink(0)
	for at := 0; at < len(x); at += 320 {
		sink.WriteAudio(int64(at), x[at:min(at+320, len(x))])
		time.Sleep(5 * time.Millisecond)
	}
	tk.End("bye", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	for _, evs := range transcripttest.CallStreams(t, rd.Addr) {
		return evs
	}
	t.Fatal("no call on Redis")
	return nil
}

// spokenDigit matches a digit as the recognizer or the formatter writes it.
var spokenDigit = regexp.MustCompile(`\b(ZERO|OH|ONE|TWO|THREE|FOUR|FIVE|SIX|SEVEN|EIGHT|NINE|TEN|TWENTY|THIRTY|FORTY|FIFTY|SIXTY|SEVENTY|EIGHTY|NINETY)\b|[0-9]`)

// clearDigits lists the digits of finals and keyword events in clear: in
// text, words and display.
func clearDigits(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] != "final" && e["type"] != "keyword" {
			continue
		}
		for _, k := range []string{"text", "display", "words", "display_words"} {
			v, _ := e[k].(string)
			if k == "words" || k == "display_words" { // the words, not their times
				v = regexp.MustCompile(`"(start_ms|end_ms|conf)":[0-9.e-]+`).ReplaceAllString(v, "")
			}
			if m := spokenDigit.FindAllString(strings.ToUpper(v), -1); len(m) > 0 {
				out = append(out, fmt.Sprintf("%s %s %q", e["type"], k, v))
			}
		}
	}
	return out
}

func finalTexts(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] == "final" {
			out = append(out, e["text"].(string))
		}
	}
	return out
}

// A card number read in groups of four with pauses between them — each
// group its own utterance, with the rules' and with VAD endpointing, and
// digit by digit under VAD — is published with no digit in clear, the
// card's marker in its place; finals come in order and call.end last.
func TestCardReadInGroupsIsRedacted(t *testing.T) {
	rules, vad := batcherWith(t, asr.EndpointRules), batcherWith(t, asr.EndpointVAD)
	for _, c := range []struct {
		name  string
		b     *asr.Batcher
		pause time.Duration
		spell bool // digit by digit, with the pause between digits
	}{
		{"rules 0.3s", rules, 300 * time.Millisecond, false},
		{"rules 1.5s", rules, 1500 * time.Millisecond, false},
		{"rules 3s", rules, 3 * time.Second, false},
		{"vad 0.3s", vad, 300 * time.Millisecond, false},
		{"vad 1.5s", vad, 1500 * time.Millisecond, false},
		{"vad 3s", vad, 3 * time.Second, false},
		{"vad digit by digit", vad, 400 * time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			groups := []string{"4539", "1488", "0343", "6467"}
			if c.spell {
				groups = strings.Split(strings.Join(groups, ""), "")
			}
			x := slices.Concat(speech(t, "extension"), card(t, c.pause, groups...), speech(t, time.Second, "auth-thankyou"))
			var holds []time.Duration
			evs := sayOnCall(t, c.b, CallsOptions{Keywords: []asr.Phrase{{Text: "five three"}, {Text: "thank you"}},
				OnHold: func(d time.Duration) { holds = append(holds, d) }}, "pci", x)
			finals := finalTexts(evs)
			t.Logf("finals %q; held %v", finals, holds)
			if leaks := clearDigits(evs); len(leaks) > 0 {
				t.Errorf("digits in clear: %v", leaks)
			}
			if !strings.Contains(strings.Join(finals, " "), redact.CardMarker) {
				t.Errorf("no %s in %q", redact.CardMarker, finals)
			}
			if evs[len(evs)-1]["type"] != "call.end" {
				t.Errorf("last event %v", evs[len(evs)-1])
			}
			utt := -1
			for _, e := range evs {
				if e["type"] == "final" {
					var u int
					fmt.Sscan(e["utt"].(string), &u)
					if u <= utt {
						t.Errorf("final utt %d after %d", u, utt)
					}
					utt = u
				}
			}
		})
	}
}

// What only looks like the start of a number — an extension, a price, a
// date — is published word for word with redaction on, as without it.
func TestNumbersThatAreNotCardsStay(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x := speech(t, "extension", "digits/2", "digits/0", "digits/5", 1500*time.Millisecond,
		"digits/20", "digits/9", "digits/dollars", 1500*time.Millisecond,
		"digits/mon-11", "digits/h-5", 1500*time.Millisecond, "auth-thankyou")
	plain := finalTexts(sayOnCall(t, b, CallsOptions{}, "", x))
	var holds []time.Duration
	redacted := finalTexts(sayOnCall(t, b, CallsOptions{OnHold: func(d time.Duration) { holds = append(holds, d) }}, "pci,ssn", x))
	t.Logf("finals %q; held %v", redacted, holds)
	if !slices.Equal(plain, redacted) {
		t.Errorf("with redaction %q, without %q", redacted, plain)
	}
	if len(spokenDigit.FindAllString(strings.Join(plain, " "), -1)) < 3 {
		t.Errorf("the numbers were not recognized: %q", plain)
	}
}

// A final held for its digits is published once nothing follows them: after
// holdSilence of decoded silence, or holdSilence without audio (a call put
// on hold), while the call goes on.
func TestHeldFinalReleasedWhenNothingFollows(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	for _, c := range []struct {
		name  string
		after time.Duration // silence given after the digits
		idle  time.Duration // then the clock moves this far with no audio
	}{
		{"silence", holdSilence + holdMargin + 2*time.Second, 0},
		{"no audio", 1500 * time.Millisecond, holdSilence + time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd, pub, calls, _ := testGateway(t, b, CallsOptions{MaxStreams: -1, MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
			clock := &fakeClock{t: time.Now()}
			calls.now = clock.Now
			tk, err := calls.Admit(ingest.Offer{ID: "c1", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"},
				Redact: "pci"})
			if err != nil {
				t.Fatal(err)
			}
			tk.Start(nil)
			x := speech(t, "extension", "digits/2", "digits/0", "digits/5", c.after)
			for at := 0; at < len(x); at += 320 {
				tk.Sink(0).WriteAudio(int64(at), x[at:min(at+320, len(x))])
				time.Sleep(time.Millisecond)
			}
			clock.Add(c.idle)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var final map[string]any
			for final == nil && ctx.Err() == nil {
				pub.Flush(ctx)
				for _, evs := range transcripttest.CallStreams(t, rd.Addr) {
					for _, e := range evs {
						if e["type"] == "final" {
							final = e
						}
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			if final == nil || final["text"] != "EXTENSION TWO ZERO FIVE" {
				t.Fatalf("final %v while the call goes on", final)
			}
			tk.End("bye", nil)
			settle(t, ctx, calls, pub)
		})
	}
}
