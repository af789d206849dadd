package media

// G.722 (ITU-T, 64 kbit/s mode): sub-band ADPCM, 16 kHz audio in 8-bit
// codewords, two samples per byte. No maintained Go decoder exists, so this
// one follows the Recommendation's blocks (INVQAL/INVQBL, LOGSCL/SCALEL,
// LOGSCH/SCALEH, the adaptive predictor of block 4, the receive QMF) and is
// tested against ffmpeg's decoder (testdata/*.g722). Note: RTP carries G.722
// with an 8000 Hz clock although it codes 16 kHz audio (RFC 3551).

var (
	g722QM2  = [4]int32{-7408, -1616, 7408, 1616}
	g722QM4  = [16]int32{0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0}
	g722QM6  = [64]int32{-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136}
	g722ILB  = [32]int32{2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008}
	g722WL   = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	g722RL42 = [16]int32{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	g722WH   = [3]int32{0, -214, 798}
	g722RH2  = [4]int32{2, 1, 2, 1}
	g722QMF  = [12]int32{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}
)

// g722Band is the ADPCM state of one sub-band.
type g722Band struct {
	s, sp, sz int32
	r, a, ap  [3]int32
	p         [3]int32
	d, b, bp  [7]int32
	sg        [7]int32
	nb, det   int32
}

type g722Decoder struct {
	band [2]g722Band
	x    [24]int32 // receive QMF delay line
}

func newG722Decoder() *g722Decoder {
	d := &g722Decoder{}
	d.band[0].det = 32
	d.band[1].det = 8
	return d
}

func (*g722Decoder) SampleRate() int { return 16000 }

func sat16(x int32) int32 {
	return max(-32768, min(32767, x))
}

// update is block 4: the adaptive predictor of a band after a quantized
// difference d.
func (b *g722Band) update(d int32) {
	b.d[0] = d
	b.r[0] = sat16(b.s + d)
	b.p[0] = sat16(b.sz + d)

	// UPPOL2
	for i := range 3 {
		b.sg[i] = b.p[i] >> 15
	}
	wd1 := sat16(b.a[1] << 2)
	wd2 := wd1
	if b.sg[0] == b.sg[1] {
		wd2 = -wd1
	}
	wd2 = min(wd2, 32767)
	wd3 := int32(-128)
	if b.sg[0] == b.sg[2] {
		wd3 = 128
	}
	wd3 += wd2 >> 7
	wd3 += (b.a[2] * 32512) >> 15
	b.ap[2] = max(-12288, min(12288, wd3))

	// UPPOL1
	b.sg[0] = b.p[0] >> 15
	b.sg[1] = b.p[1] >> 15
	wd1 = -192
	if b.sg[0] == b.sg[1] {
		wd1 = 192
	}
	wd2 = (b.a[1] * 32640) >> 15
	b.ap[1] = sat16(wd1 + wd2)
	wd3 = sat16(15360 - b.ap[2])
	b.ap[1] = max(-wd3, min(wd3, b.ap[1]))

	// UPZERO
	wd1 = 0
	if d != 0 {
		wd1 = 128
	}
	b.sg[0] = d >> 15
	for i := 1; i < 7; i++ {
		b.sg[i] = b.d[i] >> 15
		wd2 = -wd1
		if b.sg[i] == b.sg[0] {
			wd2 = wd1
		}
		wd3 = (b.b[i] * 32640) >> 15
		b.bp[i] = sat16(wd2 + wd3)
	}

	// DELAYA
	for i := 6; i > 0; i-- {
		b.d[i] = b.d[i-1]
		b.b[i] = b.bp[i]
	}
	for i := 2; i > 0; i-- {
		b.r[i] = b.r[i-1]
		b.p[i] = b.p[i-1]
		b.a[i] = b.ap[i]
	}

	// FILTEP
	wd1 = sat16(b.r[1] + b.r[1])
	wd1 = (b.a[1] * wd1) >> 15
	wd2 = sat16(b.r[2] + b.r[2])
	wd2 = (b.a[2] * wd2) >> 15
	b.sp = sat16(wd1 + wd2)

	// FILTEZ
	b.sz = 0
	for i := 6; i > 0; i-- {
		wd1 = sat16(b.d[i] + b.d[i])
		b.sz += (b.b[i] * wd1) >> 15
	}
	b.sz = sat16(b.sz)

	// PREDIC
	b.s = sat16(b.sp + b.sz)
}

// scale is blocks LOGSCL/SCALEL (low band) and LOGSCH/SCALEH (high band).
func (b *g722Band) scale(w int32, limit int32, shift int32) {
	nb := (b.nb*127)>>7 + w
	b.nb = max(0, min(limit, nb))
	wd1 := (b.nb >> 6) & 31
	wd2 := shift - (b.nb >> 11)
	var wd3 int32
	if wd2 < 0 {
		wd3 = g722ILB[wd1] << -wd2
	} else {
		wd3 = g722ILB[wd1] >> wd2
	}
	b.det = wd3 << 2
}

func (d *g722Decoder) Decode(dst []float32, payload []byte) ([]float32, error) {
	lo, hi := &d.band[0], &d.band[1]
	for _, code := range payload {
		ilr := int32(code & 0x3f)
		ih := int32(code >> 6)

		// Low band: 6-bit reconstruction, 4-bit adaptation.
		rlow := max(-16384, min(16383, lo.s+(lo.det*g722QM6[ilr])>>15))
		dlowt := (lo.det * g722QM4[ilr>>2]) >> 15
		lo.scale(g722WL[g722RL42[ilr>>2]], 18432, 8)
		lo.update(dlowt)

		// High band.
		dhigh := (hi.det * g722QM2[ih]) >> 15
		rhigh := max(-16384, min(16383, dhigh+hi.s))
		hi.scale(g722WH[g722RH2[ih]], 22528, 10)
		hi.update(dhigh)

		// Receive QMF: two output samples.
		copy(d.x[:22], d.x[2:])
		d.x[22] = rlow + rhigh
		d.x[23] = rlow - rhigh
		var x1, x2 int32
		for i := range 12 {
			x2 += d.x[2*i] * g722QMF[i]
			x1 += d.x[2*i+1] * g722QMF[11-i]
		}
		dst = append(dst, float32(sat16(x1>>11))/32768, float32(sat16(x2>>11))/32768)
	}
	return dst, nil
}
