package asr

import "math"

// realFFT computes power spectra of real frames. It follows kissfft's
// real-input FFT (radix-4/2 decimation in time, float32 arithmetic, the same
// operation order), which is what kaldi-native-fbank and so sherpa-onnx use:
// features come out bit-identical, and a model sees exactly the input the
// reference recognizer gives it.
type realFFT struct {
	*fftTables
	in  []cpx
	out []cpx
}

// fftTables are the read-only twiddles of one FFT size, shared by streams.
type fftTables struct {
	n       int // real length
	nc      int // complex length n/2
	tw      []cpx
	superTw []cpx
	factors []int
}

type cpx struct{ r, i float32 }

func newRealFFT(t *fftTables) *realFFT {
	return &realFFT{fftTables: t, in: make([]cpx, t.nc), out: make([]cpx, t.nc)}
}

func newFFTTables(n int) *fftTables {
	if n < 4 || n&(n-1) != 0 {
		panic("asr: FFT size must be a power of two >= 4")
	}
	nc := n / 2
	f := &fftTables{n: n, nc: nc, tw: make([]cpx, nc), superTw: make([]cpx, nc/2)}
	const pi = 3.141592653589793238462643383279502884197169399375105820974944
	for i := range nc {
		phase := -2 * pi * float64(i) / float64(nc)
		f.tw[i] = cpx{float32(math.Cos(phase)), float32(math.Sin(phase))}
	}
	for i := range nc / 2 {
		phase := -pi * (float64(i+1)/float64(nc) + .5)
		f.superTw[i] = cpx{float32(math.Cos(phase)), float32(math.Sin(phase))}
	}
	for m := nc; m > 1; {
		p := 4
		if m%4 != 0 {
			p = 2
		}
		m /= p
		f.factors = append(f.factors, p, m)
	}
	return f
}

func cmul(a, b cpx) cpx {
	return cpx{a.r*b.r - a.i*b.i, a.r*b.i + a.i*b.r}
}

// work is kissfft's kf_work: out[0:p·m] is the DFT of in[0], in[stride], ...
func (f *realFFT) work(out []cpx, in []cpx, stride int, factors []int) {
	p, m := factors[0], factors[1]
	if m == 1 {
		for k := range p {
			out[k] = in[k*stride]
		}
	} else {
		for k := range p {
			f.work(out[k*m:], in[k*stride:], stride*p, factors[2:])
		}
	}
	if p == 4 {
		f.bfly4(out, stride, m)
	} else {
		f.bfly2(out, stride, m)
	}
}

func (f *realFFT) bfly2(out []cpx, stride, m int) {
	for k := range m {
		t := cmul(out[m+k], f.tw[k*stride])
		out[m+k] = cpx{out[k].r - t.r, out[k].i - t.i}
		out[k] = cpx{out[k].r + t.r, out[k].i + t.i}
	}
}

func (f *realFFT) bfly4(out []cpx, stride, m int) {
	for k := range m {
		s0 := cmul(out[k+m], f.tw[k*stride])
		s1 := cmul(out[k+2*m], f.tw[2*k*stride])
		s2 := cmul(out[k+3*m], f.tw[3*k*stride])
		s5 := cpx{out[k].r - s1.r, out[k].i - s1.i}
		out[k] = cpx{out[k].r + s1.r, out[k].i + s1.i}
		s3 := cpx{s0.r + s2.r, s0.i + s2.i}
		s4 := cpx{s0.r - s2.r, s0.i - s2.i}
		out[k+2*m] = cpx{out[k].r - s3.r, out[k].i - s3.i}
		out[k] = cpx{out[k].r + s3.r, out[k].i + s3.i}
		out[k+m] = cpx{s5.r + s4.i, s5.i - s4.r}
		out[k+3*m] = cpx{s5.r - s4.i, s5.i + s4.r}
	}
}

// Power writes |X[k]|^2 for k = 0..n/2 of the real input x (len n) into
// out (len n/2+1), as kaldi-native-fbank's ComputePowerSpectrum does.
func (f *realFFT) Power(x []float32, out []float32) {
	nc := f.nc
	for i := range nc {
		f.in[i] = cpx{x[2*i], x[2*i+1]}
	}
	f.work(f.out, f.in, 1, f.factors)
	buf := f.out
	dc := buf[0]
	re0, reN := dc.r+dc.i, dc.r-dc.i
	out[0] = re0 * re0
	out[nc] = reN * reN
	for k := 1; k <= nc/2; k++ {
		fpk := buf[k]
		fpnk := cpx{buf[nc-k].r, -buf[nc-k].i}
		f1k := cpx{fpk.r + fpnk.r, fpk.i + fpnk.i}
		f2k := cpx{fpk.r - fpnk.r, fpk.i - fpnk.i}
		tw := cmul(f2k, f.superTw[k-1])
		// At k = nc/2 both writes land on one bin; the second one stays.
		ar, ai := (f1k.r+tw.r)*0.5, (f1k.i+tw.i)*0.5
		out[k] = ar*ar + ai*ai
		br, bi := (f1k.r-tw.r)*0.5, (tw.i-f1k.i)*0.5
		out[nc-k] = br*br + bi*bi
	}
}
