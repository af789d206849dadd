package asr

import (
	"math"
	"testing"
)

// Features are computed without allocating per frame (BenchmarkFbankFrame
// reports 0 allocs/op; this asserts it).
func TestFbankAllocatesNothing(t *testing.T) {
	fb, _ := NewFbank(DefaultFbankOptions())
	in := make([]float32, 160)
	for i := range in {
		in[i] = float32(math.Sin(float64(i) * 0.1))
	}
	frame := make([]float32, 80)
	fb.Accept(make([]float32, 400))
	step := func() {
		fb.Accept(in)
		for fb.Next(frame) {
		}
	}
	for range 100 {
		step()
	}
	if n := testing.AllocsPerRun(500, step); n != 0 {
		t.Errorf("%.2f allocations per 10 ms of audio", n)
	}
}
