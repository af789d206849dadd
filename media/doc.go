// Package media turns call audio into 16 kHz mono float32: the RTP receive
// path of a leg (G.711 decoding, reordering, loss as explicit silence, DTMF),
// the leg's bounded ring buffer, resampling and WAV files. It holds no
// speech recognition and no signalling.
package media
