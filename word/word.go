// Package word holds a recognized word and a display token (their times and JSON shapes) and the
// English number words with their values; no rules: formatting is in itn, redaction in redact.
package word

import "strings"

// Word is one recognized word: its text (upper case, as the model writes
// it; a redaction marker such as "[CARD]"), when it was said (ms on its
// stream's clock, or on the call's once the gateway moved it there) and
// the recognizer's confidence (mean token posterior, 0..1; 0 for a
// marker). Its JSON is an element of a final's "words".
type Word struct {
	Text    string  `json:"word"`
	StartMs int64   `json:"start_ms"`
	EndMs   int64   `json:"end_ms"`
	Conf    float32 `json:"conf"`
}

// Token is a word as displayed for people ("$250", "4111", "Monday"): it
// stands for the recognized words [From, To) and takes their times. Its
// JSON is an element of a final's "display_words": no confidence, and the
// indexes stay out.
type Token struct {
	Text     string `json:"word"`
	StartMs  int64  `json:"start_ms"`
	EndMs    int64  `json:"end_ms"`
	From, To int    `json:"-"`
}

// Join is the words' text separated by single spaces.
func Join(words []Word) string {
	n := max(len(words)-1, 0)
	for _, w := range words {
		n += len(w.Text)
	}
	var b strings.Builder
	b.Grow(n)
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.Text)
	}
	return b.String()
}
