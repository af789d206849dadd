package moonshine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/callscribe/callscribe/asr"
)

// ErrModel is wrapped by every error about model files that cannot be used.
var ErrModel = errors.New("moonshine: unusable model")

// Files names a model's files. Empty names are found in Dir under the names
// of a Moonshine ONNX export (and of scripts/setup's directories).
type Files struct {
	Dir     string
	Encoder string // default: encoder_model.onnx
	Decoder string // default: decoder_model_merged.onnx
	Tokens  string // default: tokens.txt (id TAB piece, one per line)
}

// Resolve fills in missing names from Dir and checks the files exist.
func (f Files) Resolve() (Files, error) {
	pick := func(name, def string) (string, error) {
		if name == "" {
			name = def
		}
		if !filepath.IsAbs(name) && f.Dir != "" && !strings.ContainsRune(name, os.PathSeparator) {
			name = filepath.Join(f.Dir, name)
		}
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: %v", ErrModel, err)
		}
		return name, nil
	}
	var err error
	out := f
	if out.Encoder, err = pick(f.Encoder, "encoder_model.onnx"); err != nil {
		return f, err
	}
	if out.Decoder, err = pick(f.Decoder, "decoder_model_merged.onnx"); err != nil {
		return f, err
	}
	if out.Tokens, err = pick(f.Tokens, "tokens.txt"); err != nil {
		return f, err
	}
	return out, nil
}

// Vocab turns token ids into text: SentencePiece pieces, "▁" for a space,
// <0xNN> for a byte of UTF-8.
type Vocab struct {
	pieces [][]byte // the bytes each id stands for; nil: special, skipped
}

// Special ids of the Llama vocabulary Moonshine uses.
const (
	tokenUnknown = 0
	tokenStart   = 1 // <s>: the decoder's first input
	tokenEnd     = 2 // </s>: the end of a segment's text
)

// ReadVocab reads a tokens file: "id TAB piece" lines, ids from 0 in order.
// Lines are split on \n only: some pieces end in a carriage return.
func ReadVocab(path string) (*Vocab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	lines := bytes.Split(b, []byte("\n"))
	v := &Vocab{pieces: make([][]byte, len(lines))}
	for i, line := range lines {
		id, piece, ok := bytes.Cut(line, []byte("\t"))
		if n, err := strconv.Atoi(string(id)); !ok || err != nil || n != i {
			return nil, fmt.Errorf("%w: %s line %d: want \"%d<TAB>piece\"", ErrModel, path, i+1, i)
		}
		v.pieces[i] = pieceBytes(string(piece))
	}
	if len(v.pieces) <= tokenEnd {
		return nil, fmt.Errorf("%w: %s: %d tokens", ErrModel, path, len(v.pieces))
	}
	v.pieces[tokenUnknown], v.pieces[tokenStart], v.pieces[tokenEnd] = nil, nil, nil
	return v, nil
}

// pieceBytes is what a piece contributes to the text's UTF-8.
func pieceBytes(p string) []byte {
	if len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' {
		if n, err := strconv.ParseUint(p[3:5], 16, 8); err == nil {
			return []byte{byte(n)}
		}
	}
	return []byte(p)
}

// Len is the number of pieces.
func (v *Vocab) Len() int { return len(v.pieces) }

// Decode joins the pieces of ids (special and unknown ids skipped) as
// llama-tokenizer-js decodes: bytes that do not form UTF-8 become U+FFFD,
// "▁" a space, and the space SentencePiece puts before the first word is
// dropped.
func (v *Vocab) Decode(ids []int64) string {
	var b []byte
	for _, id := range ids {
		if id >= 0 && id < int64(len(v.pieces)) {
			b = append(b, v.pieces[id]...)
		}
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimPrefix(strings.ReplaceAll(s, "▁", " "), " ")
}

// Words splits the text of ids into its words, a word starting at each
// piece that starts with "▁", each with the mean of its tokens' probs.
// Joined by spaces their texts are Decode's text (but for the spaces of a
// piece made of spaces only, which make no word).
func (v *Vocab) Words(ids []int64, probs []float32) []Word {
	var out []Word
	from := 0
	flush := func(to int) {
		if text := strings.TrimSpace(v.Decode(ids[from:to])); text != "" {
			var c float32
			for _, p := range probs[from:to] {
				c += p
			}
			out = append(out, Word{Text: text, Conf: c / float32(to-from)})
		}
		from = to
	}
	for i, id := range ids {
		if i > from && id >= 0 && id < int64(len(v.pieces)) && bytes.HasPrefix(v.pieces[id], []byte("▁")) {
			flush(i)
		}
	}
	flush(len(ids))
	return out
}

// Model names that FindModel knows: the directories scripts/setup keeps.
var modelNames = map[string]string{"moonshine-tiny": "tiny", "moonshine-base": "base"}

// FindModel returns the directory of a model: for "moonshine-tiny" and
// "moonshine-base" the one scripts/setup keeps (.cache/moonshine/<size>
// next to the executable's parent directory, else in the working directory
// or one above it, else $XDG_CACHE_HOME/callscribe/moonshine/<size>); any
// other name is a directory holding the files of a Moonshine export (Files).
func FindModel(name string) (string, error) {
	size, ok := modelNames[name]
	if !ok {
		if st, err := os.Stat(name); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%w: %q is neither moonshine-tiny, moonshine-base nor a model directory", ErrModel, name)
		}
		return name, nil
	}
	const probe = "decoder_model_merged.onnx"
	var extra []string
	if c, err := os.UserCacheDir(); err == nil {
		extra = append(extra, filepath.Join(c, "callscribe", "moonshine", size, probe))
	}
	if p, ok := asr.FindInCache(filepath.Join(".cache", "moonshine", size, probe), extra...); ok {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("%w: %s not found (run `make setup`, scripts/setup, to fetch it)", ErrModel, name)
}
