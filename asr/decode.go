package asr

import (
	"strings"
	"sync"
)

// DecodeAll recognizes whole 16 kHz signals, each as its own stream, all at
// once through b: the signals are fed in pieces of pieceMs, round robin, as
// live calls would arrive, or whole when pieceMs is 0. It returns every
// stream's results in order.
func DecodeAll(b *Batcher, signals [][]float32, pieceMs int) ([][]Result, error) {
	return DecodeAllWith(b, signals, pieceMs, StreamOptions{})
}

// DecodeAllWith is DecodeAll with options for every stream (hotwords);
// the backlog is never bounded.
func DecodeAllWith(b *Batcher, signals [][]float32, pieceMs int, o StreamOptions) ([][]Result, error) {
	o.MaxBacklogMs = -1
	var mu sync.Mutex
	results := make([][]Result, len(signals))
	streams := make([]*Stream, len(signals))
	for i := range signals {
		s, err := b.NewStreamWith(streamName(i), func(r Result) {
			mu.Lock()
			results[i] = append(results[i], r)
			mu.Unlock()
		}, o)
		if err != nil {
			return nil, err
		}
		streams[i] = s
	}
	piece := 16 * pieceMs
	if piece <= 0 {
		piece = 1 << 62
	}
	for off := 0; ; off += piece {
		more := false
		for i, x := range signals {
			switch {
			case off < len(x):
				streams[i].Accept(x[off:min(off+piece, len(x))])
				more = true
			case off-piece < len(x):
				streams[i].Finish()
			}
		}
		if !more {
			break
		}
	}
	for _, s := range streams {
		s.Finish() // no-op unless the signal was empty
		<-s.Done()
	}
	return results, nil
}

func streamName(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return "s" + digits[i:i+1]
	}
	return streamName(i/10) + digits[i%10:i%10+1]
}

// FinalText joins the finals of one stream.
func FinalText(rs []Result) string {
	var parts []string
	for _, r := range rs {
		if r.Kind == Final && r.Text != "" {
			parts = append(parts, r.Text)
		}
	}
	return strings.Join(parts, " ")
}
