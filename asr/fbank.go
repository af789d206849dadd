package asr

import (
	"fmt"
	"math"
)

// FbankOptions configure the log-mel filter bank. The zero value is not
// valid; DefaultFbankOptions gives what sherpa-onnx uses for zipformer models.
type FbankOptions struct {
	SampleRate    int     // Hz; default 16000
	NumBins       int     // mel bins; default 80
	FrameLengthMs float64 // default 25
	FrameShiftMs  float64 // default 10
	LowFreq       float64 // Hz; default 20
	HighFreq      float64 // Hz; <= 0 is relative to Nyquist; default -400
	Preemph       float64 // default 0.97
}

// DefaultFbankOptions returns the Kaldi fbank settings of sherpa-onnx:
// povey window, DC removal, no dither, snip_edges false, power spectrum,
// 512-point FFT.
func DefaultFbankOptions() FbankOptions {
	return FbankOptions{SampleRate: 16000, NumBins: 80, FrameLengthMs: 25, FrameShiftMs: 10,
		LowFreq: 20, HighFreq: -400, Preemph: 0.97}
}

// Fbank computes Kaldi-compatible log-mel features from a stream of samples,
// as kaldi-native-fbank's OnlineFbank does with snip_edges=false: frame i is
// centred on sample i*shift + shift/2 and the signal is reflected at both
// ends. Accept and Next allocate nothing once the input buffer has grown to
// its working size.
type Fbank struct {
	*fbankTables
	fft   *realFFT
	frame []float32 // padded FFT input
	power []float32

	wave     []float32 // samples from offset on
	offset   int64     // absolute index of wave[0]
	next     int64     // index of the next frame to compute
	finished bool
}

type melBin struct {
	first   int
	weights []float32
}

// fbankTables are the read-only parts of an Fbank, shared by all streams.
type fbankTables struct {
	numBins       int
	length, shift int
	preemph       float32
	window        []float32
	banks         []melBin
	fft           *fftTables
}

// NewFbank returns a feature extractor for opts.
func NewFbank(opts FbankOptions) (*Fbank, error) {
	t, err := newFbankTables(opts)
	if err != nil {
		return nil, err
	}
	return t.newFbank(), nil
}

func (t *fbankTables) newFbank() *Fbank {
	return &Fbank{fbankTables: t, fft: newRealFFT(t.fft),
		frame: make([]float32, t.fft.n), power: make([]float32, t.fft.n/2+1)}
}

// bytes is the memory one Fbank holds of its own.
func (f *Fbank) bytes() int {
	return 4*(cap(f.frame)+cap(f.power)+cap(f.wave)) + 8*(cap(f.fft.in)+cap(f.fft.out))
}

func newFbankTables(opts FbankOptions) (*fbankTables, error) {
	if opts.SampleRate <= 0 || opts.NumBins <= 0 || opts.FrameLengthMs <= 0 || opts.FrameShiftMs <= 0 {
		return nil, fmt.Errorf("asr: invalid fbank options %+v", opts)
	}
	length := int(float64(opts.SampleRate) * opts.FrameLengthMs / 1000)
	shift := int(float64(opts.SampleRate) * opts.FrameShiftMs / 1000)
	padded := 1
	for padded < length {
		padded <<= 1
	}
	f := &fbankTables{
		numBins: opts.NumBins, length: length, shift: shift,
		preemph: float32(opts.Preemph),
		window:  make([]float32, length),
		fft:     newFFTTables(padded),
	}
	a := 2 * math.Pi / float64(length-1)
	for i := range length {
		f.window[i] = float32(math.Pow(0.5-0.5*math.Cos(a*float64(i)), 0.85))
	}
	banks, err := melBanks(opts, padded)
	if err != nil {
		return nil, err
	}
	f.banks = banks
	return f, nil
}

func melScale(f float32) float32 {
	return 1127 * logf(1+f/700)
}

