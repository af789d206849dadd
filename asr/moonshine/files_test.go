package moonshine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestVocabDecode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.txt")
	// Pieces as in the Llama vocabulary: specials, bytes, "▁" words, and a
	// piece that ends in a carriage return.
	os.WriteFile(path, []byte("0\t<unk>\n1\t<s>\n2\t</s>\n3\t<0xE2>\n4\t<0x82>\n5\t<0xAC>\n6\t▁Dial\n7\t▁\n8\t2\n9\t▁now\n10\t.\n11\t;\r\n12\t<0xFF>\n"), 0o644)
	v, err := ReadVocab(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ids  []int64
		want string
	}{
		{[]int64{6, 7, 8, 9, 10}, "Dial 2 now."},
		{[]int64{1, 6, 0, 9, 2, 99, -1}, "Dial now"}, // special and unknown ids skipped
		{[]int64{7, 3, 4, 5, 8}, "€2"},               // bytes make UTF-8; the first space goes
		{[]int64{7, 7, 6}, "  Dial"},                 // only one leading space goes
		{[]int64{11, 12, 8}, ";\r\uFFFD2"},           // a lone byte is not UTF-8
		{nil, ""},
	} {
		if got := v.Decode(tc.ids); got != tc.want {
			t.Errorf("Decode(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
	os.WriteFile(path, []byte("0\t<unk>\n2\t</s>\n"), 0o644)
	if _, err := ReadVocab(path); !errors.Is(err, ErrModel) {
		t.Errorf("ids out of order: %v", err)
	}
}

// The tokens scripts/setup converted: the 32,000 pieces of the Llama
// vocabulary, "▁" at 29871.
func TestSetupTokens(t *testing.T) {
	v, err := ReadVocab(filepath.Join(modelDir("tiny"), "tokens.txt"))
	if err != nil {
		t.Fatalf("%v (run scripts/setup)", err)
	}
	if v.Len() != 32000 || string(v.pieces[29871]) != "▁" || string(v.pieces[3]) != "\x00" {
		t.Fatalf("%d pieces, 29871 %q, 3 %q", v.Len(), v.pieces[29871], v.pieces[3])
	}
	if got := v.Decode([]int64{1, 360, 616, 29871, 29906, 1286, 29889}); got != "Dial 2 now." {
		t.Errorf("decode: %q", got)
	}
}

func TestFilesResolve(t *testing.T) {
	if _, err := (Files{Dir: t.TempDir()}).Resolve(); !errors.Is(err, ErrModel) {
		t.Errorf("empty directory: %v", err)
	}
	f, err := (Files{Dir: modelDir("base")}).Resolve()
	if err != nil || filepath.Base(f.Decoder) != "decoder_model_merged.onnx" {
		t.Errorf("%+v, %v", f, err)
	}
}

func TestFindModel(t *testing.T) {
	dir, err := FindModel("moonshine-tiny")
	if err != nil || filepath.Base(dir) != "tiny" {
		t.Errorf("moonshine-tiny: %q, %v", dir, err)
	}
	if dir, err := FindModel(t.TempDir()); err != nil || dir == "" {
		t.Errorf("a directory: %q, %v", dir, err)
	}
	for _, name := range []string{"moonshine-huge", "none", ""} {
		if _, err := FindModel(name); !errors.Is(err, ErrModel) {
			t.Errorf("%q: %v", name, err)
		}
	}
}
