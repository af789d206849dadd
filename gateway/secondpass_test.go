package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/redact"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/callscribe/callscribe/word"
)

// moonshineTiny is the tiny second-pass model scripts/setup fetches.
func moonshineTiny(t testing.TB) *moonshine.Recognizer {
	t.Helper()
	if err := asr.InitRuntime("", "cpu"); err != nil {
		t.Fatal(err)
	}
	dir, err := moonshine.FindModel("moonshine-tiny")
	if err != nil {
		t.Fatal(err)
	}
	r, err := moonshine.New(moonshine.Files{Dir: dir}, moonshine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// withPass is a second pass over rec, closed at the end of the test.
func withPass(t testing.TB, rec Recognizer, o SecondPassOptions) *SecondPass {
	p := NewSecondPass([]Recognizer{rec}, 0, o)
	t.Cleanup(p.Close)
	return p
}

// parity reads sentences of the parity corpus (espeak-ng voices) as one
// stream of 16 kHz audio, gap apart, with their texts.
func parity(t *testing.T, gap time.Duration, names ...string) ([]float32, string) {
	t.Helper()
	refs := map[string]string{
		"u01-8k.wav": "I would like to check the status of my order please",
		"u03-8k.wav": "can you hear me clearly now",
		"u05-8k.wav": "please hold while I transfer you to the billing department",
		"u07-8k.wav": "your payment has been received and your balance is zero",
	}
	var x []float32
	var ref []string
	for _, n := range names {
		a, err := media.ReadWAVFile(filepath.Join("..", "asr", "testdata", "parity", n))
		if err != nil {
			t.Fatal(err)
		}
		y, err := media.ResampleFilter(a.Samples, a.SampleRate, 16000, media.FilterKaldi)
		if err != nil {
			t.Fatal(err)
		}
		x = append(append(x, y...), make([]float32, gap.Milliseconds()*16)...)
		ref = append(ref, refs[n])
	}
	return x, strings.Join(ref, " ")
}

// finals are a call's final events.
func finals(evs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if e["type"] == "final" {
			out = append(out, e)
		}
	}
	return out
}

// checkOrder fails unless the call's events keep their promises: seq from
// 1 without a gap, finals in utterance order, no partial of an utterance
// after its final, call.end last.
func checkOrder(t *testing.T, evs []map[string]any) {
	t.Helper()
	finalOf := map[string]int{} // leg → last final's utt
	prev := 0
	for i, e := range evs {
		// Rising, from 1; a partial coalesced while Redis lagged leaves
		// its seq unused (docs/wire-format.md).
		seq, _ := strconv.Atoi(e["seq"].(string))
		if seq <= prev || (i == 0 && seq != 1) {
			t.Errorf("event %d has seq %d after %d", i, seq, prev)
		}
		prev = seq
		if e["type"] == "call.end" && i != len(evs)-1 {
			t.Errorf("call.end is event %d of %d", i+1, len(evs))
		}
		leg, _ := e["leg"].(string)
		utt, err := strconv.Atoi(fmt.Sprint(e["utt"]))
		if err != nil {
			continue
		}
		last, seen := finalOf[leg]
		switch e["type"] {
		case "partial":
			if seen && utt <= last {
				t.Errorf("partial of utt %d after the final of utt %d", utt, last)
			}
		case "final":
			if seen && utt <= last {
				t.Errorf("final of utt %d after the final of utt %d", utt, last)
			}
			finalOf[leg] = utt
		}
	}
}

func eventWords(t *testing.T, e map[string]any, key string) []word.Word {
	t.Helper()
	var w []word.Word
	if err := json.Unmarshal([]byte(e[key].(string)), &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func finalsText(evs []map[string]any, key string) string {
	var parts []string
	for _, e := range finals(evs) {
		parts = append(parts, e[key].(string))
	}
	return strings.Join(parts, " ")
}

// wer scores a hypothesis against a reference, case and punctuation aside.
func wer(ref, hyp string) float64 {
	e, n := asr.WordErrors(ref, strings.Join(strings.FieldsFunc(hyp, func(r rune) bool { return r == ' ' || r == ',' || r == '.' || r == '?' || r == '!' }), " "))
	return float64(e) / float64(n)
}

// With a second pass, a call's finals carry its words: text in the spoken
// form (upper case, no punctuation), display as the second pass wrote it,
// words timed within the utterance on the first pass's times; fewer errors
// than the first pass alone; the events in order.
func TestSecondPassWritesTheFinals(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x, ref := parity(t, 1500*time.Millisecond, "u01-8k.wav", "u03-8k.wav", "u05-8k.wav", "u07-8k.wav")
	first := sayOnCall(t, b, CallsOptions{}, "", x)
	// A minute: a loaded machine under the race detector must not turn
	// these finals into timeouts.
	pass := withPass(t, moonshineTiny(t), SecondPassOptions{Name: "moonshine-tiny", Timeout: time.Minute})
	second := sayOnCall(t, b, CallsOptions{SecondPass: pass}, "", x)
	checkOrder(t, second)
	w1, w2 := wer(ref, finalsText(first, "text")), wer(ref, finalsText(second, "text"))
	t.Logf("first pass %.1f%% %q", 100*w1, finalsText(first, "text"))
	t.Logf("second pass %.1f%% %q", 100*w2, finalsText(second, "display"))
	if w2 >= w1 {
		t.Errorf("second pass WER %.1f%%, first pass alone %.1f%%", 100*w2, 100*w1)
	}
	// Moonshine says nothing for one of the four (the voice that reads
	// u05): the guard keeps the first pass's words.
	if st := pass.Stats(); st.Done+st.Fallbacks[FallbackGuard] != int64(len(finals(second))) || st.Done < 3 {
		t.Errorf("second pass gave %d of %d finals their words: %+v", st.Done, len(finals(second)), st)
	}
	for _, f := range finals(second) {
		if f["second_pass"] == "fallback:guard" {
			continue
		}
		words, display := eventWords(t, f, "words"), eventWords(t, f, "display_words")
		start, _ := strconv.ParseInt(f["start_ms"].(string), 10, 64)
		end, _ := strconv.ParseInt(f["end_ms"].(string), 10, 64)
		if len(words) != len(display) || len(words) == 0 {
			t.Fatalf("%d words, %d display words: %v", len(words), len(display), f)
		}
		var up, disp []string
		last := start
		for i, w := range words {
			up, disp = append(up, w.Text), append(disp, display[i].Text)
			if w.Text != spoken(display[i].Text) || w.StartMs != display[i].StartMs || w.EndMs != display[i].EndMs {
				t.Errorf("word %+v, display word %+v", w, display[i])
			}
			if w.StartMs < last || w.EndMs < w.StartMs || w.EndMs > end || w.Conf <= 0 {
				t.Errorf("word %+v out of order or outside %d-%d", w, start, end)
			}
			last = w.StartMs
		}
		if f["text"] != strings.Join(up, " ") || f["display"] != strings.Join(disp, " ") {
			t.Errorf("text %q display %q; words %q %q", f["text"], f["display"], up, disp)
		}
		if f["second_pass"] != "moonshine-tiny" {
			t.Errorf("second_pass %q", f["second_pass"])
		}
		if f["display"] == f["text"] {
			t.Errorf("display %q is not the second pass's written form", f["display"])
		}
	}
}

// A recognizer that fails, or answers late, leaves the first pass's finals
// published as they would be without a second pass, counted by reason.
func TestSecondPassFallsBack(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x, _ := parity(t, 1500*time.Millisecond, "u01-8k.wav", "u03-8k.wav", "u05-8k.wav")
	want := finalsText(sayOnCall(t, b, CallsOptions{}, "", x), "text")
	for _, c := range []struct {
		reason  string
		rec     Recognizer
		timeout time.Duration
	}{
		{FallbackError, failing{}, 500 * time.Millisecond},
		{FallbackTimeout, slow{moonshineTiny(t), 2 * time.Second}, 500 * time.Millisecond},
		// The real model under the race detector on a loaded machine
		// may take longer than half a second: the guard, not the clock,
		// must decide.
		{FallbackGuard, looping{moonshineTiny(t)}, time.Minute},
	} {
		t.Run(c.reason, func(t *testing.T) {
			pass := withPass(t, c.rec, SecondPassOptions{Timeout: c.timeout})
			evs := sayOnCall(t, b, CallsOptions{SecondPass: pass}, "", x)
			checkOrder(t, evs)
			if got := finalsText(evs, "text"); got != want {
				t.Errorf("finals %q, want the first pass's %q", got, want)
			}
			for _, f := range finals(evs) {
				if p := f["second_pass"]; p != "fallback:"+c.reason && !(c.reason == FallbackTimeout && p == "fallback:lag") {
					t.Errorf("second_pass %q", p)
				}
			}
			st := pass.Stats()
			got := st.Fallbacks[c.reason]
			if c.reason == FallbackTimeout { // those behind a late round wait too long to start
				got += st.Fallbacks[FallbackLag]
			}
			if n := int64(len(finals(evs))); got != n || st.Fallbacks[c.reason] == 0 || st.Done != 0 || n == 0 {
				t.Errorf("%d finals, stats %+v", n, st)
			}
		})
	}
}

type failing struct{}

func (failing) Recognize([][]float32) ([]moonshine.Result, error) {
	return nil, errors.New("engine gone")
}

// slow answers after a delay.
type slow struct {
	Recognizer
	d time.Duration
}

func (s slow) Recognize(x [][]float32) ([]moonshine.Result, error) {
	time.Sleep(s.d)
	return s.Recognizer.Recognize(x)
}

// looping says every text went round a loop.
type looping struct{ Recognizer }

func (l looping) Recognize(x [][]float32) ([]moonshine.Result, error) {
	res, err := l.Recognizer.Recognize(x)
	for i := range res {
		res[i].Stop = moonshine.StopRepeat
	}
	return res, err
}

// A card number the second pass writes as numerals ("4539 1488 ...") or
// digit words is redacted before anything is published.
func TestSecondPassNumeralsAreRedacted(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	pass := withPass(t, moonshineTiny(t), SecondPassOptions{Timeout: time.Minute})
	for _, pause := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond} {
		x := slices.Concat(speech(t, "extension"), card(t, pause, "4539", "1488", "0343", "6467"), speech(t, time.Second, "auth-thankyou"))
		evs := sayOnCall(t, b, CallsOptions{SecondPass: pass}, "pci", x)
		checkOrder(t, evs)
		t.Logf("pause %v: %q", pause, finalsText(evs, "display"))
		if leaks := clearDigits(evs); len(leaks) > 0 {
			t.Errorf("pause %v: digits in clear: %v", pause, leaks)
		}
		if !strings.Contains(finalsText(evs, "text"), redact.CardMarker) || !strings.Contains(finalsText(evs, "display"), redact.CardMarker) {
			t.Errorf("pause %v: no %s in %q / %q", pause, redact.CardMarker, finalsText(evs, "text"), finalsText(evs, "display"))
		}
	}
	if pass.Stats().Done == 0 {
		t.Error("the second pass wrote no final")
	}
}

// Finals of utterances of different lengths, recognized in rounds with
// others, get the words each gets alone.
func TestSecondPassRoundsEqualOneByOne(t *testing.T) {
	rec := moonshineTiny(t)
	var segs [][]float32
	for _, n := range []string{"u01-8k.wav", "u03-8k.wav", "u05-8k.wav", "u07-8k.wav"} {
		x, _ := parity(t, 0, n)
		segs = append(segs, x, x[:len(x)*2/3], x[len(x)/4:])
	}
	want := make([]string, len(segs))
	for i, s := range segs {
		res, err := rec.Recognize([][]float32{s})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res[0].Text
		if want[i] == "" {
			want[i] = FallbackGuard // no text for words the first pass heard
		}
	}
	pass := withPass(t, rec, SecondPassOptions{Timeout: time.Minute})
	got := make([]string, len(segs))
	var wg sync.WaitGroup
	for i, s := range segs {
		wg.Add(1)
		pass.ask(s, 10, func(w []moonshine.Word, reason string) {
			defer wg.Done()
			got[i] = joinWords(w) + reason
		})
	}
	wg.Wait()
	for i := range segs {
		if got[i] != want[i] {
			t.Errorf("segment %d: %q in a round, %q alone", i, got[i], want[i])
		}
	}
}

// Many calls at once, their second passes sometimes late: every call's
// events stay in order and every final arrives.
func TestSecondPassOrderUnderLoad(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x, _ := parity(t, 1300*time.Millisecond, "u03-8k.wav", "u01-8k.wav", "u03-8k.wav")
	pass := withPass(t, &alternating{late: 3 * time.Second}, SecondPassOptions{Timeout: time.Second})
	rd, pub, calls, _ := testGateway(t, b, CallsOptions{SecondPass: pass, MaxStreams: -1, MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
	const n = 8
	var wg sync.WaitGroup
	for c := range n {
		tk, err := calls.Admit(ingest.Offer{ID: fmt.Sprintf("c%d", c), Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"),
			Legs: []string{"caller", "callee"}})
		if err != nil {
			t.Fatal(err)
		}
		tk.Start(nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := 0; at < len(x); at += 320 {
				for leg := range 2 {
					tk.Sink(leg).WriteAudio(int64(at), x[at:min(at+320, len(x))])
				}
				time.Sleep(10 * time.Millisecond)
			}
			tk.End("bye", nil)
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	settle(t, ctx, calls, pub)
	streams := transcripttest.CallStreams(t, rd.Addr)
	if len(streams) != n {
		t.Fatalf("%d calls on Redis", len(streams))
	}
	for id, evs := range streams {
		checkOrder(t, evs)
		if f := len(finals(evs)); f < 4 {
			t.Errorf("%s: %d finals", id, f)
		}
	}
	st := pass.Stats()
	t.Logf("second pass: %+v", st)
	if st.Done == 0 || st.Fallbacks[FallbackTimeout]+st.Fallbacks[FallbackLag] == 0 {
		t.Errorf("want finals both from the second pass and fallen back: %+v", st)
	}
}

// alternating answers every other round at once and the others late,
// with the same words for every segment: what comes back, and when, not
// how well (the real model's rounds are tested above), so that both
// outcomes happen however loaded the machine is.
type alternating struct {
	late   time.Duration
	mu     sync.Mutex
	rounds int
}

func (a *alternating) Recognize(x [][]float32) ([]moonshine.Result, error) {
	a.mu.Lock()
	a.rounds++
	slow := a.rounds%2 == 0
	a.mu.Unlock()
	if slow {
		time.Sleep(a.late)
	}
	res := make([]moonshine.Result, len(x))
	for i := range res {
		res[i] = moonshine.Result{Text: "Hello there.", Words: []moonshine.Word{{Text: "Hello", Conf: 0.9}, {Text: "there.", Conf: 0.9}}}
	}
	return res, nil
}

// counting counts the segments it is asked to recognize.
type counting struct {
	Recognizer
	mu   sync.Mutex
	segs int
}

func (c *counting) Recognize(x [][]float32) ([]moonshine.Result, error) {
	c.mu.Lock()
	c.segs += len(x)
	c.mu.Unlock()
	return c.Recognizer.Recognize(x)
}

// A tone the streaming model hears a word in ("YOU") but VAD hears no
// speech in is not heard again: noise must not become a sentence. The
// first pass's final stands, marked skipped; silence makes no final.
func TestSecondPassSkipsWhatVADHeardNoSpeechIn(t *testing.T) {
	b := batcherWith(t, asr.EndpointVAD)
	tone := make([]float32, 8*16000)
	for i := range tone { // 440 Hz, its loudness swinging three times a second
		tone[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/16000) * (0.5 + 0.5*math.Sin(2*math.Pi*3*float64(i)/16000)))
	}
	rec := &counting{Recognizer: moonshineTiny(t)}
	pass := withPass(t, rec, SecondPassOptions{})
	evs := sayOnCall(t, b, CallsOptions{SecondPass: pass}, "", slices.Concat(tone, make([]float32, 4*16000)))
	checkOrder(t, evs)
	fs := finals(evs)
	if len(fs) == 0 {
		t.Fatal("no final: the tone no longer makes the first pass hear a word, find other noise")
	}
	for _, f := range fs {
		if f["second_pass"] != "skipped" {
			t.Errorf("final %q: second_pass %q", f["text"], f["second_pass"])
		}
	}
	if rec.segs != 0 {
		t.Errorf("the second pass heard %d segments", rec.segs)
	}
}

// A full queue refuses a final at once: it is the first pass's, in its
// place among the others, and nothing waits on it.
func TestSecondPassFullQueue(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x, _ := parity(t, 1500*time.Millisecond, "u01-8k.wav", "u03-8k.wav", "u07-8k.wav", "u03-8k.wav")
	// The first round holds the one recognizer 20 s: the next final waits
	// in the queue, the ones after find it full, however slowly they come.
	pass := withPass(t, &alternating{late: 20 * time.Second, rounds: 1}, SecondPassOptions{MaxQueue: 1, MaxRound: 1, Timeout: time.Minute})
	evs := sayOnCall(t, b, CallsOptions{SecondPass: pass}, "", x)
	checkOrder(t, evs)
	st := pass.Stats()
	n := int64(len(finals(evs)))
	t.Logf("%d finals: %+v", n, st)
	if st.Fallbacks[FallbackLag] == 0 || st.Done+st.Fallbacks[FallbackLag] != n {
		t.Errorf("%d finals, stats %+v", n, st)
	}
}

// A call that ends while its last final's second pass is still running
// publishes it from the first pass once final_timeout is up, and the stage
// counts it as a timeout (not later as done).
func TestSecondPassGivenUpAtCallEnd(t *testing.T) {
	b := batcherWith(t, asr.EndpointRules)
	x, _ := parity(t, 0, "u03-8k.wav")
	pass := withPass(t, slow{moonshineTiny(t), 4 * time.Second}, SecondPassOptions{Timeout: time.Minute})
	evs := sayOnCall(t, b, CallsOptions{SecondPass: pass, FinalTimeout: time.Second}, "", x)
	checkOrder(t, evs)
	fs := finals(evs)
	if len(fs) != 1 || fs[0]["second_pass"] != "fallback:timeout" {
		t.Fatalf("finals %v", fs)
	}
	time.Sleep(5 * time.Second) // the round comes back
	if st := pass.Stats(); st.Fallbacks[FallbackTimeout] != 1 || st.Done != 0 || st.Waiting != 0 {
		t.Errorf("stats %+v", st)
	}
}

// joinWords is the text of second-pass words.
func joinWords(words []moonshine.Word) string {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = w.Text
	}
	return strings.Join(parts, " ")
}
