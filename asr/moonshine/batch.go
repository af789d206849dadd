package moonshine

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
)

// buffers are the arrays a batch's tensors live in, kept between batches.
type buffers struct {
	input  []float32   // [B, P] audio
	ids    []int64     // [B, 1] the tokens fed to the next step
	logits []float32   // [B, 1, V]
	past   [][]float32 // per decoder cache tensor: [B, H, L, Dh]
	next   [][]float32 // the step's present decoder caches, swapped with past
	enc    [][]float32 // per encoder cache tensor: [B, H, T, Dh]
}

// grow returns b[:n], reallocated when too small.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// row is one segment being decoded.
type row struct {
	seg    int // index in Transcribe's segments
	budget int // most steps
	tokens []int64
	probs  []float32 // each token's posterior
}

// batch decodes segments[rows], all of padded length p, into texts: one
// encoder call, then greedy decoder steps for every row still going, each
// row dropped from the batch (and its caches) when it ends.
func (r *Recognizer) batch(segments [][]float32, rows []int, p int, texts []Result) error {
	n := len(rows)
	sh := r.shape
	b := &r.buf

	b.input = grow(b.input, n*p)
	clear(b.input)
	live := make([]row, n)
	steps := 0
	for i, s := range rows {
		copy(b.input[i*p:], segments[s])
		live[i] = row{seg: s, budget: r.budget(len(segments[s]))}
		if r.forced > 0 {
			live[i].budget = r.forced
		}
		steps = max(steps, live[i].budget)
	}
	x, err := ort.NewTensor(ort.NewShape(int64(n), int64(p)), b.input)
	if err != nil {
		return fmt.Errorf("moonshine: input tensor: %w", err)
	}
	out := []ort.Value{nil}
	err = r.sess.enc.Run([]ort.Value{x}, out)
	x.Destroy()
	if err != nil {
		return fmt.Errorf("moonshine: encoder: %w", err)
	}
	defer out[0].Destroy()
	hs, ok := out[0].(*ort.Tensor[float32])
	if s := out[0].GetShape(); !ok || len(s) != 3 || s[0] != int64(n) || s[2] != int64(sh.Hidden) {
		return fmt.Errorf("moonshine: encoder output %v", s)
	}
	frames := int(hs.GetShape()[1])
	hidden := hs.GetData() // a copy of ONNX Runtime's: rows are moved in place as they end

	nc := 4 * sh.Layers
	if len(b.past) != nc {
		b.past, b.next, b.enc = make([][]float32, nc), make([][]float32, nc), make([][]float32, nc)
	}
	decSize := n * sh.Heads * steps * sh.HeadDim
	encSize := n * sh.Heads * frames * sh.HeadDim
	for c := range nc {
		if c%4 < 2 {
			b.past[c], b.next[c] = grow(b.past[c], decSize), grow(b.next[c], decSize)
		} else {
			b.enc[c] = grow(b.enc[c], encSize)
		}
	}
	b.ids = grow(b.ids, n)
	for i := range b.ids {
		b.ids[i] = tokenStart
	}
	b.logits = grow(b.logits, n*sh.Vocab)

	in := make([]ort.Value, 3+nc)
	outs := make([]ort.Value, 1+nc)
	defer destroyAll(in, outs)
	perDec := sh.Heads * sh.HeadDim // floats per row and cache position
	perEnc := sh.Heads * frames * sh.HeadDim
	perHidden := frames * sh.Hidden
	for step := 0; n > 0; step++ {
		L := step // decoder cache length going in
		if err := r.bind(in, outs, n, L, frames, hidden); err != nil {
			return err
		}
		err := r.sess.dec.Run(in, outs)
		destroyAll(in, outs)
		if err != nil {
			return fmt.Errorf("moonshine: decoder step %d: %w", step, err)
		}
		b.past, b.next = b.next, b.past
		L++

		if r.debugLogits != nil {
			r.debugLogits(step, b.logits[:n*sh.Vocab], n)
		}
		kept := 0
		for i := range n {
			logits := b.logits[i*sh.Vocab : (i+1)*sh.Vocab]
			tok := argmax(logits)
			rw := &live[i]
			end := tok == tokenEnd && r.forced == 0
			stop := StopEnd
			if !end {
				rw.tokens = append(rw.tokens, int64(tok))
				rw.probs = append(rw.probs, posterior(logits, tok))
				if k := loopLen(rw.tokens); k > 0 && r.forced == 0 {
					n := len(rw.tokens) - k
					rw.tokens, rw.probs, stop, end = rw.tokens[:n], rw.probs[:n], StopRepeat, true
				} else if step+1 >= rw.budget {
					stop, end = StopBudget, true
				}
			}
			if end {
				texts[rw.seg] = Result{Text: r.vocab.Decode(rw.tokens), Words: r.vocab.Words(rw.tokens, rw.probs), Stop: stop}
				continue
			}
			if kept != i {
				live[kept] = live[i]
				for c := range nc {
					if c%4 < 2 {
						copy(b.past[c][kept*perDec*L:(kept+1)*perDec*L], b.past[c][i*perDec*L:])
					} else {
						copy(b.enc[c][kept*perEnc:(kept+1)*perEnc], b.enc[c][i*perEnc:])
					}
				}
				copy(hidden[kept*perHidden:(kept+1)*perHidden], hidden[i*perHidden:])
			}
			b.ids[kept] = int64(tok)
			kept++
		}
		n = kept
	}
	return nil
}