// melBanks builds the triangular filters the way Kaldi's MelBanks does, in
// float32 like the reference, so the weights match bit for bit.
func melBanks(opts FbankOptions, padded int) ([]melBin, error) {
	nyquist := float32(opts.SampleRate) / 2
	low := float32(opts.LowFreq)
	high := float32(opts.HighFreq)
	if high <= 0 {
		high += nyquist
	}
	if low < 0 || low >= nyquist || high <= low || high > nyquist {
		return nil, fmt.Errorf("asr: bad mel range low=%g high=%g for %d Hz", opts.LowFreq, opts.HighFreq, opts.SampleRate)
	}
	numFFT := padded / 2
	binWidth := float32(opts.SampleRate) / float32(padded)
	melLow, melHigh := melScale(low), melScale(high)
	delta := (melHigh - melLow) / float32(opts.NumBins+1)
	banks := make([]melBin, opts.NumBins)
	for b := range banks {
		left := melLow + float32(b)*delta
		center := melLow + float32(b+1)*delta
		right := melLow + float32(b+2)*delta
		first, last := -1, -1
		w := make([]float32, numFFT)
		for i := range numFFT {
			mel := melScale(binWidth * float32(i))
			if mel > left && mel < right {
				if mel <= center {
					w[i] = (mel - left) / (center - left)
				} else {
					w[i] = (right - mel) / (right - center)
				}
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if first < 0 {
			return nil, fmt.Errorf("asr: mel bin %d is empty; use fewer bins", b)
		}
		banks[b] = melBin{first: first, weights: append([]float32(nil), w[first:last+1]...)}
	}
	return banks, nil
}

// Dim is the number of values per frame.
func (f *Fbank) Dim() int { return f.numBins }

// Accept appends samples (in [-1, 1]) to the stream.
func (f *Fbank) Accept(samples []float32) {
	if f.finished || len(samples) == 0 {
		return
	}
	// Drop what no future frame needs before growing the buffer.
	if keep := f.firstSample(f.next) - f.offset; keep > 0 && keep <= int64(len(f.wave)) {
		n := copy(f.wave, f.wave[keep:])
		f.wave = f.wave[:n]
		f.offset += keep
	}
	f.wave = append(f.wave, samples...)
}

// Finish marks the end of input: the frames that need reflection past the
// last sample become available.
func (f *Fbank) Finish() { f.finished = true }

// Finished tells whether Finish was called.
func (f *Fbank) Finished() bool { return f.finished }

func (f *Fbank) firstSample(frame int64) int64 {
	return frame*int64(f.shift) + int64(f.shift/2) - int64(f.length/2)
}

// available returns how many frames the samples so far allow in total.
func (f *Fbank) available() int64 {
	total := f.offset + int64(len(f.wave))
	n := (total + int64(f.shift/2)) / int64(f.shift)
	if f.finished {
		return n
	}
	for n > 0 && f.firstSample(n-1)+int64(f.length) > total {
		n--
	}
	return n
}

// Next computes the next frame into dst (len Dim) and reports whether there
// was one.
func (f *Fbank) Next(dst []float32) bool {
	if f.next >= f.available() {
		return false
	}
	start := f.firstSample(f.next) - f.offset
	win := f.frame[:f.length]
	n := int64(len(f.wave))
	if start >= 0 && start+int64(f.length) <= n {
		copy(win, f.wave[start:start+int64(f.length)])
	} else {
		for s := range int64(f.length) {
			i := start + s
			for i < 0 || i >= n {
				if i < 0 {
					i = -i - 1
				} else {
					i = 2*n - 1 - i
				}
			}
			win[s] = f.wave[i]
		}
	}
	f.next++
	f.compute(dst)
	return true
}

func (f *Fbank) compute(dst []float32) {
	win := f.frame[:f.length]
	var sum float32
	for _, v := range win {
		sum += v
	}
	mean := sum / float32(len(win))
	for i := range win {
		win[i] -= mean
	}
	for i := len(win) - 1; i > 0; i-- {
		win[i] -= f.preemph * win[i-1]
	}
	win[0] -= f.preemph * win[0]
	for i := range win {
		win[i] *= f.window[i]
	}
	clear(f.frame[f.length:])
	f.fft.Power(f.frame, f.power)
	const eps = 1.1920929e-07 // float32 epsilon, the floor Kaldi uses
	for b, bank := range f.banks {
		var e float32
		p := f.power[bank.first : bank.first+len(bank.weights)]
		for i, w := range bank.weights {
			e += w * p[i]
		}
		if e < eps {
			e = eps
		}
		dst[b] = logf(e)
	}
}
