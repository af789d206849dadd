package moonshine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A minimal reader and writer of protocol buffers' wire format and of the
// ONNX messages, enough to edit a model's graph: a message is a list of
// fields kept in order, nested messages parsed on demand, everything else
// carried as it came.

var errWire = errors.New("malformed protobuf")

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// field is one field of a message: its number, wire type and value (the
// varint, or the raw bytes of the other types).
type field struct {
	num  int
	typ  int
	v    uint64
	data []byte
}

func readVarint(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, errWire
	}
	return v, n, nil
}

// parseFields splits a message into its fields.
func parseFields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		tag, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{num: int(tag >> 3), typ: int(tag & 7)}
		switch f.typ {
		case wireVarint:
			if f.v, n, err = readVarint(b); err != nil {
				return nil, err
			}
			b = b[n:]
		case wireFixed64, wireFixed32:
			size := 8
			if f.typ == wireFixed32 {
				size = 4
			}
			if len(b) < size {
				return nil, errWire
			}
			f.data, b = b[:size], b[size:]
		case wireBytes:
			l, n, err := readVarint(b)
			if err != nil || uint64(len(b)-n) < l {
				return nil, errWire
			}
			f.data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, fmt.Errorf("%w: wire type %d", errWire, f.typ)
		}
		out = append(out, f)
	}
	return out, nil
}

// appendFields writes fields back in order.
func appendFields(b []byte, fs []field) []byte {
	for _, f := range fs {
		b = binary.AppendUvarint(b, uint64(f.num)<<3|uint64(f.typ))
		switch f.typ {
		case wireVarint:
			b = binary.AppendUvarint(b, f.v)
		case wireBytes:
			b = binary.AppendUvarint(b, uint64(len(f.data)))
			b = append(b, f.data...)
		default:
			b = append(b, f.data...)
		}
	}
	return b
}

func bytesField(num int, data []byte) field { return field{num: num, typ: wireBytes, data: data} }
func stringField(num int, s string) field   { return bytesField(num, []byte(s)) }
func varintField(num int, v int64) field    { return field{num: num, typ: wireVarint, v: uint64(v)} }

// ONNX protobuf field numbers and enums used here.
const (
	modelOpset     = 8
	modelGraph     = 7
	opsetDomain    = 1
	opsetVersion   = 2
	graphNode      = 1
	graphInit      = 5
	graphOutput    = 12
	graphValueInfo = 13
	valueInfoName  = 1
	nodeInput      = 1
	nodeOutput     = 2
	nodeName       = 3
	nodeOp         = 4
	nodeAttr       = 5
	nodeDomain     = 7
	attrName       = 1
	attrI          = 3
	attrT          = 5
	attrG          = 6
	attrInts       = 8
	attrGraphs     = 11
	attrType       = 20
	tensorDims     = 1
	tensorDataType = 2
	tensorFloats   = 4
	tensorInt32    = 5
	tensorName     = 8
	tensorRaw      = 9

	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeInts   = 7

	dtFloat = 1
	dtUint8 = 2
	dtInt8  = 3
	dtInt32 = 6
	dtInt64 = 7
)

// onnxNode is a node with the fields the rewrite reads; raw keeps the rest.
type onnxNode struct {
	op, domain, name string
	inputs, outputs  []string
	raw              []field
}

func parseNode(b []byte) (onnxNode, error) {
	fs, err := parseFields(b)
	if err != nil {
		return onnxNode{}, err
	}
	n := onnxNode{raw: fs}
	for _, f := range fs {
		switch f.num {
		case nodeOp:
			n.op = string(f.data)
		case nodeDomain:
			n.domain = string(f.data)
		case nodeName:
			n.name = string(f.data)
		case nodeInput:
			n.inputs = append(n.inputs, string(f.data))
		case nodeOutput:
			n.outputs = append(n.outputs, string(f.data))
		}
	}
	return n, nil
}

// intAttr returns an INT attribute's value.
func (n onnxNode) intAttr(name string) (int64, bool) {
	for _, a := range n.attrs(name) {
		if a.num == attrI {
			return int64(a.v), true
		}
	}
	return 0, false
}

// intsAttr returns an INTS attribute's values.
func (n onnxNode) intsAttr(name string) ([]int64, bool) {
	var out []int64
	found := false
	for _, a := range n.attrs(name) {
		if a.num != attrInts {
			continue
		}
		found = true
		if a.typ == wireVarint {
			out = append(out, int64(a.v))
			continue
		}
		for p := a.data; len(p) > 0; {
			v, k, err := readVarint(p)
			if err != nil {
				return nil, false
			}
			out, p = append(out, int64(v)), p[k:]
		}
	}
	return out, found
}

// attrs returns the fields of the attribute called name.
func (n onnxNode) attrs(name string) []field {
	for _, f := range n.raw {
		if f.num != nodeAttr {
			continue
		}
		af, err := parseFields(f.data)
		if err != nil {
			return nil
		}
		for _, a := range af {
			if a.num == attrName && string(a.data) == name {
				return af
			}
		}
	}
	return nil
}

