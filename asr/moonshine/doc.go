// Package moonshine is the second-pass recognizer for finals: Moonshine's
// encoder and merged decoder on ONNX Runtime, greedy, batched across segments.
//
// It takes whole segments of 16 kHz audio and returns their text. It holds no
// streaming, endpointing or guards against long or empty input: the caller
// cuts and bounds the segments (the first pass's utterances).
package moonshine
