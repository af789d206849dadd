package moonshine

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Constant folding of the weights' dequantization. The models compute
// float weights from int8 ones inside the graph: the encoder's convolution
// weights (Cast, Mul by the scale, Add the zero point) on every call, and
// the decoder's output projection (Transpose, DequantizeLinear: 9.4 M values
// for tiny) on every step. ONNX Runtime folds them when it optimizes the
// graph, which we turn off (see openSessions), so foldConstants does it:
// with the same float32 operations, rounded as ONNX Runtime's kernels round
// them (TestRowQuantizeIsExact checks the results against the graph's).

// constValue is a folded tensor: float32 values (f) or integers (i, with
// their ONNX type).
type constValue struct {
	dt   int64
	dims []int64
	f    []float32
	i    []int32
}

// constOf reads an initializer as a constValue, for the types folded here.
func constOf(t initTensor) (constValue, bool) {
	v := constValue{dt: t.dt, dims: t.dims}
	switch t.dt {
	case dtUint8, dtInt8:
		ints, err := t.ints()
		if err != nil {
			return v, false
		}
		v.i = ints
	case dtFloat:
		n := 1
		for _, d := range t.dims {
			n *= int(d)
		}
		switch {
		case len(t.raw) == 4*n:
			v.f = make([]float32, n)
			for k := range v.f {
				v.f[k] = math.Float32frombits(binary.LittleEndian.Uint32(t.raw[4*k:]))
			}
		case len(t.floats) == n:
			v.f = t.floats
		default:
			return v, false
		}
	default:
		return v, false
	}
	return v, true
}

func (v constValue) size() int {
	n := 1
	for _, d := range v.dims {
		n *= int(d)
	}
	return n
}

// scalar returns a one-value float tensor's value.
func (v constValue) scalar() (float32, bool) {
	if len(v.f) == 1 {
		return v.f[0], true
	}
	return 0, false
}

// proto encodes a float32 or integer constant as an initializer.
func (v constValue) proto(name string) []byte {
	var raw []byte
	if v.f != nil {
		raw = make([]byte, 0, 4*len(v.f))
		for _, x := range v.f {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
		}
	} else {
		raw = make([]byte, len(v.i))
		for k, x := range v.i {
			raw[k] = byte(x)
		}
	}
	return tensorProto(name, v.dt, v.dims, raw)
}

// fold computes a node whose inputs are all constants, if it is one of the
// operations the weights' dequantization uses.
func fold(n onnxNode, in []constValue) (constValue, bool) {
	switch n.op {
	case "Cast":
		// int8/uint8 to float: exact.
		if to, ok := n.intAttr("to"); !ok || to != dtFloat || in[0].i == nil {
			return constValue{}, false
		}
		out := constValue{dt: dtFloat, dims: in[0].dims, f: make([]float32, len(in[0].i))}
		for k, x := range in[0].i {
			out.f[k] = float32(x)
		}
		return out, true
	case "Mul", "Add":
		// A float tensor and a float scalar, in either order.
		a, b := in[0], in[1]
		if _, ok := a.scalar(); ok && b.size() > 1 {
			a, b = b, a
		}
		s, ok := b.scalar()
		if !ok || a.f == nil {
			return constValue{}, false
		}
		out := constValue{dt: dtFloat, dims: a.dims, f: make([]float32, len(a.f))}
		for k, x := range a.f {
			// The conversions round each operation on its own: Go may
			// otherwise fuse a multiply and an add.
			if n.op == "Mul" {
				out.f[k] = float32(x * s)
			} else {
				out.f[k] = float32(x + s)
			}
		}
		return out, true
	case "Transpose":
		v := in[0]
		if len(v.dims) != 2 {
			return constValue{}, false
		}
		if perm, ok := n.intsAttr("perm"); ok && !(len(perm) == 2 && perm[0] == 1 && perm[1] == 0) {
			return constValue{}, false
		}
		r, c := int(v.dims[0]), int(v.dims[1])
		out := constValue{dt: v.dt, dims: []int64{int64(c), int64(r)}}
		if v.f != nil {
			out.f = make([]float32, len(v.f))
		} else {
			out.i = make([]int32, len(v.i))
		}
		for y := range r {
			for x := range c {
				if v.f != nil {
					out.f[x*r+y] = v.f[y*c+x]
				} else {
					out.i[x*r+y] = v.i[y*c+x]
				}
			}
		}
		return out, true
	case "DequantizeLinear":
		// Per tensor: (float)(int32(x) - zero point) × scale.
		if len(in) < 2 || in[0].i == nil {
			return constValue{}, false
		}
		s, ok := in[1].scalar()
		if !ok {
			return constValue{}, false
		}
		var zp int32
		if len(in) > 2 {
			if len(in[2].i) != 1 {
				return constValue{}, false
			}
			zp = in[2].i[0]
		}
		out := constValue{dt: dtFloat, dims: in[0].dims, f: make([]float32, len(in[0].i))}
		for k, x := range in[0].i {
			out.f[k] = float32(x-zp) * s
		}
		return out, true
	}
	return constValue{}, false
}

