package asr

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callscribe/callscribe/media"
)

// parityRefs reads the parity corpus's reference texts: the sentences of
// scripts/make-parity-corpus (u00 is the first), and the test WAVs' from
// the model's trans.txt.
func parityRefs(t *testing.T) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for _, n := range []string{"0.wav", "1.wav", "8k.wav"} {
		refs[n] = testWavTexts[n] // the peer's, where LibriSpeech's own are not in the model's directory
	}
	f, err := os.Open("../scripts/make-parity-corpus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, i := false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "done <<'TEXT'"):
			in = true
		case line == "TEXT":
			in = false
		case in && line != "":
			refs[fmt.Sprintf("u%02d-%dk.wav", i, map[bool]int{true: 16, false: 8}[i%2 == 0])] = line
			i++
		}
	}
	if i < 20 {
		t.Fatalf("%d parity sentences", i)
	}
	return refs
}

// silentCalls makes streams as calls with long silences hear them: each
// stream speaks four utterances of the parity corpus, each followed by
// as much silence as the speech again and more (1, 2, 4 and 8 s beyond),
// after 3 s of silence first.
func silentCalls(t *testing.T, refs map[string]string) (sigs [][]float32, want []string) {
	t.Helper()
	var names []string
	for n := range refs {
		names = append(names, n)
	}
	names = sortedNames(names)
	var utts [][]float32
	for _, n := range names {
		path := filepath.Join("testdata", "parity", n)
		if !strings.HasPrefix(n, "u") {
			continue // the LibriSpeech WAVs are long talk, not calls
		}
		a, err := media.ReadWAVFile(path)
		if err != nil {
			t.Fatal(err)
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			if x, err = media.ResampleFilter(x, a.SampleRate, 16000, media.FilterKaldi); err != nil {
				t.Fatal(err)
			}
		}
		utts = append(utts, x)
		want = append(want, refs[n])
	}
	var texts []string
	for c := 0; c*4 < len(utts); c++ {
		x := make([]float32, 3*16000)
		var text []string
		for k := range 4 {
			i := (c*4 + k) % len(utts)
			x = append(x, utts[i]...)
			x = append(x, make([]float32, len(utts[i])+(1<<k)*16000)...)
			text = append(text, want[i])
		}
		sigs = append(sigs, x)
		texts = append(texts, strings.Join(text, " "))
	}
	return sigs, texts
}

func sortedNames(ns []string) []string {
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if ns[j] < ns[i] {
				ns[i], ns[j] = ns[j], ns[i]
			}
		}
	}
	return ns
}

// Skipping silence on calls that talk less than half of the time: most
// chunks are not encoded, the finals are as accurate as without skipping
// (word error rate against the corpus's sentences), the words that both
// runs find keep their times, and in endpoint mode vad the speech events
// and NoSpeech are what they were.
func TestSkipSilence(t *testing.T) {
	refs := parityRefs(t)
	sigs, want := silentCalls(t, refs)
	modes := []string{EndpointRules, EndpointVAD, "rules, noise floor"}
	if raceEnabled { // features and the VAD's copies cost several times more
		sigs, want, modes = sigs[:3], want[:3], modes[:2]
	}
	var audio int
	for _, x := range sigs {
		audio += len(x)
	}
	// A line's noise floor under the silences (-50 dBFS, white): the VAD
	// then hears every window of them.
	noisy := make([][]float32, len(sigs))
	rng := uint32(1)
	for i, x := range sigs {
		noisy[i] = make([]float32, len(x))
		for k, v := range x {
			rng = rng*1664525 + 1013904223
			noisy[i][k] = v + (float32(rng>>8)/(1<<24)-0.5)*0.011
		}
	}
	for _, mode := range modes {
		ep := DefaultEndpointConfig()
		ep.Mode = mode
		sigs := sigs
		if mode != EndpointVAD && mode != EndpointRules {
			ep.Mode, sigs = EndpointRules, noisy
		}
		var shift int // samples a chunk moves by
		run := func(skip bool) ([][]Result, Stats) {
			b := newTestBatcher(t, ModelFiles{}, BatcherOptions{Workers: 1, Endpoint: ep, SkipSilence: skip})
			shift = b.info.ChunkShift * 160
			res, err := DecodeAll(b, sigs, 100)
			if err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			b.Close()
			return res, st
		}
		off, stOff := run(false)
		on, stOn := run(true)
		wer := func(res [][]Result) (float64, int) {
			var e, n int
			for i := range res {
				de, dn := WordErrors(ScoringText(want[i]), ScoringText(FinalText(res[i])))
				e, n = e+de, n+dn
			}
			return 100 * float64(e) / float64(n), e
		}
		werOff, eOff := wer(off)
		werOn, eOn := wer(on)
		share := float64(stOn.Skipped) / float64(stOn.Skipped+stOn.Chunks)
		heard := float64(stOn.VADWindows) / float64(stOn.Skipped*int64(shift)/VADWindow)
		t.Logf("%s: %d streams, %.0f s of audio: chunks encoded %d without skipping, %d with (%d skipped, %.0f%%); WER %.1f%% (%d errors) and %.1f%% (%d); VAD %v in all, %d windows (%.2f per skipped chunk's worth)",
			mode, len(sigs), float64(audio)/16000, stOff.Chunks, stOn.Chunks, stOn.Skipped, 100*share, werOff, eOff, werOn, eOn, stOn.VADTime, stOn.VADWindows, heard)
		if share < 0.4 {
			t.Errorf("%s: %.0f%% of chunks skipped on calls silent more than half of the time", mode, 100*share)
		}
		// Under the line's steady noise the VAD hears the first windows
		// of each silence, then the noise floor keeps the rest from it.
		if mode != EndpointVAD && heard > 0.25 {
			t.Errorf("%s: the VAD heard %.0f%% of the silence's windows", mode, 100*heard)
		}
		if werOn > werOff+1.5 {
			t.Errorf("%s: WER %.1f%% with skipping, %.1f%% without", mode, werOn, werOff)
		}
		// The words both runs find in the same place keep their times:
		// within a few encoder frames each, and none on average.
		same, sum := 0, int64(0)
		for i := range sigs {
			if FinalText(on[i]) != FinalText(off[i]) {
				t.Logf("%s stream %d:\n off %q\n on  %q", mode, i, FinalText(off[i]), FinalText(on[i]))
			}
			a, b := finalWords(off[i]), finalWords(on[i])
			for k := range min(len(a), len(b)) {
				if a[k].Text != b[k].Text || a[k].StartMs-b[k].StartMs > 1000 || b[k].StartMs-a[k].StartMs > 1000 {
					break // the runs differ from here
				}
				d := a[k].StartMs - b[k].StartMs
				same, sum = same+1, sum+d
				if d > 200 || d < -200 {
					t.Errorf("%s stream %d word %q at %d ms, %d ms without skipping", mode, i, a[k].Text, b[k].StartMs, a[k].StartMs)
				}
			}
		}
		if same < 20 {
			t.Errorf("%s: %d words alike with and without skipping", mode, same)
		} else if mean := sum / int64(same); mean > 40 || mean < -40 {
			t.Errorf("%s: words %d ms apart on average with and without skipping", mode, mean)
		}
		if ep.Mode == EndpointVAD {
			if a, b := speechEvents(off), speechEvents(on); a != b {
				t.Errorf("speech events differ:\n off %s\n on  %s", a, b)
			}
		}
	}
}

