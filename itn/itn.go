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
)

// Word is a recognized word and where it was said.
type Word struct {
	Text    string
	StartMs int64
	EndMs   int64
}

// Token is a formatted token: its text and the words [From, To) it stands
// for, whose times it takes.
type Token struct {
	Text     string
	From, To int
	StartMs  int64
	EndMs    int64
}

// Format formats words; the tokens joined by spaces are the display text.
func Format(words []Word) []Token {
	up := make([]string, len(words))
	for i, w := range words {
		up[i] = strings.ToUpper(w.Text)
	}
	var out []Token
	emit := func(text string, from, to int) {
		out = append(out, Token{Text: text, From: from, To: to, StartMs: words[from].StartMs, EndMs: words[to-1].EndMs})
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
func Text(tokens []Token) string {
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

var units = map[string]int64{"ZERO": 0, "ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5, "SIX": 6, "SEVEN": 7, "EIGHT": 8,
	"NINE": 9, "TEN": 10, "ELEVEN": 11, "TWELVE": 12, "THIRTEEN": 13, "FOURTEEN": 14, "FIFTEEN": 15, "SIXTEEN": 16,
	"SEVENTEEN": 17, "EIGHTEEN": 18, "NINETEEN": 19}

var tens = map[string]int64{"TWENTY": 20, "THIRTY": 30, "FORTY": 40, "FIFTY": 50, "SIXTY": 60, "SEVENTY": 70, "EIGHTY": 80, "NINETY": 90}

var scales = map[string]int64{"THOUSAND": 1_000, "MILLION": 1_000_000, "BILLION": 1_000_000_000}

var ordinalUnits = map[string]int64{"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "FIFTH": 5, "SIXTH": 6, "SEVENTH": 7,
	"EIGHTH": 8, "NINTH": 9, "TENTH": 10, "ELEVENTH": 11, "TWELFTH": 12, "THIRTEENTH": 13, "FOURTEENTH": 14,
	"FIFTEENTH": 15, "SIXTEENTH": 16, "SEVENTEENTH": 17, "EIGHTEENTH": 18, "NINETEENTH": 19}

var ordinalTens = map[string]int64{"TWENTIETH": 20, "THIRTIETH": 30, "FORTIETH": 40, "FIFTIETH": 50, "SIXTIETH": 60,
	"SEVENTIETH": 70, "EIGHTIETH": 80, "NINETIETH": 90, "HUNDREDTH": 100, "THOUSANDTH": 1000}

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
		if u, ok := units[x]; ok && (last == "" || last == "ten" && u < 10 && u > 0 || last == "hundred" || last == "scale") {
			cur += u
			last, seen, j = "unit", true, j+1
			if u >= 10 {
				last = "teen"
			}
			continue
		}
		if t, ok := tens[x]; ok && (last == "" || last == "hundred" || last == "scale") {
			cur += t
			last, seen, j = "ten", true, j+1
			continue
		}
		if x == "HUNDRED" && seen && (last == "unit" || last == "teen" || last == "ten") && cur < 100 && cur > 0 {
			cur *= 100
			last, j = "hundred", j+1
			if j+1 < len(w) && w[j] == "AND" && (units[w[j+1]] > 0 || tens[w[j+1]] > 0) {
				j++ // "two hundred and fifty"
			}
			continue
		}
		if s, ok := scales[x]; ok && seen && last != "scale" && cur > 0 {
			total += cur * s
			cur, last, j = 0, "scale", j+1
			continue
		}
		if u, ok := ordinalUnits[x]; ok && (last == "" || last == "ten" && u < 10 || last == "hundred" || last == "scale") {
			v = total + cur + u
			return v, j + 1 - i, suffix(v)
		}
		if t, ok := ordinalTens[x]; ok && (last == "" || last == "hundred" || last == "scale" || t >= 100 && seen) {
			if t >= 100 {
				v = total + max(cur, 1)*t
			} else {
				v = total + cur + t
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

// digitWord is a spoken digit: the digits and OH for zero.
func digitWord(x string) (byte, bool) {
	switch x {
	case "OH":
		return '0', true
	}
	if u, ok := units[x]; ok && u < 10 {
		return byte('0' + u), true
	}
	return 0, false
}

// digitString reads a run of spoken digits ("FOUR ONE ONE ONE", "DOUBLE
// FIVE", "OH"): at least three digits, or two for a run that is not a
// number ("ONE TWO"), and never starting with OH alone.
func digitString(w []string, i int) (string, int) {
	var b []byte
	j := i
	for j < len(w) {
		if (w[j] == "DOUBLE" || w[j] == "TRIPLE") && j+1 < len(w) {
			if d, ok := digitWord(w[j+1]); ok {
				k := 2
				if w[j] == "TRIPLE" {
					k = 3
				}
				for range k {
					b = append(b, d)
				}
				j += 2
				continue
			}
		}
		d, ok := digitWord(w[j])
		if !ok {
			break
		}
		b = append(b, d)
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
		if d, ok := digitWord(w[j+1]); ok && d != '0' {
			minutes, j = int64(d-'0'), j+2
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
func sentenceCase(out []Token) {
	if len(out) == 0 {
		return
	}
	r := []rune(out[0].Text)
	if len(r) > 0 && unicode.IsLower(r[0]) {
		r[0] = unicode.ToUpper(r[0])
		out[0].Text = string(r)
	}
}
