// Reference second pass: Moonshine on onnxruntime-node as a plain greedy
// loop at batch 1, the loop of moonshine-js 0.1.16 (src/model.ts): start
// token 1, end token 2, argmax; the first decoder step without cache fills
// the encoder keys/values, later steps (use_cache_branch true) feed back the
// growing decoder keys/values. Differences from moonshine-js, the same as
// Callscribe's: each input is first padded with silence to a multiple of
// BUCKET_MS (the length Callscribe batches by; 0: none); the step budget is
// floor(6 × unpadded samples / 16000); a text cut by the budget keeps its
// last token (moonshine-js drops it); ids past the vocabulary and special
// ids are skipped before llama-tokenizer-js decodes; ONNX Runtime's graph
// optimizations are off (its fused kernels take paths that depend on the
// input's shape, an ulp apart, which the int8 requantization amplifies:
// the graph as written is the reference).
// Input: raw 16 kHz float32 little-endian files (scripts/peer/pcm16k).
// Prints "NAME<TAB>TEXT", NAME the file's name without .f32.
// usage: node moonshine.js MODEL_DIR BUCKET_MS FILE.f32...
const fs = require('fs');
const path = require('path');
const url = require('url');
const ort = require('onnxruntime-node');

async function main() {
  const [dir, bucketMs, ...files] = process.argv.slice(2);
  // An ES module: import() does not search NODE_PATH, require.resolve does.
  const {default: tokenizer} = await import(url.pathToFileURL(require.resolve('llama-tokenizer-js')).href);
  const opts = {intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled'};
  const enc = await ort.InferenceSession.create(path.join(dir, 'encoder_model.onnx'), opts);
  const dec = await ort.InferenceSession.create(path.join(dir, 'decoder_model_merged.onnx'), opts);
  const past = dec.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const meta = dec.inputMetadata.find((m) => m.name === past[0]);
  const heads = meta.shape[1], headDim = meta.shape[3];
  const bucket = Math.round(16000 * Number(bucketMs) / 1000);
  for (const f of files) {
    const b = fs.readFileSync(f);
    const x = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    const n = x.length;
    const padded = bucket > 0 ? Math.ceil(n / bucket) * bucket : n;
    const audio = new Float32Array(padded);
    audio.set(x);
    const budget = Math.floor(n * 6 / 16000);
    const tokens = [];
    if (budget > 0) {
      const {last_hidden_state: hidden} = await enc.run({input_values: new ort.Tensor('float32', audio, [1, padded])});
      const cache = {};
      for (const name of past) cache[name] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
      let next = 1n;
      for (let i = 0; i < budget; i++) {
        const out = await dec.run({
          input_ids: new ort.Tensor('int64', BigInt64Array.from([next]), [1, 1]),
          encoder_hidden_states: hidden,
          use_cache_branch: new ort.Tensor('bool', [i > 0], [1]),
          ...cache,
        });
        const logits = out.logits.data;
        let best = 0;
        for (let k = 1; k < logits.length; k++) if (logits[k] > logits[best]) best = k;
        if (best === 2) break;
        tokens.push(best);
        next = BigInt(best);
        for (const name of past) {
          if (i === 0 || name.includes('.decoder.')) cache[name] = out[name.replace('past_key_values.', 'present.')];
        }
      }
    }
    const ids = tokens.filter((t) => t > 2 && t < 32000);
    const text = ids.length ? tokenizer.decode([1, ...ids]) : '';
    console.log(path.basename(f, '.f32') + '\t' + text);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