// foldConstants folds the nodes of one graph whose inputs are constants
// (initializers of this graph or an enclosing one, or folded before) and
// whose operation fold knows. The folded values that other nodes read (in
// this graph or below it) become initializers of the main graph; the
// folded nodes go.
func (rw *rewriter) foldConstants(nodes []onnxNode, outputs map[string]bool) ([]onnxNode, error) {
	folded := map[string]constValue{}
	value := func(name string) (constValue, bool) {
		if v, ok := folded[name]; ok {
			return v, true
		}
		if t, ok := rw.inits[name]; ok {
			return constOf(t)
		}
		return constValue{}, false
	}
	var kept []onnxNode
	for _, n := range nodes {
		ok := len(n.outputs) == 1 && !outputs[n.outputs[0]] && len(n.inputs) > 0
		var in []constValue
		for _, name := range n.inputs {
			if !ok {
				break
			}
			var v constValue
			v, ok = value(name)
			in = append(in, v)
		}
		if ok {
			// The decoder's two branches fold the same weights: once.
			key := n.key()
			v, done := rw.memo[key]
			if !done {
				v, ok = fold(n, in)
			}
			if ok {
				rw.memo[key] = v
				folded[n.outputs[0]] = v
				continue
			}
		}
		kept = append(kept, n)
	}
	read := map[string]bool{}
	for _, n := range kept {
		for _, in := range n.inputs {
			read[in] = true
		}
		for _, f := range n.raw {
			if f.num == nodeAttr {
				if err := rw.readBelow(f.data, read); err != nil {
					return nil, err
				}
			}
		}
	}
	for name, v := range folded {
		if !read[name] {
			continue
		}
		if prev, ok := rw.foldedValues[name]; ok {
			// Both branches of the decoder fold the same weights: one copy.
			if !sameValue(prev, v) {
				return nil, fmt.Errorf("two values folded into %s", name)
			}
			continue
		}
		if rw.have[name] {
			return nil, fmt.Errorf("folded value %s: the name is taken", name)
		}
		rw.have[name] = true
		rw.foldedValues[name] = v
		rw.added = append(rw.added, v.proto(name))
		rw.folds++
	}
	return kept, nil
}

func sameValue(a, b constValue) bool {
	if len(a.f) > 0 && len(b.f) > 0 && &a.f[0] == &b.f[0] || len(a.i) > 0 && len(b.i) > 0 && &a.i[0] == &b.i[0] {
		return true // one value, memoized
	}
	if a.dt != b.dt || len(a.f) != len(b.f) || len(a.i) != len(b.i) {
		return false
	}
	for k := range a.f {
		if math.Float32bits(a.f[k]) != math.Float32bits(b.f[k]) {
			return false
		}
	}
	for k := range a.i {
		if a.i[k] != b.i[k] {
			return false
		}
	}
	return true
}

// readBelow adds the inputs of the nodes in an attribute's graphs (and
// theirs, recursively) to read.
func (rw *rewriter) readBelow(attr []byte, read map[string]bool) error {
	af, err := parseFields(attr)
	if err != nil {
		return err
	}
	for _, a := range af {
		if a.num != attrG && a.num != attrGraphs {
			continue
		}
		gf, err := parseFields(a.data)
		if err != nil {
			return err
		}
		for _, g := range gf {
			if g.num != graphNode {
				continue
			}
			n, err := parseNode(g.data)
			if err != nil {
				return err
			}
			for _, in := range n.inputs {
				read[in] = true
			}
			for _, f := range n.raw {
				if f.num == nodeAttr {
					if err := rw.readBelow(f.data, read); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}
