package asr

import "math"

// realFFT computes the power spectrum of a real signal of power-of-two
// length n with a complex FFT of size n/2. Twiddles and the bit-reversal
// table are computed once; Power allocates nothing.
type realFFT struct {
	n       int
	rev     []int
	cos     []float64 // twiddles of the n/2 complex FFT
	sin     []float64
	postCos []float64 // twiddles that split the packed result
	postSin []float64
	re, im  []float64
}

func newRealFFT(n int) *realFFT {
	if n < 4 || n&(n-1) != 0 {
		panic("asr: FFT size must be a power of two >= 4")
	}
	h := n / 2
	f := &realFFT{
		n:  n,
		re: make([]float64, h), im: make([]float64, h),
		rev: make([]int, h),
		cos: make([]float64, h/2), sin: make([]float64, h/2),
		postCos: make([]float64, h), postSin: make([]float64, h),
	}
	bits := 0
	for 1<<bits < h {
		bits++
	}
	for i := range h {
		r := 0
		for b := range bits {
			if i&(1<<b) != 0 {
				r |= 1 << (bits - 1 - b)
			}
		}
		f.rev[i] = r
	}
	for i := range h / 2 {
		a := -2 * math.Pi * float64(i) / float64(h)
		f.cos[i], f.sin[i] = math.Cos(a), math.Sin(a)
	}
	for k := range h {
		a := -2 * math.Pi * float64(k) / float64(n)
		f.postCos[k], f.postSin[k] = math.Cos(a), math.Sin(a)
	}
	return f
}

// Power writes |X[k]|^2 for k = 0..n/2 of the real input x (len n) into
// out (len n/2+1).
func (f *realFFT) Power(x []float32, out []float32) {
	h := f.n / 2
	re, im := f.re, f.im
	for i := range h {
		j := f.rev[i]
		re[j] = float64(x[2*i])
		im[j] = float64(x[2*i+1])
	}
	for size := 2; size <= h; size <<= 1 {
		half := size / 2
		step := h / size
		for start := 0; start < h; start += size {
			for k := range half {
				wr, wi := f.cos[k*step], f.sin[k*step]
				a, b := start+k, start+k+half
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
	// Split the packed spectrum Z[k] = E[k] + i·O[k] into X[k].
	out[0] = float32((re[0] + im[0]) * (re[0] + im[0]))
	out[h] = float32((re[0] - im[0]) * (re[0] - im[0]))
	for k := 1; k < h; k++ {
		zr, zi := re[k], im[k]
		cr, ci := re[h-k], -im[h-k]
		er, ei := 0.5*(zr+cr), 0.5*(zi+ci)
		or, oi := 0.5*(zi-ci), -0.5*(zr-cr)
		wr, wi := f.postCos[k], f.postSin[k]
		xr := er + wr*or - wi*oi
		xi := ei + wr*oi + wi*or
		out[k] = float32(xr*xr + xi*xi)
	}
}
