package media

import (
	"fmt"
	"math"
)

// Resampler converts a stream of samples between two rates with a
// Kaiser-windowed sinc: zero phase (each output sample is centred on its
// input time), passband flat to 0.40·min(rate) within 0.1 dB, at least 60 dB
// of rejection from 0.5·min(rate) on. Process allocates nothing once its
// buffer has grown to the working size.
type Resampler struct {
	in, out  int
	l, m     int       // out/in = l/m, reduced
	w        int       // taps on each side of the output instant
	table    []float32 // l phases × 2w taps
	buf      []float32 // input from bufStart on
	bufStart int64
	nextOut  int64
	inTotal  int64
}

// Resampler design: cutoff at 0.45·min(rate), Kaiser beta for ~80 dB,
// enough zero crossings for a transition band of 0.1·min(rate).
const (
	resampleCutoff = 0.45
	resampleBeta   = 8.0
	resampleZeros  = 24
)

// NewResampler returns a resampler from inRate to outRate (Hz).
func NewResampler(inRate, outRate int) (*Resampler, error) {
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
	fc := resampleCutoff * float64(min(inRate, outRate)) / float64(inRate)
	halfWidth := resampleZeros / (2 * fc)
	r.w = int(math.Ceil(halfWidth))
	r.table = make([]float32, r.l*2*r.w)
	i0b := besselI0(resampleBeta)
	for p := range r.l {
		frac := float64(p) / float64(r.l)
		for j := range 2 * r.w {
			tau := frac + float64(r.w-1-j) // output time minus input index
			if math.Abs(tau) >= halfWidth {
				continue
			}
			x := tau / halfWidth
			win := besselI0(resampleBeta*math.Sqrt(1-x*x)) / i0b
			r.table[p*2*r.w+j] = float32(2 * fc * sinc(2*fc*tau) * win)
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
	for {
		u := r.nextOut * M
		base, p := u/L, u%L
		if base+W >= avail {
			break
		}
		x := r.buf[base-W+1-r.bufStart:][:taps]
		h := r.table[int(p)*taps:][:taps]
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

// Resample converts a whole signal.
func Resample(samples []float32, inRate, outRate int) ([]float32, error) {
	r, err := NewResampler(inRate, outRate)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, int(int64(len(samples))*int64(outRate)/int64(inRate))+1)
	out = r.Process(out, samples)
	return r.Flush(out), nil
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
