package media

import (
	"fmt"

	"github.com/pion/opus"
)

// opusDecoder decodes Opus (pion/opus) straight to 16 kHz mono, the rate the
// recognizer wants, so no resampling follows it.
type opusDecoder struct {
	dec opus.Decoder
	buf []float32
}

func newOpusDecoder() (Decoder, error) {
	d, err := opus.NewDecoderWithOutput(16000, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder at 16 kHz mono: %w", err)
	}
	return &opusDecoder{dec: d, buf: make([]float32, 16000*120/1000)}, nil // up to 120 ms per packet
}

func (*opusDecoder) SampleRate() int { return 16000 }

func (d *opusDecoder) Decode(dst []float32, payload []byte) ([]float32, error) {
	n, err := d.dec.DecodeToFloat32(payload, d.buf)
	if err != nil {
		return dst, fmt.Errorf("media: opus: %w", err)
	}
	return append(dst, d.buf[:n]...), nil
}