// bind makes the tensors of a decoder step over the batch's arrays: n rows,
// decoder caches of length L going in (0: the first step, which makes the
// encoder caches; later steps read them and output empty ones, which ONNX
// Runtime allocates).
func (r *Recognizer) bind(in, out []ort.Value, n, L, frames int, hidden []float32) error {
	b, sh := &r.buf, r.shape
	var err error
	tensor := func(data []float32, dims ...int) ort.Value {
		shape := make(ort.Shape, len(dims))
		for i, d := range dims {
			shape[i] = int64(d)
		}
		v, e := ort.NewTensor(shape, data[:shape.FlattenedSize()])
		if e != nil {
			err = cmp.Or(err, e)
			return nil // not a nil *Tensor in the interface: destroyAll skips nil
		}
		return v
	}
	if v, e := ort.NewTensor(ort.NewShape(int64(n), 1), b.ids[:n]); e == nil {
		in[0] = v
	} else {
		err = e
	}
	if v, e := ort.NewTensor(ort.NewShape(1), []bool{L > 0}); e == nil {
		in[2] = v
	} else {
		err = cmp.Or(err, e)
	}
	in[1] = tensor(hidden, n, frames, sh.Hidden)
	out[0] = tensor(b.logits, n, 1, sh.Vocab)
	for c := range 4 * sh.Layers {
		switch {
		case c%4 < 2: // decoder key or value: [n, H, L, Dh] in, L+1 out
			in[3+c] = tensor(b.past[c], n, sh.Heads, L, sh.HeadDim)
			out[1+c] = tensor(b.next[c], n, sh.Heads, L+1, sh.HeadDim)
		case L == 0: // encoder key or value, made now; the input is not read
			in[3+c] = tensor(b.enc[c], n, sh.Heads, 0, sh.HeadDim)
			out[1+c] = tensor(b.enc[c], n, sh.Heads, frames, sh.HeadDim)
		default:
			in[3+c] = tensor(b.enc[c], n, sh.Heads, frames, sh.HeadDim)
		}
	}
	if err != nil {
		return fmt.Errorf("moonshine: decoder tensors: %w", err)
	}
	return nil
}

// destroyAll releases the values of a step and clears the lists.
func destroyAll(lists ...[]ort.Value) {
	for _, l := range lists {
		for i, v := range l {
			if v != nil {
				v.Destroy()
				l[i] = nil
			}
		}
	}
}

// A loop is a run of n tokens said k times in a row at the end of the
// text, with k ≥ loopTimes and n·k ≥ loopTokens: long enough that speech
// does not do it (a card's "1111 1111 1111 1111" is 20 tokens, "yes, yes,
// yes" 6), the way a model on a long segment repeats a sentence.
const (
	loopTimes  = 3
	loopTokens = 24
	loopMaxRun = 24
)

// loopLen is how many tokens at the end of toks repeat the run before them
// in a loop (all repeats but the first), or 0 for no loop.
func loopLen(toks []int64) int {
	for n := 1; n <= loopMaxRun && n*loopTimes <= len(toks); n++ {
		k := 1
		for end := len(toks) - n; end-n >= 0 && slices.Equal(toks[end-n:end], toks[len(toks)-n:]); end -= n {
			k++
		}
		if k >= loopTimes && n*k >= loopTokens {
			return n * (k - 1)
		}
	}
	return 0
}

// posterior is the softmax probability of logit k. Terms more than 16
// below the largest add less than 1e-7 each and are skipped.
func posterior(x []float32, k int) float32 {
	top := x[k]
	var sum float64
	for _, v := range x {
		if d := v - top; d > -16 {
			sum += math.Exp(float64(d))
		}
	}
	return float32(1 / sum)
}

// argmax is the index of the largest value, the first of equals.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
