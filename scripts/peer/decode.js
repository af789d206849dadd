// Reference decoder: the sherpa-onnx peer (npm sherpa-onnx-node) decoding
// WAV files with greedy search, each fed in 100 ms pieces followed by 0.66 s
// of silence, as Callscribe's parity test does. Prints "FILE<TAB>TEXT".
// usage: node decode.js MODEL_DIR ENCODER DECODER JOINER FILE...
const {sherpa_onnx, create} = require('./recognizer.js');
const [dir, enc, dec, joi, ...files] = process.argv.slice(2);
const rec = create(dir, enc, dec, joi);
for (const f of files) {
  const wave = sherpa_onnx.readWave(f);
  const s = rec.createStream();
  const n = Math.floor(wave.sampleRate / 10);
  for (let i = 0; i < wave.samples.length; i += n) {
    s.acceptWaveform({sampleRate: wave.sampleRate, samples: wave.samples.subarray(i, i + n)});
    while (rec.isReady(s)) rec.decode(s);
  }
  s.acceptWaveform({sampleRate: wave.sampleRate, samples: new Float32Array(Math.round(wave.sampleRate * 0.66))});
  s.inputFinished();
  while (rec.isReady(s)) rec.decode(s);
  console.log(f.split('/').pop() + '\t' + rec.getResult(s).text.trim());
}
