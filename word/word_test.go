package word

import (
	"encoding/json"
	"testing"
)

// The JSON shapes are the wire format's: a final's "words" with conf (0
// for a marker), its "display_words" without conf or word indexes.
func TestJSON(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{[]Word{{Text: "FIVE", StartMs: 10, EndMs: 90, Conf: 0.75}, {Text: "[CARD]", StartMs: 100, EndMs: 900}},
			`[{"word":"FIVE","start_ms":10,"end_ms":90,"conf":0.75},{"word":"[CARD]","start_ms":100,"end_ms":900,"conf":0}]`},
		{[]Token{{Text: "$250", StartMs: 10, EndMs: 900, From: 2, To: 7}},
			`[{"word":"$250","start_ms":10,"end_ms":900}]`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("got %s (%v), want %s", b, err, c.want)
		}
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct {
		words []Word
		want  string
	}{{nil, ""}, {[]Word{{Text: "A"}}, "A"}, {[]Word{{Text: "MY"}, {Text: "[CARD]"}, {Text: "OK"}}, "MY [CARD] OK"}} {
		if got := Join(c.words); got != c.want {
			t.Errorf("Join(%v) = %q, want %q", c.words, got, c.want)
		}
	}
}

func TestNumbers(t *testing.T) {
	type got struct {
		v  int64
		ok bool
	}
	num := func(v int64, ok bool) got { return got{v, ok} }
	dig := func(v int, ok bool) got { return got{int64(v), ok} }
	for _, c := range []struct {
		name      string
		got, want got
	}{
		{"Cardinal ZERO", num(Cardinal("ZERO")), got{0, true}},
		{"Cardinal NINETEEN", num(Cardinal("NINETEEN")), got{19, true}},
		{"Cardinal NINETY", num(Cardinal("NINETY")), got{90, true}},
		{"Cardinal HUNDRED", num(Cardinal("HUNDRED")), got{100, true}},
		{"Cardinal BILLION", num(Cardinal("BILLION")), got{1_000_000_000, true}},
		{"Cardinal OH", num(Cardinal("OH")), got{}},
		{"Cardinal FIRST", num(Cardinal("FIRST")), got{}},
		{"Cardinal four", num(Cardinal("four")), got{}}, // upper case only
		{"Ordinal TWELFTH", num(Ordinal("TWELFTH")), got{12, true}},
		{"Ordinal THOUSANDTH", num(Ordinal("THOUSANDTH")), got{1000, true}},
		{"Ordinal TWELVE", num(Ordinal("TWELVE")), got{}},
		{"Digit OH", dig(Digit("OH")), got{0, true}},
		{"Digit NINE", dig(Digit("NINE")), got{9, true}},
		{"Digit TEN", dig(Digit("TEN")), got{}},
		{"Digit FOR", dig(Digit("FOR")), got{}},
		{"SoundAlike FOR", dig(SoundAlike("FOR")), got{4, true}},
		{"SoundAlike TREE", dig(SoundAlike("TREE")), got{3, true}},
		{"SoundAlike FOUR", dig(SoundAlike("FOUR")), got{}},
		{"Repeat TRIPLE", dig(Repeat("TRIPLE")), got{3, true}},
		{"Repeat DOUBLE", dig(Repeat("DOUBLE")), got{2, true}},
		{"Repeat TWICE", dig(Repeat("TWICE")), got{}},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
