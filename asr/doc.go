// Package asr holds the streaming speech recognizer: Kaldi-compatible fbank
// features, a zipformer2 transducer on ONNX Runtime, the batcher that runs one
// model step for many live streams at once, greedy decoding and endpointing.
//
// It knows nothing of calls, SIP or Redis: it takes 16 kHz float32 audio per
// stream and reports partial and final results through a callback.
package asr
