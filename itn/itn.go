// Package itn formats recognized English words for people to read
// (inverse text normalization, by rules): numbers, digit strings, money,
// percentages, clock times, ordinals, spelled letters, sentence case.
//
// The recognizer writes what was said, in upper case: "I OWE TWO HUNDRED
// AND FIFTY DOLLARS ON CARD FOUR ONE ONE ONE". Format turns it into
// "I owe $250 on card 4111", keeping for each formatted token the words
// (and so the times) it came from.
package itn

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/callscribe/callscribe/word"
)

// Format formats words; the tokens joined by spaces are the display text.
// The list is never nil (empty for no words).
func Format(words []word.Word) []word.Token {
	up := make([]string, len(words))
	for i, w := range words {
		up[i] = strings.ToUpper(w.Text)
	}
	out := make([]word.Token, 0, len(words))
	emit := func(text string, from, to int) {
		out = append(out, word.Token{Text: text, From: from, To: to, StartMs: words[from].StartMs, EndMs: words[to-1].EndMs})
	}
	for i := 0; i < len(up); {
		if text, n := match(up, i); n > 0 {
			emit(text, i, i+n)
			i += n
			continue
		}
		emit(plainWord(up, i), i, i+1)
		i++
	}
	sentenceCase(out)
	return out
}

// Text joins tokens into the display text.
func Text(tokens []word.Token) string {
	parts := make([]string, len(tokens))
	for i, t := range tokens {
		parts[i] = t.Text
	}
	return strings.Join(parts, " ")
}

// match tries the rules at word i, longest-reaching first; n is how many
// words the result stands for (0: none applies).
func match(w []string, i int) (string, int) {
	if s, n := clockTime(w, i); n > 0 {
		return s, n
	}
	if s, n := money(w, i); n > 0 {
		return s, n
	}
	if s, n := digitString(w, i); n > 0 {
		if j := i + n; j < len(w) && w[j] == "PERCENT" {
			return s + "%", n + 1
		}
		return s, n
	}
	if v, n, ord := number(w, i); n > 0 {
		if ord != "" {
			if n == 1 && v < 10 { // "first", "second": words in prose
				return "", 0
			}
			return strconv.FormatInt(v, 10) + ord, n
		}
		if j := i + n; j < len(w) && w[j] == "PERCENT" {
			return strconv.FormatInt(v, 10) + "%", n + 1
		}
		if n == 1 && v < 10 && !(i+1 < len(w) && unitAfter(w[i+1])) {
			return "", 0 // "one", "two" in prose stay words
		}
		return group(v), n
	}
	if s, n := letters(w, i); n > 0 {
		return s, n
	}
	return "", 0
}

// unitAfter tells words after which a small number is written in digits.
func unitAfter(w string) bool {
	switch w {
	case "PERCENT", "DOLLARS", "DOLLAR", "CENTS", "MINUTES", "HOURS", "DAYS", "WEEKS", "MONTHS", "YEARS", "AM", "PM":
		return true
	}
	return false
}

