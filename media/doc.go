// Package media turns call audio into 16 kHz mono float32: WAV files,
// resampling and (later) RTP receive, codecs and per-leg ring buffers.
// It holds no speech recognition and no signalling.
package media
