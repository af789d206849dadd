// The sherpa-onnx peer recognizer as the parity and benchmark scripts use
// it: on CPU with one thread, the given transducer files; greedy search, or
// what PEER_DECODING says (modified_beam_search, with PEER_ACTIVE_PATHS
// paths, default 4; PEER_HOTWORDS a hotwords file, PEER_HOTWORDS_SCORE,
// PEER_BPE_VOCAB the vocabulary that spells them: "piece<TAB>score" lines).
const sherpa_onnx = require('sherpa-onnx-node');

exports.sherpa_onnx = sherpa_onnx;

exports.create = (dir, enc, dec, joi) => new sherpa_onnx.OnlineRecognizer({
  featConfig: {sampleRate: 16000, featureDim: 80},
  modelConfig: {
    transducer: {encoder: `${dir}/${enc}`, decoder: `${dir}/${dec}`, joiner: `${dir}/${joi}`},
    tokens: `${dir}/tokens.txt`, numThreads: 1, provider: 'cpu', debug: 0,
    modelingUnit: process.env.PEER_BPE_VOCAB ? 'bpe' : '', bpeVocab: process.env.PEER_BPE_VOCAB || '',
  },
  decodingMethod: process.env.PEER_DECODING || 'greedy_search',
  maxActivePaths: Number(process.env.PEER_ACTIVE_PATHS || 4),
  hotwordsFile: process.env.PEER_HOTWORDS || '',
  hotwordsScore: Number(process.env.PEER_HOTWORDS_SCORE || 1.5),
});
