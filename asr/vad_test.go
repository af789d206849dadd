package asr

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
	"github.com/callscribe/callscribe/media"
)

// vadProbs runs the VAD over each signal, all streams in one model call
// per window, and returns every window's probability per stream.
func vadProbs(t *testing.T, v *VAD, sigs [][]float32) [][]float32 {
	t.Helper()
	// As a stream feeds it: the first 64 samples are the first window's
	// context, the windows follow them.
	states := make([]*VADState, len(sigs))
	for i := range states {
		states[i] = &VADState{}
		states[i].Prime(sigs[i])
	}
	out := make([][]float32, len(sigs))
	for w := 0; ; w++ {
		var wins [][]float32
		var sts []*VADState
		var idx []int
		for i, x := range sigs {
			x = x[vadContext:]
			if (w+1)*VADWindow <= len(x) {
				wins = append(wins, x[w*VADWindow:(w+1)*VADWindow])
				sts = append(sts, states[i])
				idx = append(idx, i)
			}
		}
		if len(wins) == 0 {
			return out
		}
		probs := make([]float32, len(wins))
		if err := v.Run(wins, sts, probs); err != nil {
			t.Fatal(err)
		}
		for k, i := range idx {
			out[i] = append(out[i], probs[k])
		}
	}
}

// testVAD opens the VAD that setup fetched; it is closed when the test ends.
func testVAD(t *testing.T) *VAD {
	t.Helper()
	initRuntime(t)
	path, err := FindVADModel("")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVAD(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// Silero VAD on the test WAVs: speech is found where the words are, the
// silence after them ends it, silence alone is not speech, and a stream's
// probabilities are the same alone as batched with others.
func TestVADFindsSpeech(t *testing.T) {
	v := testVAD(t)
	names, sigs := loadTestWavs(t)
	quiet := make([]float32, 16000*2)
	for i := range sigs {
		sigs[i] = append(append(append([]float32{}, quiet[:8000]...), sigs[i]...), quiet...) // 0.5 s before, 2 s after
	}
	batched := vadProbs(t, v, append(append([][]float32{}, sigs...), quiet))
	for i, name := range names {
		alone := vadProbs(t, v, sigs[i:i+1])[0]
		for k := range alone {
			if math.Abs(float64(alone[k]-batched[i][k])) > 1e-4 {
				t.Fatalf("%s window %d: %v alone, %v batched", name, k, alone[k], batched[i][k])
			}
		}
		seg := NewSegmenter(500)
		var events []SegmentEvent
		for _, p := range batched[i] {
			if e, ok := seg.Add(p); ok {
				events = append(events, e)
			}
		}
		t.Logf("%s: %+v", name, events)
		speechMs := int64(len(sigs[i])/16) - 2500
		if len(events) < 2 || !events[0].Speech || events[0].AtMs < 300 || events[0].AtMs > 1000 ||
			events[len(events)-1].Speech || events[len(events)-1].AtMs < speechMs-1000 || events[len(events)-1].AtMs > speechMs+600 {
			t.Errorf("%s: segments %+v (speech ends near %d ms)", name, events, speechMs+500)
		}
	}
	for k, p := range batched[len(batched)-1] {
		if p > 0.2 {
			t.Errorf("silence window %d: %v", k, p)
		}
	}
}

// VAD parity: on the 16 kHz test WAVs and parity corpus, padded as the
// reference was, the speech segments start and end within 100 ms of those
// of sherpa-onnx-node 1.13.8's Silero VAD (same model, threshold 0.5, 0.5 s
// minimum silence; scripts/parity-reference records them).
func TestVADParity(t *testing.T) {
	v := testVAD(t)
	b, err := os.ReadFile("testdata/vad-reference.tsv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 10 {
		t.Fatalf("%d reference lines", len(lines))
	}
	var names []string
	var sigs [][]float32
	var want [][][2]int64
	for _, line := range lines {
		name, segs, _ := strings.Cut(line, "\t")
		path := filepath.Join("testdata", "parity", name)
		if !strings.HasPrefix(name, "u") {
			path = filepath.Join(asrtest.ModelDir(t), "test_wavs", name)
		}
		a, err := media.ReadWAVFile(path)
		if err != nil {
			t.Fatal(err)
		}
		x := append(append(make([]float32, 8000), a.Samples...), make([]float32, 32000)...)
		var ws [][2]int64
		for _, s := range strings.Fields(segs) {
			var p [2]int64
			fmt.Sscanf(s, "%d-%d", &p[0], &p[1])
			ws = append(ws, p)
		}
		names, sigs, want = append(names, name), append(sigs, x), append(want, ws)
	}
	probs := vadProbs(t, v, sigs)
	worst := int64(0)
	for i, name := range names {
		seg := NewSegmenter(500)
		var got [][2]int64
		for _, p := range probs[i] {
			if e, ok := seg.Add(p); ok {
				if e.Speech {
					got = append(got, [2]int64{e.AtMs, -1})
				} else {
					got[len(got)-1][1] = e.AtMs
				}
			}
		}
		if len(got) != len(want[i]) {
			t.Errorf("%s: segments %v, reference %v", name, got, want[i])
			continue
		}
		for k := range got {
			for j := range 2 {
				d := got[k][j] - want[i][k][j]
				worst = max(worst, d, -d)
				if d > 100 || d < -100 {
					t.Errorf("%s segment %d: %v, reference %v", name, k, got[k], want[i][k])
				}
			}
		}
	}
	t.Logf("%d files: largest difference %d ms", len(names), worst)
}

// Endpointing by VAD: two sentences with 1 s of silence between come out
// as two finals with the words the rules mode gives, each after VAD heard
// its speech end; speech starts and ends alternate, starting with a start.
func TestVADEndpointing(t *testing.T) {
	_, sigs := loadTestWavs(t)
	x := append(append(append([]float32{}, sigs[0]...), make([]float32, 16000)...), sigs[2]...)
	rules := newTestBatcher(t, ModelFiles{}, BatcherOptions{Workers: 1, Endpoint: DefaultEndpointConfig()})
	want, err := DecodeAll(rules, [][]float32{x}, 100)
	if err != nil {
		t.Fatal(err)
	}
	ep := DefaultEndpointConfig()
	ep.Mode = EndpointVAD
	vad := newTestBatcher(t, ModelFiles{}, BatcherOptions{Workers: 1, Endpoint: ep})
	got, err := DecodeAll(vad, [][]float32{x}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	finals := 0
	for _, r := range got[0] {
		switch r.Kind {
		case SpeechStart, SpeechEnd:
			kinds = append(kinds, r.Kind.String())
		case Final:
			finals++
		}
	}
	t.Logf("events %v; finals %d", kinds, finals)
	if FinalText(got[0]) != FinalText(want[0]) || finals < 2 {
		t.Errorf("vad finals %q (%d), rules %q", FinalText(got[0]), finals, FinalText(want[0]))
	}
	if len(kinds) < 4 || kinds[0] != "speech.start" {
		t.Fatalf("speech events %v", kinds)
	}
	for i := 1; i < len(kinds); i++ {
		if kinds[i] == kinds[i-1] {
			t.Errorf("speech events do not alternate: %v", kinds)
		}
	}
	if _, err := NewBatcher(vad.info, BatcherOptions{Endpoint: EndpointConfig{Mode: "energy"}}); err == nil {
		t.Error("endpoint mode energy accepted")
	}
}