// key identifies what a node computes: its operation, inputs and attributes.
func (n onnxNode) key() string {
	var b []byte
	b = append(b, n.domain+"\x00"+n.op+"\x00"...)
	for _, in := range n.inputs {
		b = append(b, in+"\x00"...)
	}
	for _, f := range n.raw {
		if f.num == nodeAttr {
			b = appendFields(b, []field{f})
		}
	}
	return string(b)
}

// encode writes the node with its (possibly changed) inputs and outputs.
func (n onnxNode) encode() []byte {
	var fs []field
	for _, in := range n.inputs {
		fs = append(fs, stringField(nodeInput, in))
	}
	for _, out := range n.outputs {
		fs = append(fs, stringField(nodeOutput, out))
	}
	for _, f := range n.raw {
		if f.num != nodeInput && f.num != nodeOutput {
			fs = append(fs, f)
		}
	}
	return appendFields(nil, fs)
}

// newNode makes a node of the default domain.
func newNode(op, name string, inputs, outputs []string, attrs ...[]byte) onnxNode {
	n := onnxNode{op: op, name: name, inputs: inputs, outputs: outputs}
	n.raw = append(n.raw, stringField(nodeName, name), stringField(nodeOp, op))
	for _, a := range attrs {
		n.raw = append(n.raw, bytesField(nodeAttr, a))
	}
	return n
}

func attrInt(name string, v int64) []byte {
	return appendFields(nil, []field{stringField(attrName, name), varintField(attrType, attrTypeInt), varintField(attrI, v)})
}

func attrIntList(name string, vs ...int64) []byte {
	fs := []field{stringField(attrName, name), varintField(attrType, attrTypeInts)}
	for _, v := range vs {
		fs = append(fs, varintField(attrInts, v))
	}
	return appendFields(nil, fs)
}

func attrTensor(name string, t []byte) []byte {
	return appendFields(nil, []field{stringField(attrName, name), varintField(attrType, attrTypeTensor), bytesField(attrT, t)})
}

// tensorProto makes a constant tensor from little-endian raw data.
func tensorProto(name string, dt int64, dims []int64, raw []byte) []byte {
	var fs []field
	for _, d := range dims {
		fs = append(fs, varintField(tensorDims, d))
	}
	fs = append(fs, varintField(tensorDataType, dt))
	if name != "" {
		fs = append(fs, stringField(tensorName, name))
	}
	fs = append(fs, bytesField(tensorRaw, raw))
	return appendFields(nil, fs)
}

func floatRaw(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }

func int64Raw(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// initTensor is an initializer's type, shape and data.
type initTensor struct {
	dt     int64
	dims   []int64
	raw    []byte    // raw_data
	i32    []int64   // int32_data (how small integer types may be stored instead)
	floats []float32 // float_data
}

func parseTensor(b []byte) (name string, t initTensor, err error) {
	fs, err := parseFields(b)
	if err != nil {
		return "", t, err
	}
	for _, f := range fs {
		switch f.num {
		case tensorName:
			name = string(f.data)
		case tensorDataType:
			t.dt = int64(f.v)
		case tensorRaw:
			t.raw = f.data
		case tensorFloats:
			if f.typ == wireFixed32 {
				t.floats = append(t.floats, math.Float32frombits(binary.LittleEndian.Uint32(f.data)))
				continue
			}
			for p := f.data; len(p) >= 4; p = p[4:] {
				t.floats = append(t.floats, math.Float32frombits(binary.LittleEndian.Uint32(p)))
			}
		case tensorDims, tensorInt32:
			var vs []int64
			if f.typ == wireVarint {
				vs = []int64{int64(f.v)}
			} else {
				for p := f.data; len(p) > 0; {
					v, n, err := readVarint(p)
					if err != nil {
						return "", t, err
					}
					vs, p = append(vs, int64(v)), p[n:]
				}
			}
			if f.num == tensorDims {
				t.dims = append(t.dims, vs...)
			} else {
				t.i32 = append(t.i32, vs...)
			}
		}
	}
	return name, t, nil
}

// ints returns a uint8 or int8 tensor's values.
func (t initTensor) ints() ([]int32, error) {
	n := 1
	for _, d := range t.dims {
		n *= int(d)
	}
	if t.dt != dtUint8 && t.dt != dtInt8 {
		return nil, fmt.Errorf("data type %d, want uint8 or int8", t.dt)
	}
	out := make([]int32, n)
	switch {
	case len(t.raw) == n && t.dt == dtUint8:
		for i, b := range t.raw {
			out[i] = int32(b)
		}
	case len(t.raw) == n:
		for i, b := range t.raw {
			out[i] = int32(int8(b))
		}
	case len(t.i32) == n:
		for i, v := range t.i32 {
			if t.dt == dtUint8 {
				out[i] = int32(uint8(v))
			} else {
				out[i] = int32(int8(v))
			}
		}
	default:
		return nil, fmt.Errorf("%d values for shape %v", max(len(t.raw), len(t.i32)), t.dims)
	}
	return out, nil
}
