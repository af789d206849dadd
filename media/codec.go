package media

import (
	"errors"
	"strings"

	"github.com/zaf/g711"
)

// ErrUnknownCodec is returned for a codec name Callscribe cannot decode.
var ErrUnknownCodec = errors.New("media: unknown codec")

// Decoder turns RTP payloads of one codec into PCM in [-1, 1].
type Decoder interface {
	// SampleRate is the rate of the PCM Decode produces.
	SampleRate() int
	// Decode appends the payload's samples to dst.
	Decode(dst []float32, payload []byte) ([]float32, error)
}

// Codec describes an audio codec by its SDP name.
type Codec struct {
	Name      string // SDP encoding name, e.g. "PCMU"
	ClockRate int    // RTP clock rate
	// NewDecoder returns a decoder with its own state for one leg.
	NewDecoder func() (Decoder, error)
}

// LookupCodec finds a codec by SDP encoding name (case-insensitive).
func LookupCodec(name string) (Codec, error) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return Codec{Name: "PCMU", ClockRate: 8000, NewDecoder: func() (Decoder, error) { return g711Decoder{&ulawTable}, nil }}, nil
	case "PCMA":
		return Codec{Name: "PCMA", ClockRate: 8000, NewDecoder: func() (Decoder, error) { return g711Decoder{&alawTable}, nil }}, nil
	case "G722":
		return Codec{Name: "G722", ClockRate: 8000, NewDecoder: func() (Decoder, error) { return newG722Decoder(), nil }}, nil
	case "OPUS":
		return Codec{Name: "opus", ClockRate: 48000, NewDecoder: newOpusDecoder}, nil
	}
	return Codec{}, ErrUnknownCodec
}

// The G.711 expansions (from zaf/g711) as float tables, read-only.
var (
	ulawTable = g711Table(g711.DecodeUlawFrame)
	alawTable = g711Table(g711.DecodeAlawFrame)
)

func g711Table(dec func(uint8) int16) (t [256]float32) {
	for i := range t {
		t[i] = float32(dec(uint8(i))) / 32768
	}
	return t
}

type g711Decoder struct{ table *[256]float32 }

func (g711Decoder) SampleRate() int { return 8000 }

func (d g711Decoder) Decode(dst []float32, payload []byte) ([]float32, error) {
	for _, b := range payload {
		dst = append(dst, d.table[b])
	}
	return dst, nil
}
