package moonshine

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Batching made exact. The int8 models quantize activations dynamically:
// DynamicQuantizeLinear takes one scale and zero point for a whole tensor,
// so in a batch every row is quantized with the range of all rows, and a
// segment's text would depend on the segments beside it (measured: logits
// move by up to 1.2, and 6 of 25 texts of the parity corpus change at
// batch 16). rowQuantize rewrites each DynamicQuantizeLinear into the same
// arithmetic per batch row (ONNX Runtime's: range widened to hold 0, scale
// (max-min)/255, zero point rounded half to even, QuantizeLinear) and each
// MatMulInteger that used its zero point into one without it, less
// zero point × the weight's column sums (exact in int32). A row's values
// are then those of the row alone, bit for bit.
//
// One float kernel still depends on the batch: the output projection (a
// float MatMul to the logits) takes another path for a single row, which
// moves logits by about 1e-5. So it always gets at least two rows: its
// input is padded with a copy of the first row, cut off its output. The
// other conditions of exactness are in openSessions (graph optimizations
// off) and fold.go (the weights' dequantization done once, as ONNX Runtime
// does it).

// rewriter holds what the rewrite of one model needs across its graphs.
type rewriter struct {
	opset int64
	inits map[string]initTensor // every graph's initializers, by name
	added [][]byte              // initializers to add to the main graph
	have  map[string]bool       // names of added initializers
	seq   int
	// padHead: pad the output projection to two rows or more.
	padHead      bool
	foldedValues map[string]constValue // by initializer name
	memo         map[string]constValue // by node (fold's key)
	rewriteCounts
}

// rewriteCounts are what a rewrite changed, for tests (a Recognizer keeps
// these, not the rewriter and the folded weights it holds).
type rewriteCounts struct {
	quantizers, matmuls, heads, folds int
}

// rowQuantize rewrites a model (see above). It returns the model unchanged
// but for the output projection when it has no DynamicQuantizeLinear.
func rowQuantize(model []byte, padHead bool) ([]byte, *rewriter, error) {
	fs, err := parseFields(model)
	if err != nil {
		return nil, nil, err
	}
	rw := &rewriter{inits: map[string]initTensor{}, have: map[string]bool{}, padHead: padHead,
		foldedValues: map[string]constValue{}, memo: map[string]constValue{}}
	gi := -1
	for i, f := range fs {
		switch f.num {
		case modelOpset:
			of, err := parseFields(f.data)
			if err != nil {
				return nil, nil, err
			}
			domain, version := "", int64(0)
			for _, o := range of {
				switch o.num {
				case opsetDomain:
					domain = string(o.data)
				case opsetVersion:
					version = int64(o.v)
				}
			}
			if domain == "" || domain == "ai.onnx" {
				rw.opset = version
			}
		case modelGraph:
			gi = i
		}
	}
	if gi < 0 {
		return nil, nil, fmt.Errorf("no graph")
	}
	if err := rw.collect(fs[gi].data); err != nil {
		return nil, nil, err
	}
	g, err := rw.graph(fs[gi].data, true)
	if err != nil {
		return nil, nil, err
	}
	fs[gi].data = g
	return appendFields(nil, fs), rw, nil
}

// collect indexes the initializers of a graph and its subgraphs.
func (rw *rewriter) collect(g []byte) error {
	fs, err := parseFields(g)
	if err != nil {
		return err
	}
	for _, f := range fs {
		switch f.num {
		case graphInit:
			name, t, err := parseTensor(f.data)
			if err != nil {
				return err
			}
			rw.inits[name] = t
		case graphNode:
			if err := rw.subgraphs(f.data, rw.collect); err != nil {
				return err
			}
		}
	}
	return nil
}

// subgraphs calls fn on each graph attribute of a node and returns the
// node with the graphs fn returned, when fn returns any.
func (rw *rewriter) subgraphs(node []byte, fn func([]byte) error) error {
	_, err := rw.mapSubgraphs(node, func(g []byte) ([]byte, error) { return nil, fn(g) })
	return err
}

