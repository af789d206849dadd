package media

import (
	"fmt"
	"math"
)

// Resampler converts a stream of samples between two rates with a windowed
// sinc, zero phase (each output sample is centred on its input time). With
// FilterSharp, the default, the passband is flat to 0.40·min(rate) within
// 0.1 dB and everything from 0.5·min(rate) on is at least 60 dB down.
// Process allocates nothing once its buffer has grown to the working size.
type Resampler struct {
	in, out  int
	l, m     int       // out/in = l/m, reduced
	w        int       // taps on each side of the output instant
	table    []float32 // l rows × 2w taps
	base     []int64   // per row: input sample before the output instant
	buf      []float32 // input from bufStart on
	bufStart int64
	nextOut  int64
	inTotal  int64
}

// Filter is a resampler's low-pass design.
type Filter struct {
	// Cutoff as a fraction of min(in, out) rate.
	Cutoff float64
	// Zeros is the number of sinc zero crossings on each side.
	Zeros int
	// KaiserBeta shapes a Kaiser window; 0 selects a Hann window.
	KaiserBeta float64
}

var (
	// FilterSharp: cutoff 0.45·min(rate), Kaiser window for ~80 dB, a
	// transition band of about 0.1·min(rate).
	FilterSharp = Filter{Cutoff: 0.45, Zeros: 24, KaiserBeta: 8}
	// FilterKaldi is Kaldi's LinearResample as sherpa-onnx configures it
	// (cutoff 0.99·Nyquist of the lower rate, Hann window, 6 zeros): a
	// short filter that lets images of the baseband through above the
	// lower rate's Nyquist frequency (about 20-40 dB down).
	FilterKaldi = Filter{Cutoff: 0.99 * 0.5, Zeros: 6}
)

// NewResampler returns a FilterSharp resampler from inRate to outRate (Hz).
func NewResampler(inRate, outRate int) (*Resampler, error) {
	return NewResamplerFilter(inRate, outRate, FilterSharp)
}

// NewResamplerFilter returns a resampler with the given filter.
func NewResamplerFilter(inRate, outRate int, f Filter) (*Resampler, error) {
	if inRate <= 0 || outRate <= 0 || inRate > 384000 || outRate > 384000 {
		return nil, fmt.Errorf("media: resample %d Hz -> %d Hz: bad rate", inRate, outRate)
	}
	g := gcd(inRate, outRate)
	r := &Resampler{in: inRate, out: outRate, l: outRate / g, m: inRate / g}
	if r.l > 1000 {
		return nil, fmt.Errorf("media: resample %d Hz -> %d Hz: ratio %d/%d too fine", inRate, outRate, r.l, r.m)
	}
	// Cutoff in cycles per input sample; the filter's half-width in input
	// samples spans resampleZeros zero crossings.
	if f.Cutoff <= 0 || f.Cutoff > 0.5 || f.Zeros <= 0 || f.Zeros > 256 || f.KaiserBeta < 0 {
		return nil, fmt.Errorf("media: bad resampler filter %+v", f)
	}
	fc := f.Cutoff * float64(min(inRate, outRate)) / float64(inRate)
	halfWidth := float64(f.Zeros) / (2 * fc)
	r.w = int(math.Ceil(halfWidth))
	// Row i of the table serves output samples k with k mod l = i: their
	// centre lies frac(i·m/l) after input sample unit·m + floor(i·m/l).
	taps := 2 * r.w
	r.table = make([]float32, r.l*taps)
	r.base = make([]int64, r.l)
	i0b := besselI0(f.KaiserBeta)
	fcHz := float32(f.Cutoff * float64(min(inRate, outRate)))
	for i := range r.l {
		r.base[i] = int64(i) * int64(r.m) / int64(r.l)
		outT := float64(i) / float64(outRate)
		for j := range taps {
			idx := r.base[i] - int64(r.w) + 1 + int64(j)
			deltaT := float64(idx)/float64(inRate) - outT // seconds
			if f.KaiserBeta == 0 {
				r.table[i*taps+j] = kaldiWeight(float32(deltaT), fcHz, f.Zeros, inRate)
				continue
			}
			tau := deltaT * float64(inRate) // input samples
			if math.Abs(tau) >= halfWidth {
				continue
			}
			x := tau / halfWidth
			win := besselI0(f.KaiserBeta*math.Sqrt(1-x*x)) / i0b
			r.table[i*taps+j] = float32(2 * fc * sinc(2*fc*tau) * win)
		}
	}
	r.Reset()
	return r, nil
}

// Reset forgets all input, as for a new stream.
func (r *Resampler) Reset() {
	r.buf = r.buf[:0]
	for range r.w {
		r.buf = append(r.buf, 0) // silence before the first sample
	}
	r.bufStart = -int64(r.w)
	r.nextOut, r.inTotal = 0, 0
}

// InRate and OutRate are the rates in Hz.
func (r *Resampler) InRate() int  { return r.in }
func (r *Resampler) OutRate() int { return r.out }

// Process appends the output available after src to dst and returns it.
// Output lags input by about the filter's half-width until Flush.
func (r *Resampler) Process(dst, src []float32) []float32 {
	if r.l == r.m {
		r.inTotal += int64(len(src))
		return append(dst, src...)
	}
	r.buf = append(r.buf, src...)
	r.inTotal += int64(len(src))
	return r.run(dst, r.bufStart+int64(len(r.buf)))
}

