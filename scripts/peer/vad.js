// Reference speech segments: the sherpa-onnx peer's Silero VAD (threshold
// 0.5, 0.5 s minimum silence, 0.25 s minimum speech, 512-sample windows)
// over 16 kHz WAVs, each with 0.5 s of silence before and 2 s after, as
// asr's VAD test feeds them. Prints "FILE<TAB>start_ms-end_ms ...".
// usage: node vad.js SILERO_MODEL FILE...
const sherpa_onnx = require('sherpa-onnx-node');
const [model, ...files] = process.argv.slice(2);
for (const f of files) {
  const vad = new sherpa_onnx.Vad({
    sileroVad: {model, threshold: 0.5, minSpeechDuration: 0.25, minSilenceDuration: 0.5, windowSize: 512},
    sampleRate: 16000, numThreads: 1, provider: 'cpu', debug: 0,
  }, 120);
  const wave = sherpa_onnx.readWave(f);
  if (wave.sampleRate !== 16000) throw new Error(`${f}: ${wave.sampleRate} Hz, want 16000`);
  const x = new Float32Array(8000 + wave.samples.length + 32000);
  x.set(wave.samples, 8000);
  const segs = [];
  const take = () => {
    while (!vad.isEmpty()) {
      const s = vad.front();
      segs.push(`${Math.round(s.start / 16)}-${Math.round((s.start + s.samples.length) / 16)}`);
      vad.pop();
    }
  };
  for (let i = 0; i + 512 <= x.length; i += 512) {
    vad.acceptWaveform(x.subarray(i, i + 512));
    take();
  }
  vad.flush();
  take();
  console.log(f.split('/').pop() + '\t' + segs.join(' '));
}