func (rw *rewriter) mapSubgraphs(node []byte, fn func([]byte) ([]byte, error)) ([]byte, error) {
	fs, err := parseFields(node)
	if err != nil {
		return nil, err
	}
	changed := false
	for i, f := range fs {
		if f.num != nodeAttr {
			continue
		}
		af, err := parseFields(f.data)
		if err != nil {
			return nil, err
		}
		achanged := false
		for j, a := range af {
			if a.num != attrG && a.num != attrGraphs {
				continue
			}
			g, err := fn(a.data)
			if err != nil {
				return nil, err
			}
			if g != nil {
				af[j].data, achanged = g, true
			}
		}
		if achanged {
			fs[i].data, changed = appendFields(nil, af), true
		}
	}
	if !changed {
		return node, nil
	}
	return appendFields(nil, fs), nil
}

func (rw *rewriter) name(what string) string {
	rw.seq++
	return "callscribe_rowq/" + strconv.Itoa(rw.seq) + "/" + what
}

// constant adds a named initializer once and returns its name.
func (rw *rewriter) constant(name string, dt int64, dims []int64, raw []byte) string {
	name = "callscribe_rowq/" + name
	if !rw.have[name] {
		rw.have[name] = true
		rw.added = append(rw.added, tensorProto(name, dt, dims, raw))
	}
	return name
}

// quantizer is the rewrite of one DynamicQuantizeLinear: the names of its
// per-row zero point (int32, [B, 1, ..., 1]) for the MatMulIntegers.
type quantizer struct {
	zeroPoint string // the original zero-point output
	rowZero   string // int32 [B, 1, ..., 1]
}