// Flush appends the rest of the output, as if silence followed the input,
// and resets the resampler.
func (r *Resampler) Flush(dst []float32) []float32 {
	if r.l == r.m {
		r.Reset()
		return dst
	}
	want := (r.inTotal*int64(r.l) + int64(r.m) - 1) / int64(r.m)
	for range r.w {
		r.buf = append(r.buf, 0)
	}
	avail := r.bufStart + int64(len(r.buf))
	dst = r.run(dst, avail)
	for r.nextOut < want { // only when the tail is shorter than the padding
		r.buf = append(r.buf, 0)
		dst = r.run(dst, avail+1)
		avail++
	}
	r.Reset()
	return dst
}

// run computes output samples while their input is in the buffer (input
// indices below avail).
func (r *Resampler) run(dst []float32, avail int64) []float32 {
	L, M, W := int64(r.l), int64(r.m), int64(r.w)
	taps := 2 * r.w
	// Upsampling by two (8 to 16 kHz, every G.711 call): the two outputs
	// of an input sample share their inputs; four outputs at a time.
	if L == 2 && M == 1 && r.nextOut%2 == 0 {
		h0, h1 := r.table[:taps], r.table[taps:][:taps]
		for {
			u := r.nextOut / 2
			if u+1+W >= avail {
				break
			}
			x := r.buf[u-W+1-r.bufStart:][:taps+1]
			var a0, a1, a2, a3 float32
			for j := range taps {
				xj, xk := x[j], x[j+1]
				a0 += h0[j] * xj
				a1 += h1[j] * xj
				a2 += h0[j] * xk
				a3 += h1[j] * xk
			}
			dst = append(dst, a0, a1, a2, a3)
			r.nextOut += 4
		}
	}
	// Four outputs at a time: four independent sums keep the FPU busy,
	// and each is still added up tap by tap in order (bit-exact with one
	// at a time, and with Kaldi's).
	for {
		n := r.nextOut
		i0, i1, i2, i3 := n%L, (n+1)%L, (n+2)%L, (n+3)%L
		b0 := (n/L)*M + r.base[i0]
		b1 := ((n+1)/L)*M + r.base[i1]
		b2 := ((n+2)/L)*M + r.base[i2]
		b3 := ((n+3)/L)*M + r.base[i3]
		if b3+W >= avail {
			break
		}
		off := 1 - W - r.bufStart
		h0 := r.table[int(i0)*taps:][:taps]
		h1 := r.table[int(i1)*taps:][:taps]
		h2 := r.table[int(i2)*taps:][:taps]
		h3 := r.table[int(i3)*taps:][:taps]
		x0 := r.buf[b0+off:][:taps]
		x1 := r.buf[b1+off:][:taps]
		x2 := r.buf[b2+off:][:taps]
		x3 := r.buf[b3+off:][:taps]
		var a0, a1, a2, a3 float32
		for j := range taps {
			a0 += h0[j] * x0[j]
			a1 += h1[j] * x1[j]
			a2 += h2[j] * x2[j]
			a3 += h3[j] * x3[j]
		}
		dst = append(dst, a0, a1, a2, a3)
		r.nextOut += 4
	}
	for {
		i := r.nextOut % L
		base := (r.nextOut/L)*M + r.base[i]
		if base+W >= avail {
			break
		}
		x := r.buf[base-W+1-r.bufStart:][:taps]
		h := r.table[int(i)*taps:][:taps]
		var acc float32
		for j := range taps {
			acc += h[j] * x[j]
		}
		dst = append(dst, acc)
		r.nextOut++
	}
	// Drop input no later output needs.
	need := (r.nextOut*M)/L - W + 1
	if drop := need - r.bufStart; drop > 0 && drop > int64(len(r.buf))/2 {
		n := copy(r.buf, r.buf[drop:])
		r.buf = r.buf[:n]
		r.bufStart = need
	}
	return dst
}

// Resample converts a whole signal with FilterSharp.
func Resample(samples []float32, inRate, outRate int) ([]float32, error) {
	return ResampleFilter(samples, inRate, outRate, FilterSharp)
}

// ResampleFilter converts a whole signal with the given filter.
func ResampleFilter(samples []float32, inRate, outRate int, f Filter) ([]float32, error) {
	r, err := NewResamplerFilter(inRate, outRate, f)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, int(int64(len(samples))*int64(outRate)/int64(inRate))+1)
	out = r.Process(out, samples)
	return r.Flush(out), nil
}

// kaldiWeight is Kaldi's LinearResample filter (Hann-windowed sinc) with
// its float32 and float64 steps, so that FilterKaldi reproduces the
// reference resampler to the bit: a model can turn a one-ulp difference in
// its input into another word.
func kaldiWeight(t float32, fcHz float32, zeros, inRate int) float32 {
	var win, filt float32
	if math.Abs(float64(t)) < float64(zeros)/(2.0*float64(fcHz)) {
		win = float32(0.5 * (1 + math.Cos(2*math.Pi*float64(fcHz)/float64(zeros)*float64(t))))
	}
	if t != 0 {
		filt = float32(math.Sin(2*math.Pi*float64(fcHz)*float64(t)) / (math.Pi * float64(t)))
	} else {
		filt = float32(2 * float64(fcHz))
	}
	w := filt * win
	return w / float32(inRate)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}
