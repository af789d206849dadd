package asr

import (
	"regexp"
	"strconv"
	"strings"
)

// Scoring texts written in different forms: the first pass writes spoken
// words in upper case ("DIAL TWO NOW"), a second pass (Moonshine) cased
// and punctuated text with numerals ("Dial 2 now."), references either;
// ScoringText brings each to one form before WordErrors counts.

var (
	reScoreDrop    = regexp.MustCompile(`[^a-z0-9'. ]+`)
	reScoreThou    = regexp.MustCompile(`(\d),(\d{3})`)
	reScoreDollar  = regexp.MustCompile(`\$(\d+(?:\.\d+)?)`)
	reScoreDecimal = regexp.MustCompile(`^(\d+)\.(\d+)$`)
	reScoreNumber  = regexp.MustCompile(`^(\d+)(st|nd|rd|th)?$`)
)

// contractions are expanded before scoring, so that "I'm" scores as "I am".
var contractions = strings.NewReplacer(
	"i'm", "i am", "you're", "you are", "we're", "we are", "they're", "they are",
	"that's", "that is", "it's", "it is", "there's", "there is", "what's", "what is",
	"can't", "cannot", "won't", "will not", "n't", " not", "i'll", "i will", "you'll", "you will",
	"we'll", "we will", "i've", "i have", "you've", "you have", "we've", "we have", "let's", "let us",
	"i'd", "i would", "you'd", "you would")

// ScoringText brings a text to lower-case words for scoring: punctuation
// and hyphens out, contractions expanded, "#" and "*" as said on a phone
// (pound, star), numerals as words ("2" two, "250" two hundred fifty,
// "28.8" twenty eight point eight, "$5" five dollars, "1st" first).
func ScoringText(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer("a.m.", "am", "p.m.", "pm", "’", "'", "%", " percent ", "&", " and ",
		"#", " pound ", "*", " star ", "-", " ").Replace(s)
	s = reScoreThou.ReplaceAllString(s, "$1$2")
	s = reScoreDollar.ReplaceAllString(s, "$1 dollars")
	s = contractions.Replace(reScoreDrop.ReplaceAllString(s, " "))
	var out []string
	for _, w := range strings.Fields(s) {
		w = strings.Trim(w, ".'")
		if m := reScoreDecimal.FindStringSubmatch(w); m != nil {
			out = append(out, numberWords(m[1])...)
			out = append(out, "point")
			for _, d := range m[2] {
				out = append(out, ones[d-'0'])
			}
			continue
		}
		if m := reScoreNumber.FindStringSubmatch(w); m != nil {
			words := numberWords(m[1])
			if m[2] != "" {
				words[len(words)-1] = ordinal(words[len(words)-1])
			}
			out = append(out, words...)
			continue
		}
		for _, p := range strings.Split(strings.ReplaceAll(w, "'", ""), ".") {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return strings.Join(out, " ")
}

var (
	ones = strings.Fields("zero one two three four five six seven eight nine ten eleven twelve thirteen " +
		"fourteen fifteen sixteen seventeen eighteen nineteen")
	tens = strings.Fields("_ _ twenty thirty forty fifty sixty seventy eighty ninety")
)

// numberWords says a string of digits as a cardinal number (digit by digit
// past the millions).
func numberWords(digits string) []string {
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n >= 1e9 {
		var out []string
		for _, d := range digits {
			out = append(out, ones[d-'0'])
		}
		return out
	}
	var say func(n int64) []string
	say = func(n int64) []string {
		switch {
		case n < 20:
			return []string{ones[n]}
		case n < 100:
			if n%10 == 0 {
				return []string{tens[n/10]}
			}
			return []string{tens[n/10], ones[n%10]}
		}
		var out []string
		for _, u := range []struct {
			n    int64
			word string
		}{{1e6, "million"}, {1e3, "thousand"}, {100, "hundred"}} {
			if n >= u.n {
				out = append(append(out, say(n/u.n)...), u.word)
				if n %= u.n; n == 0 {
					return out
				}
			}
		}
		return append(out, say(n)...)
	}
	return say(n)
}

func ordinal(w string) string {
	switch w {
	case "one":
		return "first"
	case "two":
		return "second"
	case "three":
		return "third"
	case "five":
		return "fifth"
	case "eight":
		return "eighth"
	case "nine":
		return "ninth"
	case "twelve":
		return "twelfth"
	}
	if strings.HasSuffix(w, "y") {
		return strings.TrimSuffix(w, "y") + "ieth"
	}
	return w + "th"
}
