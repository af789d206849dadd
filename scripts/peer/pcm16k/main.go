// Command pcm16k writes WAV files as raw 16 kHz float32 (little-endian)
// samples, resampled as callscribe transcribe does by default (the Kaldi
// filter), for the reference scripts that take audio as Callscribe hears it.
//
//	go run ./scripts/peer/pcm16k OUT_DIR FILE.wav...
//
// writes OUT_DIR/FILE.wav.f32 for each.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/callscribe/callscribe/media"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: pcm16k OUT_DIR FILE.wav...")
		os.Exit(2)
	}
	for _, f := range os.Args[2:] {
		if err := convert(os.Args[1], f); err != nil {
			fmt.Fprintf(os.Stderr, "pcm16k: %v\n", err)
			os.Exit(1)
		}
	}
}

func convert(dir, path string) error {
	a, err := media.ReadWAVFile(path)
	if err != nil {
		return err
	}
	x := a.Samples
	if a.SampleRate != 16000 {
		if x, err = media.ResampleFilter(x, a.SampleRate, 16000, media.FilterKaldi); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	name := filepath.Base(path) + ".f32"
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}
