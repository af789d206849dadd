package asr

import "testing"

func TestWordErrors(t *testing.T) {
	for _, c := range []struct {
		ref, hyp    string
		errs, words int
	}{
		{"a b c d", "a b c d", 0, 4},
		{"a b c d", "A X c d", 1, 4}, // case ignored; one substitution
		{"a b c d", "a c d", 1, 4},   // a deletion
		{"a b", "a b c d", 2, 2},     // two insertions
		{"a b c d", "", 4, 4},
		{"", "x", 1, 0},
		{"the cat sat", "cat sat the", 2, 3},
	} {
		if e, n := WordErrors(c.ref, c.hyp); e != c.errs || n != c.words {
			t.Errorf("WordErrors(%q, %q) = %d, %d; want %d, %d", c.ref, c.hyp, e, n, c.errs, c.words)
		}
	}
}