// graph rewrites one graph's nodes; the main graph also gets the added
// initializers.
func (rw *rewriter) graph(g []byte, main bool) ([]byte, error) {
	fs, err := parseFields(g)
	if err != nil {
		return nil, err
	}
	var nodes []onnxNode
	for _, f := range fs {
		if f.num != graphNode {
			continue
		}
		b, err := rw.mapSubgraphs(f.data, func(sub []byte) ([]byte, error) { return rw.graph(sub, false) })
		if err != nil {
			return nil, err
		}
		n, err := parseNode(b)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	outputs := map[string]bool{}
	for _, f := range fs {
		if f.num == graphOutput {
			vf, err := parseFields(f.data)
			if err != nil {
				return nil, err
			}
			for _, v := range vf {
				if v.num == valueInfoName {
					outputs[string(v.data)] = true
				}
			}
		}
	}
	if nodes, err = rw.foldConstants(nodes, outputs); err != nil {
		return nil, err
	}
	// Who reads each DynamicQuantizeLinear output: only MatMulInteger may
	// read the value and zero point, the scale only Mul (by the weight's).
	quant := map[string]*quantizer{} // by zero-point output
	outputsOf := map[string]int{}    // output name -> DQL node index
	for i, n := range nodes {
		if n.op == "DynamicQuantizeLinear" && (n.domain == "" || n.domain == "ai.onnx") {
			if len(n.outputs) != 3 || len(n.inputs) != 1 {
				return nil, fmt.Errorf("node %s: DynamicQuantizeLinear with %d outputs", n.name, len(n.outputs))
			}
			for _, o := range n.outputs {
				outputsOf[o] = i
			}
		}
	}
	for _, n := range nodes {
		for k, in := range n.inputs {
			if _, ok := outputsOf[in]; !ok {
				continue
			}
			dq := nodes[outputsOf[in]]
			ok := false
			switch {
			case in == dq.outputs[0]:
				ok = n.op == "MatMulInteger" && k == 0
			case in == dq.outputs[1]:
				ok = n.op == "Mul"
			case in == dq.outputs[2]:
				ok = n.op == "MatMulInteger" && k == 2
			}
			if !ok {
				return nil, fmt.Errorf("node %s (%s) reads %s of %s: not a pattern the rewrite knows", n.name, n.op, in, dq.name)
			}
		}
	}
	if len(outputsOf) > 0 && (rw.opset < 13 || rw.opset >= 18) {
		return nil, fmt.Errorf("opset %d: the rewrite is written for opsets 13 to 17", rw.opset)
	}
	var out []onnxNode
	for _, n := range nodes {
		switch {
		case n.op == "DynamicQuantizeLinear" && (n.domain == "" || n.domain == "ai.onnx"):
			q, ns := rw.quantizeRows(n)
			quant[q.zeroPoint] = q
			out = append(out, ns...)
			rw.quantizers++
		case n.op == "MatMulInteger" && len(n.inputs) >= 3 && quant[n.inputs[2]] != nil:
			ns, err := rw.matMulRows(n, quant[n.inputs[2]])
			if err != nil {
				return nil, err
			}
			out = append(out, ns...)
			rw.matmuls++
		case rw.padHead && n.op == "MatMul" && len(n.outputs) == 1 && n.outputs[0] == "logits" && len(n.inputs) == 2:
			out = append(out, rw.padRows(n)...)
			rw.heads++
		default:
			out = append(out, n)
		}
	}
	// The value infos may give the scales and zero points as scalars; they
	// are only hints, so all go.
	var rest []field
	for _, f := range fs {
		if f.num != graphNode && f.num != graphValueInfo {
			rest = append(rest, f)
		}
	}
	var b []byte
	for _, n := range out {
		b = appendFields(b, []field{bytesField(graphNode, n.encode())})
	}
	b = appendFields(b, rest)
	if main {
		for _, t := range rw.added {
			b = appendFields(b, []field{bytesField(graphInit, t)})
		}
	}
	return b, nil
}

// quantizeRows is DynamicQuantizeLinear row by row (uint8): x is viewed as
// [B, K]; per row the range [min(min,0), max(max,0)], scale range/255 (1 for
// a row of zeros), zero point round-half-even(clip(-min/scale, 0, 255)),
// then QuantizeLinear along axis 0. The scale output becomes [B, 1, ..., 1]
// (rank of x) so that it broadcasts where the scalar did.
func (rw *rewriter) quantizeRows(n onnxNode) (*quantizer, []onnxNode) {
	x, q, s, zp := n.inputs[0], n.outputs[0], n.outputs[1], n.outputs[2]
	zero := rw.constant("zero", dtFloat, nil, floatRaw(0))
	one := rw.constant("one", dtFloat, nil, floatRaw(1))
	top := rw.constant("255", dtFloat, nil, floatRaw(255))
	flat := rw.constant("flat", dtInt64, []int64{2}, int64Raw(0, -1))
	minus1 := rw.constant("minus1", dtInt64, []int64{1}, int64Raw(-1))
	from1 := rw.constant("from1", dtInt64, []int64{1}, int64Raw(1))
	toEnd := rw.constant("to_end", dtInt64, []int64{1}, int64Raw(math.MaxInt64))
	v := func(what string) string { return rw.name(what) }
	xf, mn, mx, mn0, mx0 := v("x_rows"), v("min"), v("max"), v("min0"), v("max0")
	rng, sc0, eq, sc := v("range"), v("scale_nonzero"), v("all_zero"), v("scale_rows")
	q0, zf0, zf1, zf, zq := v("min_over_scale"), v("zp_float"), v("zp_clipped"), v("zp_rounded"), v("zp_rows")
	shp, rank, ones, tail, rs, zi, zr := v("shape"), v("rank"), v("ones"), v("ones_tail"), v("row_shape"), v("zp_int32"), v("zp_int32_rows")
	nn := func(op string, in []string, out string, attrs ...[]byte) onnxNode {
		return newNode(op, out+"_"+op, in, []string{out}, attrs...)
	}
	ns := []onnxNode{
		nn("Reshape", []string{x, flat}, xf),
		nn("ReduceMin", []string{xf}, mn, attrIntList("axes", 1), attrInt("keepdims", 0)),
		nn("ReduceMax", []string{xf}, mx, attrIntList("axes", 1), attrInt("keepdims", 0)),
		nn("Min", []string{mn, zero}, mn0),
		nn("Max", []string{mx, zero}, mx0),
		nn("Sub", []string{mx0, mn0}, rng),
		nn("Div", []string{rng, top}, sc0),
		nn("Equal", []string{mx0, mn0}, eq),
		nn("Where", []string{eq, one, sc0}, sc),
		nn("Div", []string{mn0, sc}, q0),
		nn("Sub", []string{zero, q0}, zf0),
		nn("Clip", []string{zf0, zero, top}, zf1),
		nn("Round", []string{zf1}, zf),
		nn("Cast", []string{zf}, zq, attrInt("to", dtUint8)),
		newNode("QuantizeLinear", q+"_QuantizeLinear_rows", []string{x, sc, zq}, []string{q}, attrInt("axis", 0)),
		// [B, 1, ..., 1] with the rank of x.
		nn("Shape", []string{x}, shp),
		nn("Shape", []string{shp}, rank),
		nn("ConstantOfShape", []string{rank}, ones, attrTensor("value", tensorProto("", dtInt64, []int64{1}, int64Raw(1)))),
		nn("Slice", []string{ones, from1, toEnd}, tail),
		nn("Concat", []string{minus1, tail}, rs, attrInt("axis", 0)),
		nn("Reshape", []string{sc, rs}, s),
		nn("Cast", []string{zq}, zi, attrInt("to", dtInt32)),
		nn("Reshape", []string{zi, rs}, zr),
	}
	return &quantizer{zeroPoint: zp, rowZero: zr}, ns
}

// matMulRows is MatMulInteger(A, W, a_zp, w_zp) with a zero point per row
// of A: MatMulInteger(A, W, 0, w_zp) − a_zp × Σ_k (W[k] − w_zp).
func (rw *rewriter) matMulRows(n onnxNode, q *quantizer) ([]onnxNode, error) {
	w, ok := rw.inits[n.inputs[1]]
	if !ok || len(w.dims) != 2 {
		return nil, fmt.Errorf("node %s: weight %s is not a 2-D initializer", n.name, n.inputs[1])
	}
	ws, err := w.ints()
	if err != nil {
		return nil, fmt.Errorf("node %s: weight %s: %w", n.name, n.inputs[1], err)
	}
	wz := []int32{0}
	if len(n.inputs) > 3 && n.inputs[3] != "" {
		z, ok := rw.inits[n.inputs[3]]
		if !ok {
			return nil, fmt.Errorf("node %s: weight zero point %s is not an initializer", n.name, n.inputs[3])
		}
		if wz, err = z.ints(); err != nil || len(wz) != 1 {
			return nil, fmt.Errorf("node %s: weight zero point %s: not one value (%v)", n.name, n.inputs[3], err)
		}
	}
	k, cols := int(w.dims[0]), int(w.dims[1])
	col := make([]int32, cols)
	for r := range k {
		for c, v := range ws[r*cols : (r+1)*cols] {
			col[c] += v
		}
	}
	sums := make([]byte, 0, 4*cols)
	for _, s := range col {
		sums = binary.LittleEndian.AppendUint32(sums, uint32(s-int32(k)*wz[0]))
	}
	colsum := rw.constant("colsum/"+n.inputs[1], dtInt32, []int64{int64(cols)}, sums)
	acc, corr := rw.name("acc"), rw.name("zp_correction")
	inputs := []string{n.inputs[0], n.inputs[1], ""}
	if len(n.inputs) > 3 {
		inputs = append(inputs, n.inputs[3])
	}
	mm := newNode("MatMulInteger", n.name+"_rows", inputs, []string{acc})
	return []onnxNode{
		mm,
		newNode("Mul", corr+"_Mul", []string{q.rowZero, colsum}, []string{corr}),
		newNode("Sub", n.outputs[0]+"_Sub_rows", []string{acc, corr}, n.outputs),
	}, nil
}

// padRows runs a MatMul on its rows and a copy of the first (so never on a
// single row) and drops the copy's result.
func (rw *rewriter) padRows(n onnxNode) []onnxNode {
	zero := rw.constant("i64_zero", dtInt64, []int64{1}, int64Raw(0))
	first := rw.constant("i64_one", dtInt64, []int64{1}, int64Raw(1))
	last := rw.constant("i64_minus1", dtInt64, []int64{1}, int64Raw(-1))
	row, padded, wide := rw.name("first_row"), rw.name("padded"), rw.name("padded_out")
	return []onnxNode{
		newNode("Slice", row+"_Slice", []string{n.inputs[0], zero, first, zero}, []string{row}),
		newNode("Concat", padded+"_Concat", []string{n.inputs[0], row}, []string{padded}, attrInt("axis", 0)),
		newNode("MatMul", n.name+"_padded", []string{padded, n.inputs[1]}, []string{wide}),
		newNode("Slice", n.outputs[0]+"_Slice", []string{wide, zero, last, zero}, n.outputs),
	}
}
