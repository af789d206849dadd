// The sherpa-onnx peer recognizer as the parity and benchmark scripts use
// it: greedy search on CPU with one thread, the given transducer files.
const sherpa_onnx = require('sherpa-onnx-node');

exports.sherpa_onnx = sherpa_onnx;

exports.create = (dir, enc, dec, joi) => new sherpa_onnx.OnlineRecognizer({
  featConfig: {sampleRate: 16000, featureDim: 80},
  modelConfig: {
    transducer: {encoder: `${dir}/${enc}`, decoder: `${dir}/${dec}`, joiner: `${dir}/${joi}`},
    tokens: `${dir}/tokens.txt`, numThreads: 1, provider: 'cpu', debug: 0,
  },
  decodingMethod: 'greedy_search',
});