// group writes a cardinal with thousands separators from 10,000 up.
func group(v int64) string {
	s := strconv.FormatInt(v, 10)
	if v < 10000 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// suffix is the English ordinal suffix of v.
func suffix(v int64) string {
	if v%100 >= 11 && v%100 <= 13 {
		return "th"
	}
	switch v % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// number reads a cardinal (or an ordinal: ord is its suffix) at i: "TWO
// HUNDRED AND FIFTY", "ONE THOUSAND NINE HUNDRED", "TWENTY THIRD". n is 0
// when none starts there. "AND" is taken only between a hundred and what
// follows it.
func number(w []string, i int) (v int64, n int, ord string) {
	var total, cur int64
	j := i
	seen := false
	last := "" // the kind of the last word: unit, ten, hundred, scale
	for j < len(w) {
		x := w[j]
		c, isNum := word.Cardinal(x)
		if isNum && c < 20 && (last == "" || last == "ten" && c < 10 && c > 0 || last == "hundred" || last == "scale") {
			cur += c // ZERO to NINETEEN
			last, seen, j = "unit", true, j+1
			if c >= 10 {
				last = "teen"
			}
			continue
		}
		if isNum && c >= 20 && c < 100 && (last == "" || last == "hundred" || last == "scale") {
			cur += c // TWENTY to NINETY
			last, seen, j = "ten", true, j+1
			continue
		}
		if isNum && c == 100 && seen && (last == "unit" || last == "teen" || last == "ten") && cur < 100 && cur > 0 {
			cur *= 100
			last, j = "hundred", j+1
			if j+1 < len(w) && w[j] == "AND" {
				if a, ok := word.Cardinal(w[j+1]); ok && a > 0 && a < 100 {
					j++ // "two hundred and fifty"
				}
			}
			continue
		}
		if isNum && c > 100 && seen && last != "scale" && cur > 0 {
			total += cur * c // THOUSAND, MILLION, BILLION
			cur, last, j = 0, "scale", j+1
			continue
		}
		o, isOrd := word.Ordinal(x)
		if isOrd && o < 20 && (last == "" || last == "ten" && o < 10 || last == "hundred" || last == "scale") {
			v = total + cur + o
			return v, j + 1 - i, suffix(v)
		}
		if isOrd && o >= 20 && (last == "" || last == "hundred" || last == "scale" || o >= 100 && seen) {
			if o >= 100 {
				v = total + max(cur, 1)*o // HUNDREDTH, THOUSANDTH
			} else {
				v = total + cur + o
			}
			return v, j + 1 - i, suffix(v)
		}
		break
	}
	if !seen {
		return 0, 0, ""
	}
	return total + cur, j - i, ""
}

// digitString reads a run of spoken digits ("FOUR ONE ONE ONE", "DOUBLE
// FIVE", "OH"): at least three digits, or two for a run that is not a
// number ("ONE TWO"), and never starting with OH alone.
func digitString(w []string, i int) (string, int) {
	var b []byte
	j := i
	for j < len(w) {
		if k, ok := word.Repeat(w[j]); ok && j+1 < len(w) {
			if d, ok := word.Digit(w[j+1]); ok {
				for range k {
					b = append(b, byte('0'+d))
				}
				j += 2
				continue
			}
		}
		d, ok := word.Digit(w[j])
		if !ok {
			break
		}
		b = append(b, byte('0'+d))
		j++
	}
	if len(b) < 2 || w[i] == "OH" && j-i < 3 {
		return "", 0
	}
	return string(b), j - i
}

var currencies = map[string]string{"DOLLAR": "$", "DOLLARS": "$", "POUND": "£", "POUNDS": "£", "EURO": "€", "EUROS": "€"}

// money reads "<number> DOLLARS [AND <number> CENTS]" and "<number>
// CENTS".
func money(w []string, i int) (string, int) {
	v, n, ord := number(w, i)
	if n == 0 || ord != "" || i+n >= len(w) {
		return "", 0
	}
	j := i + n
	if w[j] == "CENTS" || w[j] == "CENT" {
		if v >= 100 {
			return "", 0
		}
		return "$0." + twoDigits(v), n + 1
	}
	sym, ok := currencies[w[j]]
	if !ok {
		return "", 0
	}
	j++
	s := sym + group(v)
	if j+2 < len(w) && w[j] == "AND" {
		if c, m, o := number(w, j+1); m > 0 && o == "" && c < 100 && j+1+m < len(w) && (w[j+1+m] == "CENTS" || w[j+1+m] == "CENT" || w[j+1+m] == "PENCE") {
			return s + "." + twoDigits(c), j + 1 + m + 1 - i
		}
	}
	return s, j - i
}

func twoDigits(v int64) string {
	if v < 10 {
		return "0" + strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10)
}

// clockTime reads "<hour> O'CLOCK", "<hour> <minutes> AM|PM|A M|P M",
// "<hour> AM|PM", "<hour> OH <digit> [AM|PM]".
func clockTime(w []string, i int) (string, int) {
	h, n, ord := number(w, i)
	if n != 1 || ord != "" || h < 1 || h > 12 {
		return "", 0
	}
	j := i + 1
	if j < len(w) && w[j] == "O'CLOCK" {
		return strconv.FormatInt(h, 10) + ":00", 2
	}
	var minutes int64 = -1
	if j+1 < len(w) && w[j] == "OH" {
		if d, ok := word.Digit(w[j+1]); ok && d != 0 {
			minutes, j = int64(d), j+2
		}
	} else if m, k, o := number(w, j); k > 0 && o == "" && m >= 10 && m < 60 {
		minutes, j = m, j+k
	}
	mer, k := meridiem(w, j)
	if k == 0 {
		if minutes < 0 {
			return "", 0
		}
		return "", 0 // "ten thirty" without am/pm is not surely a time
	}
	s := strconv.FormatInt(h, 10)
	if minutes >= 0 {
		s += ":" + twoDigits(minutes)
	}
	return s + " " + mer, j + k - i
}

// meridiem reads AM or PM, spoken as one word or as letters.
func meridiem(w []string, j int) (string, int) {
	if j < len(w) {
		switch w[j] {
		case "AM":
			return "AM", 1
		case "PM":
			return "PM", 1
		}
	}
	if j+1 < len(w) && (w[j] == "A" || w[j] == "P") && w[j+1] == "M" {
		return w[j] + "M", 2
	}
	return "", 0
}

// letters joins spelled letters: a run of three or more single letters, or
// two that are not the words A and I ("A B C" → "ABC", "J K" → "JK").
func letters(w []string, i int) (string, int) {
	j := i
	for j < len(w) && len(w[j]) == 1 && w[j][0] >= 'A' && w[j][0] <= 'Z' {
		j++
	}
	n := j - i
	if n >= 3 || n == 2 && w[i] != "A" && w[i] != "I" && w[i+1] != "A" && w[i+1] != "I" {
		return strings.Join(w[i:j], ""), n
	}
	return "", 0
}

var proper = map[string]bool{"MONDAY": true, "TUESDAY": true, "WEDNESDAY": true, "THURSDAY": true, "FRIDAY": true,
	"SATURDAY": true, "SUNDAY": true, "JANUARY": true, "FEBRUARY": true, "MARCH": true, "APRIL": true, "JUNE": true,
	"JULY": true, "AUGUST": true, "SEPTEMBER": true, "OCTOBER": true, "NOVEMBER": true, "DECEMBER": true, "I": true,
	"I'M": true, "I'VE": true, "I'LL": true, "I'D": true, "OK": true}

// plainWord is a word no rule took: lower case, but for names of days and
// months, "I" and its contractions, and acronyms ("OK").
func plainWord(w []string, i int) string {
	x := w[i]
	if strings.HasPrefix(x, "[") { // a marker ([CARD]) stays as it is
		return x
	}
	if proper[x] {
		if x == "OK" {
			return "OK"
		}
		r := []rune(strings.ToLower(x))
		r[0] = unicode.ToUpper(r[0])
		return string(r)
	}
	return strings.ToLower(x)
}

// sentenceCase capitalizes the first token (a marker stays as it is).
func sentenceCase(out []word.Token) {
	if len(out) == 0 {
		return
	}
	r := []rune(out[0].Text)
	if len(r) > 0 && unicode.IsLower(r[0]) {
		r[0] = unicode.ToUpper(r[0])
		out[0].Text = string(r)
	}
}
