package asr

import (
	"math"
	"slices"
)

// Decoding methods (BatcherOptions.Decoding).
const (
	Greedy             = "greedy"
	ModifiedBeamSearch = "modified_beam_search"
)

// DefaultActivePaths is the beam of modified beam search.
const DefaultActivePaths = 4

// hyp is one hypothesis of modified beam search. Its slices are never
// changed in place once the hypothesis exists: children that add a token
// get copies, children that add a blank share them.
type hyp struct {
	ys       []int64 // decoder context then the utterance's tokens: the merge key
	times    []int64
	probs    []float32
	logProb  float64
	trailing int       // blank frames since the last token
	dec      []float32 // decoder output for ys's context; nil until computed
	ctx      *ctxNode  // hotwords: where the hypothesis is in the context graph
}

// score ranks hypotheses as sherpa-onnx's GetMostProbable(true): the log
// probability per symbol of ys.
func (h *hyp) score() float64 { return h.logProb / float64(len(h.ys)) }

// best is the most probable hypothesis (the first of equals).
func best(hs []hyp) *hyp {
	b := &hs[0]
	for i := range hs[1:] {
		if hs[i+1].score() > b.score() {
			b = &hs[i+1]
		}
	}
	return b
}

// logAdd is log(exp(a) + exp(b)).
func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// addHyp puts h into the set hs, merging it with a hypothesis of the same
// token sequence (their probabilities add).
func addHyp(hs []hyp, h hyp) []hyp {
	for i := range hs {
		if slices.Equal(hs[i].ys, h.ys) {
			hs[i].logProb = logAdd(hs[i].logProb, h.logProb)
			return hs
		}
	}
	return append(hs, h)
}

// logSoftmax32 turns a row of logits into log probabilities in place, in
// float32 arithmetic as sherpa-onnx does.
func logSoftmax32(x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float32
	for _, v := range x {
		sum += float32(math.Exp(float64(v - m)))
	}
	off := m + float32(math.Log(float64(sum)))
	for i := range x {
		x[i] -= off
	}
}

// topK returns the indexes of the k largest values of x, largest first (of
// equal values the lower index first).
func topK(x []float32, k int, out []int) []int {
	out = out[:0]
	for i, v := range x {
		if len(out) == k && v <= x[out[k-1]] {
			continue
		}
		j := len(out)
		if j < k {
			out = append(out, i)
		} else {
			j = k - 1
		}
		for j > 0 && v > x[out[j-1]] {
			out[j] = out[j-1]
			j--
		}
		out[j] = i
	}
	return out
}

// beamSearch runs modified beam search over the encoder frames in bt for
// the streams' hypotheses in r.beams (one set per stream): for each frame,
// one decoder call for the hypotheses that gained a token and one joiner
// call for every hypothesis of every stream; each stream keeps its
// activePaths best expansions, those of one token sequence merged (as
// sherpa-onnx's OnlineTransducerModifiedBeamSearchDecoder, blank and unk
// extending nothing).
func (r *runner) beamSearch(info *ModelInfo, job []*Stream, bt *Batch, activePaths int) error {
	D, V, F, C := info.EncoderDim, info.VocabSize, info.OutFrames, info.ContextSize
	n := len(job)
	for t := range F {
		if r.abandoned.Load() {
			return errAbandoned
		}
		// Decoder outputs of hypotheses that have none yet.
		need := r.rows[:0]
		total := 0
		for i := range n {
			for j := range r.beams[i] {
				if r.beams[i][j].dec == nil {
					need = append(need, [2]int{i, j})
				}
			}
			total += len(r.beams[i])
		}
		r.rows = need
		if len(need) > 0 {
			hb, err := r.eng.Heads(len(need))
			if err != nil {
				return err
			}
			for k, ij := range need {
				ys := r.beams[ij[0]][ij[1]].ys
				copy(hb.Y[k*C:(k+1)*C], ys[len(ys)-C:])
			}
			if err := r.eng.Decode(hb); err != nil {
				return err
			}
			for k, ij := range need {
				r.beams[ij[0]][ij[1]].dec = slices.Clone(hb.DecOut[k*D : (k+1)*D])
			}
		}
		hb, err := r.eng.Heads(total)
		if err != nil {
			return err
		}
		row := 0
		for i := range n {
			enc := bt.EncOut[(i*F+t)*D : (i*F+t+1)*D]
			for j := range r.beams[i] {
				copy(hb.JoinEnc[row*D:(row+1)*D], enc)
				copy(hb.JoinDec[row*D:(row+1)*D], r.beams[i][j].dec)
				row++
			}
		}
		if err := r.eng.Join(hb); err != nil {
			return err
		}
		row = 0
		for i := range n {
			prev := r.beams[i]
			block := hb.Logits[row*V : (row+len(prev))*V]
			for j := range prev {
				lp := block[j*V : (j+1)*V]
				logSoftmax32(lp)
				base := float32(prev[j].logProb)
				for k := range lp {
					lp[k] += base
				}
			}
			r.topk = topK(block, activePaths, r.topk)
			next := r.next[i][:0]
			for _, k := range r.topk {
				parent := &prev[k/V]
				tok := k % V
				h := hyp{ys: parent.ys, times: parent.times, probs: parent.probs, logProb: float64(block[k]),
					trailing: parent.trailing + 1, dec: parent.dec, ctx: parent.ctx}
				if tok != info.BlankID && tok != info.UnkID {
					prob := float32(math.Exp(float64(block[k] - float32(parent.logProb))))
					h.ys = append(slices.Clip(parent.ys), int64(tok))
					h.times = append(slices.Clip(parent.times), r.frame0[i]+int64(t))
					h.probs = append(slices.Clip(parent.probs), prob)
					h.trailing, h.dec = 0, nil
					if g := job[i].graph; g != nil {
						bonus, next := g.forward(parent.ctx, tok)
						h.logProb += float64(bonus)
						h.ctx = next
					}
				}
				next = addHyp(next, h)
			}
			r.next[i], r.beams[i] = prev[:0], next
			row += len(prev)
		}
	}
	return nil
}
