package asr

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/callscribe/callscribe/asr/asrtest"
)

// topK picks what a full sort picks, ties to the lower index.
func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		x := make([]float32, 1+r.IntN(50))
		for i := range x {
			x[i] = float32(r.IntN(20)) // many ties
		}
		k := 1 + r.IntN(6)
		idx := make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] > x[idx[b]] })
		want := idx[:min(k, len(x))]
		if got := topK(x, k, nil); !slices.Equal(got, want) {
			t.Fatalf("topK(%v, %d) = %v, want %v", x, k, got, want)
		}
	}
}

// Hypotheses of one token sequence merge, their probabilities adding.
func TestAddHypMerges(t *testing.T) {
	a := hyp{ys: []int64{-1, 0, 5}, logProb: math.Log(0.25)}
	b := hyp{ys: []int64{-1, 0, 5}, logProb: math.Log(0.5)}
	c := hyp{ys: []int64{-1, 0, 6}, logProb: math.Log(0.125)}
	hs := addHyp(addHyp(addHyp(nil, a), c), b)
	if len(hs) != 2 || math.Abs(hs[0].logProb-math.Log(0.75)) > 1e-12 {
		t.Fatalf("%+v", hs)
	}
	if best(hs) != &hs[0] {
		t.Error("best is not the merged hypothesis")
	}
	if got := logAdd(math.Inf(-1), -2); got != -2 {
		t.Errorf("logAdd(-inf, -2) = %v", got)
	}
}

func TestUnknownDecodingRefused(t *testing.T) {
	initRuntime(t)
	info, err := LoadModelInfo(ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewBatcher(info, BatcherOptions{Decoding: "beam"}); err == nil {
		t.Error("decoding \"beam\" accepted")
	}
}
