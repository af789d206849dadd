// The sherpa-onnx peer at its best for the side-by-side benchmark: every
// stream gets its whole audio (plus 0.66 s of silence) up front, then each
// round decodes all ready streams with one decodeStreams call (batched).
// A batch-1 encoder is decoded one stream at a time.
// usage: node bench.js MODEL_DIR ENCODER DECODER JOINER BATCH(0|1) FILE...
// Prints one JSON line: texts, batch sizes, decode seconds.
const {sherpa_onnx, create} = require('./recognizer.js');
const [dir, enc, dec, joi, batch1, ...files] = process.argv.slice(2);
const rec = create(dir, enc, dec, joi);
const t0 = process.hrtime.bigint();
const streams = files.map(f => {
  const w = sherpa_onnx.readWave(f);
  const s = rec.createStream();
  s.acceptWaveform({sampleRate: w.sampleRate, samples: w.samples});
  s.acceptWaveform({sampleRate: w.sampleRate, samples: new Float32Array(Math.round(w.sampleRate * 0.66))});
  s.inputFinished();
  return s;
});
const hist = {};
for (;;) {
  const ready = streams.filter(s => rec.isReady(s));
  if (!ready.length) break;
  if (batch1 === '1') {
    for (const s of ready) rec.decode(s);
    hist[1] = (hist[1] || 0) + ready.length;
  } else {
    rec.decodeStreams(ready);
    hist[ready.length] = (hist[ready.length] || 0) + 1;
  }
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({texts: streams.map(s => rec.getResult(s).text.trim()), batches: hist, seconds: secs}));
