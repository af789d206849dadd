package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrBadWAV is returned for WAV data that cannot be decoded.
var ErrBadWAV = errors.New("media: bad WAV")

// Audio is decoded PCM: mono float32 samples in [-1, 1] at SampleRate.
type Audio struct {
	SampleRate int
	Samples    []float32
}

// ReadWAVFile reads a RIFF/WAVE file of PCM16, PCM24, PCM32 or float32/64
// samples at any rate; several channels are averaged to mono.
func ReadWAVFile(path string) (Audio, error) {
	f, err := os.Open(path)
	if err != nil {
		return Audio{}, err
	}
	defer f.Close()
	a, err := ReadWAV(f)
	if err != nil {
		return Audio{}, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ReadWAV decodes a WAV stream; see ReadWAVFile.
func ReadWAV(r io.Reader) (Audio, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Audio{}, fmt.Errorf("%w: short header", ErrBadWAV)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return Audio{}, fmt.Errorf("%w: not RIFF/WAVE", ErrBadWAV)
	}
	var (
		format, channels, bits uint16
		rate                   uint32
		haveFmt                bool
	)
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return Audio{}, fmt.Errorf("%w: no data chunk", ErrBadWAV)
		}
		id := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1<<16 {
				return Audio{}, fmt.Errorf("%w: fmt chunk of %d bytes", ErrBadWAV, size)
			}
			b := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, b); err != nil {
				return Audio{}, fmt.Errorf("%w: short fmt chunk", ErrBadWAV)
			}
			format = binary.LittleEndian.Uint16(b[0:2])
			channels = binary.LittleEndian.Uint16(b[2:4])
			rate = binary.LittleEndian.Uint32(b[4:8])
			bits = binary.LittleEndian.Uint16(b[14:16])
			if format == 0xFFFE && size >= 26 { // WAVE_FORMAT_EXTENSIBLE: sub-format GUID
				format = binary.LittleEndian.Uint16(b[24:26])
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return Audio{}, fmt.Errorf("%w: data before fmt", ErrBadWAV)
			}
			return decodePCM(r, size, format, channels, bits, rate)
		default:
			if _, err := io.CopyN(io.Discard, r, size+size&1); err != nil {
				return Audio{}, fmt.Errorf("%w: short %q chunk", ErrBadWAV, id)
			}
		}
	}
}

func decodePCM(r io.Reader, size int64, format, channels, bits uint16, rate uint32) (Audio, error) {
	if channels == 0 || rate == 0 || rate > 384000 {
		return Audio{}, fmt.Errorf("%w: %d channels at %d Hz", ErrBadWAV, channels, rate)
	}
	switch {
	case format == 1 && (bits == 16 || bits == 24 || bits == 32):
	case format == 3 && (bits == 32 || bits == 64):
	default:
		return Audio{}, fmt.Errorf("%w: unsupported format %d with %d bits", ErrBadWAV, format, bits)
	}
	width := int64(bits / 8)
	frame := width * int64(channels)
	// Streams piped from tools often carry a size of 0 or 0xFFFFFFFF.
	var data []byte
	var err error
	if size == 0 || size == 0xFFFFFFFF {
		data, err = io.ReadAll(r)
	} else {
		// Read what is there rather than trust the header's size; a
		// truncated last chunk still holds good samples.
		data, err = io.ReadAll(io.LimitReader(r, size))
	}
	if err != nil {
		return Audio{}, fmt.Errorf("%w: %v", ErrBadWAV, err)
	}
	n := int64(len(data)) / frame
	out := make([]float32, n)
	for i := range n {
		var sum float64
		for c := range int64(channels) {
			p := data[i*frame+c*width:]
			sum += sample(p, format, bits)
		}
		out[i] = float32(sum / float64(channels))
	}
	return Audio{SampleRate: int(rate), Samples: out}, nil
}

func sample(p []byte, format, bits uint16) float64 {
	switch {
	case format == 3 && bits == 32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(p)))
	case format == 3:
		return math.Float64frombits(binary.LittleEndian.Uint64(p))
	case bits == 16:
		return float64(int16(binary.LittleEndian.Uint16(p))) / 32768
	case bits == 24:
		v := int32(uint32(p[0])<<8|uint32(p[1])<<16|uint32(p[2])<<24) >> 8
		return float64(v) / (1 << 23)
	default:
		return float64(int32(binary.LittleEndian.Uint32(p))) / (1 << 31)
	}
}

// WriteWAV writes mono PCM16 samples (clipped to [-1, 1]) as a WAV stream.
func WriteWAV(w io.Writer, a Audio) error {
	n := len(a.Samples)
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(a.SampleRate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*a.SampleRate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i, s := range a.Samples {
		v := math.Round(float64(s) * 32768)
		v = max(-32768, min(32767, v))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(v)))
	}
	_, err := w.Write(b)
	return err
}