func finalWords(rs []Result) []Word {
	var ws []Word
	for _, r := range rs {
		if r.Kind == Final {
			ws = append(ws, r.Words...)
		}
	}
	return ws
}

// speechEvents lists every stream's speech starts and ends and its finals'
// NoSpeech.
func speechEvents(res [][]Result) string {
	var sb strings.Builder
	for i, rs := range res {
		fmt.Fprintf(&sb, "%d:", i)
		for _, r := range rs {
			switch {
			case r.Kind == SpeechStart || r.Kind == SpeechEnd:
				fmt.Fprintf(&sb, " %s@%d", r.Kind, r.StartMs)
			case r.Kind == Final && r.NoSpeech:
				fmt.Fprintf(&sb, " nospeech")
			}
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// A hundred quiet streams, fed in real time, all start talking at once
// (0.wav and 8k.wav in turn, 6.6 and 4.5 s, after 4 s of silence):
// nothing is dropped, every stream's finals are its recording's text, and
// decoding falls behind by no more than it does, on this machine now, for
// the same streams without skipping (which encoded their silence too), and
// 1 s more at most: the pre-roll each stream decodes again as it starts.
func TestQuietStreamsAllTalkAtOnce(t *testing.T) {
	names, sigs := loadTestWavs(t)
	names, sigs = []string{names[0], names[2]}, [][]float32{sigs[0], sigs[2]}
	n := 100
	if raceEnabled {
		n = 24 // the race detector makes features several times dearer
	}
	signals := make([][]float32, n)
	longest := 0
	for i := range n {
		signals[i] = append(append(make([]float32, 4*16000), sigs[i%len(sigs)]...), make([]float32, 16000)...)
		longest = max(longest, len(signals[i]))
	}
	run := func(skip bool) time.Duration {
		b := newTestBatcher(t, ModelFiles{}, BatcherOptions{SkipSilence: skip, Endpoint: DefaultEndpointConfig()})
		defer b.Close()
		var mu sync.Mutex
		texts := make([][]Result, n)
		streams := make([]*Stream, n)
		for i := range n {
			s, err := b.NewStream(streamName(i), func(r Result) {
				mu.Lock()
				texts[i] = append(texts[i], r)
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			streams[i] = s
		}
		var worst time.Duration
		start := time.Now()
		for off := 0; off < longest; off += 320 { // 20 ms pieces, on the clock
			for i, s := range streams {
				if x := signals[i]; off < len(x) {
					s.Accept(x[off:min(off+320, len(x))])
				} else if off-320 < len(x) {
					s.Finish()
				}
			}
			if off%8000 == 0 {
				worst = max(worst, b.Lag())
			}
			time.Sleep(time.Until(start.Add(time.Duration(off+320) * time.Second / 16000)))
		}
		for _, s := range streams {
			s.Finish()
			<-s.Done()
		}
		st := b.Stats()
		t.Logf("skip %v, %d streams: most lag %v, chunk latency p95 %v, %d chunks encoded, %d skipped, %d frames dropped",
			skip, n, worst, b.ChunkLatency().Quantile(0.95), st.Chunks, st.Skipped, st.DroppedFrames)
		if st.DroppedFrames != 0 {
			t.Errorf("skip %v: %d frames dropped", skip, st.DroppedFrames)
		}
		for i := range n {
			mu.Lock()
			got := FinalText(texts[i])
			mu.Unlock()
			want := testWavTexts[names[i%len(names)]]
			if e, w := WordErrors(want, got); e > w/10 {
				t.Errorf("skip %v stream %d: %q, want %q", skip, i, got, want)
			}
		}
		return worst
	}
	off := run(false)
	if on := run(true); on > off+time.Second {
		t.Errorf("lag %v as every quiet stream started talking, %v without skipping", on, off)
	}
}
