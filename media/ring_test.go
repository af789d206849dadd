package media

import "testing"

func seq(from, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(from + i)
	}
	return s
}

func TestRingKeepsOrderAndTimeline(t *testing.T) {
	r := NewRing(10)
	r.Write(seq(0, 4))
	r.Write(seq(4, 4))
	dst := make([]float32, 3)
	n, at := r.Read(dst)
	if n != 3 || at != 0 || dst[2] != 2 {
		t.Fatalf("n=%d at=%d %v", n, at, dst)
	}
	r.Write(seq(8, 5)) // wraps, exactly full
	dst = make([]float32, 20)
	n, at = r.Read(dst)
	if n != 10 || at != 3 {
		t.Fatalf("n=%d at=%d", n, at)
	}
	for i := range n {
		if dst[i] != float32(3+i) {
			t.Fatalf("sample %d = %g", i, dst[i])
		}
	}
	if r.Dropped() != 0 || r.Len() != 0 {
		t.Fatalf("dropped %d len %d", r.Dropped(), r.Len())
	}
}

func TestRingDropsOldestWhenFull(t *testing.T) {
	r := NewRing(10)
	r.Write(seq(0, 8))
	r.Write(seq(8, 8)) // 6 oldest overwritten
	if r.Dropped() != 6 || r.Len() != 10 {
		t.Fatalf("dropped %d len %d", r.Dropped(), r.Len())
	}
	dst := make([]float32, 10)
	n, at := r.Read(dst)
	if n != 10 || at != 6 || dst[0] != 6 || dst[9] != 15 {
		t.Fatalf("n=%d at=%d %v", n, at, dst)
	}
	r.Write(seq(16, 25)) // larger than the ring
	n, at = r.Read(dst)
	if n != 10 || at != 31 || dst[0] != 31 || r.Dropped() != 6+15 {
		t.Fatalf("n=%d at=%d first=%g dropped=%d", n, at, dst[0], r.Dropped())
	}
}

func TestRingSilenceIsOnTheTimeline(t *testing.T) {
	r := NewRing(1000)
	r.Write(seq(1, 5))
	r.WriteSilence(300)
	r.Write([]float32{7})
	dst := make([]float32, 1000)
	n, _ := r.Read(dst)
	if n != 306 || dst[4] != 5 || dst[5] != 0 || dst[304] != 0 || dst[305] != 7 {
		t.Fatalf("n=%d", n)
	}
}

func BenchmarkRingWrite20ms(b *testing.B) {
	r := NewRing(160000)
	in := make([]float32, 320)
	b.ReportAllocs()
	for b.Loop() {
		r.Write(in)
	}
}
