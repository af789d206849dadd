package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/callscribe/callscribe/asr"
)

// Scoring for transcribe -ref: word error rates of texts written in
// different forms. The first pass writes spoken words in upper case
// ("DIAL TWO NOW"), Moonshine cased and punctuated text with numerals
// ("Dial 2 now."), references either; all are brought to one form first.

// readRefs reads reference texts: "NAME TEXT" lines (a tab or a space
// after the name), NAME a file's path as given or its base name.
func readRefs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		name, text, ok := strings.Cut(strings.TrimRight(line, "\r"), "\t")
		if !ok {
			name, text, _ = strings.Cut(line, " ")
		}
		if name = strings.TrimSpace(name); name != "" {
			refs[name] = strings.TrimSpace(text)
		}
	}
	return refs, nil
}

func refFor(refs map[string]string, file string) (string, bool) {
	if r, ok := refs[file]; ok {
		return r, true
	}
	r, ok := refs[filepath.Base(file)]
	return r, ok
}

// wordScore sums word errors over files, of the first pass and of the text
// printed (the second pass's, when there is one).
type wordScore struct {
	files, words, first, final int
}

func (s *wordScore) add(ref, first, final string) {
	r := asr.ScoringText(ref)
	e1, n := asr.WordErrors(r, asr.ScoringText(first))
	e2, _ := asr.WordErrors(r, asr.ScoringText(final))
	s.files++
	s.words += n
	s.first += e1
	s.final += e2
}

func (s wordScore) report(w io.Writer, model string) {
	pct := func(e int) float64 { return 100 * float64(e) / float64(max(s.words, 1)) }
	fmt.Fprintf(w, "WER %.1f%% (%d errors in %d words of %d files)", pct(s.final), s.final, s.words, s.files)
	if model != "" && model != "none" {
		fmt.Fprintf(w, "; first pass alone %.1f%% (%d errors)", pct(s.first), s.first)
	}
	fmt.Fprintln(w)
}
