// Package redact finds what must not be written down in recognized words
// — card numbers with their expiry dates and security codes, social
// security numbers, long numbers — and replaces it with a marker.
//
// It works on the words as the recognizer writes them: digits spoken one
// by one ("FOUR ONE ONE ONE"), with "OH" for zero and "FOR" or "TO" for
// four and two inside a run, "DOUBLE FIVE", and numbers spoken in tens
// ("TWELVE TWENTY SIX"). A card number is any run of 12 to 19 digits —
// recognition errors break Luhn sums, so a valid sum is not required —
// and the short digit groups around it (expiry, CVV) go with it.
package redact

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/callscribe/callscribe/word"
)

// Kinds of redaction.
const (
	PCI     = "pci"     // card numbers, with expiry dates and security codes near them
	SSN     = "ssn"     // US social security numbers: nine digits
	Numbers = "numbers" // any run of MinDigits digits or more
)

// Markers put in place of what is redacted.
const (
	CardMarker   = "[CARD]"
	SSNMarker    = "[SSN]"
	NumberMarker = "[NUMBER]"
)

// Policy is what a call redacts.
type Policy struct {
	PCI, SSN bool
	// Numbers > 0 redacts every run of that many digits or more.
	Numbers int
}

// DefaultNumbers is the run length "numbers" redacts from.
const DefaultNumbers = 4

// On tells whether the policy redacts anything.
func (p Policy) On() bool { return p.PCI || p.SSN || p.Numbers > 0 }

// Kinds lists what the policy redacts ("pci,ssn").
func (p Policy) Kinds() string {
	var k []string
	if p.PCI {
		k = append(k, PCI)
	}
	if p.SSN {
		k = append(k, SSN)
	}
	if p.Numbers > 0 {
		k = append(k, Numbers)
	}
	return strings.Join(k, ",")
}

// Parse reads a list of kinds: "pci, ssn", "numbers" or "numbers:6".
func Parse(list string) (Policy, error) {
	var p Policy
	for _, k := range strings.Split(list, ",") {
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case k == "":
		case k == PCI:
			p.PCI = true
		case k == SSN:
			p.SSN = true
		case k == Numbers:
			p.Numbers = DefaultNumbers
		case strings.HasPrefix(k, Numbers+":"):
			n, err := strconv.Atoi(k[len(Numbers)+1:])
			if err != nil || n < 2 || n > 30 {
				return Policy{}, fmt.Errorf("redact: %q: want numbers:N with N from 2 to 30", k)
			}
			p.Numbers = n
		default:
			return Policy{}, fmt.Errorf("redact: %q: want pci, ssn or numbers[:N]", k)
		}
	}
	return p, nil
}

// Merge is the union of two policies (a call's own adds to the configured).
func (p Policy) Merge(o Policy) Policy {
	p.PCI, p.SSN = p.PCI || o.PCI, p.SSN || o.SSN
	if o.Numbers > 0 && (p.Numbers == 0 || o.Numbers < p.Numbers) {
		p.Numbers = o.Numbers
	}
	return p
}

// run is a span of words [from, to) spelling digits.
type run struct {
	from, to int
	digits   int
}

// digitWord tells a digit said ("FIVE", "OH").
func digitWord(w string) bool {
	_, ok := word.Digit(w)
	return ok
}

// soundAlike tells a word recognition writes for a digit ("FOR", "TO"):
// one inside a run ("four for one", "two to").
func soundAlike(w string) bool {
	_, ok := word.SoundAlike(w)
	return ok
}

// twoDigits tells a number word written with two digits: TEN to NINETY.
func twoDigits(w string) bool {
	v, ok := word.Cardinal(w)
	return ok && v >= 10 && v < 100
}

// fillers may sit between the digit groups of one number.
var fillers = map[string]bool{"UM": true, "UH": true, "ER": true, "AH": true, "DASH": true, "HYPHEN": true}

// digits is how many digits a word spells by itself: 1 for a digit said
// ("FIVE", "OH"), the count of a numeral's digits ("4539", "4539-1488",
// "4,539", "12/26", "39." as a second-pass recognizer writes them; a
// separator between digits: - / , or a dash), else 0.
func digits(w string) int {
	if digitWord(w) {
		return 1
	}
	w = strings.NewReplacer("\u2013", "-", "\u2014", "-", "\u2012", "-").Replace(strings.TrimRight(w, ".,;:!?"))
	n := 0
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c >= '0' && c <= '9':
			n++
		case (c == '-' || c == '/' || c == ',') && i > 0 && i < len(w)-1 && isDigit(w[i-1]) && isDigit(w[i+1]):
		default:
			return 0
		}
	}
	return n
}

// runs finds the digit runs of words: where they are and how many digits
// they spell. A run ends on a true digit word and starts on one, or on a
// sound-alike right before one; sound-alikes and fillers count only inside.
func runs(words []string) []run {
	var out []run
	i := 0
	for i < len(words) {
		// A sound-alike right before a digit starts the run ("FOR FIVE THREE
		// NINE" is four digits).
		leads := soundAlike(words[i]) && i+1 < len(words) && digits(words[i+1]) > 0
		if _, repeat := word.Repeat(words[i]); digits(words[i]) == 0 && !twoDigits(words[i]) && !repeat && !leads {
			i++
			continue
		}
		r := run{from: i}
		j, end := i, i
		for j < len(words) {
			w := words[j]
			repeat, isRepeat := word.Repeat(w)
			v, isNum := word.Cardinal(w)
			switch {
			case isRepeat:
				if j+1 < len(words) && digitWord(words[j+1]) {
					r.digits += repeat
					j += 2
					end = j
					continue
				}
			case digits(w) > 0:
				r.digits += digits(w)
				j++
				end = j
				continue
			case twoDigits(w):
				// "TWENTY SIX" is two digits, not three.
				if v >= 20 && j+1 < len(words) {
					if d, ok := word.Digit(words[j+1]); ok && d > 0 {
						r.digits += 2
						j += 2
						end = j
						continue
					}
				}
				r.digits += 2
				j++
				end = j
				continue
			case isNum && v == 100:
				r.digits++ // "FIVE HUNDRED" is three digits
				j++
				end = j
				continue
			case soundAlike(w) || fillers[w]:
				// Counts only if the run goes on after it.
				if j+1 < len(words) && (digits(words[j+1]) > 0 || twoDigits(words[j+1])) {
					if soundAlike(w) {
						r.digits++
					}
					j++
					continue
				}
			}
			break
		}
		r.to = end
		if r.digits > 0 {
			out = append(out, r)
		}
		i = max(end, i+1)
	}
	return out
}

// Span is a redacted range of words [From, To) and its marker.
type Span struct {
	From, To int
	Marker   string
	Kind     string
}

// FindAfter is Find for words that follow prev (the end of the previous
// utterance of the same speaker): cues there count ("...my social security
// number is" then a pause, then the digits).
func FindAfter(prev, words []string, p Policy, open bool) []Span {
	if len(prev) == 0 {
		return Find(words, p, open)
	}
	all := append(append(make([]string, 0, len(prev)+len(words)), prev...), words...)
	var out []Span
	for _, sp := range Find(all, p, open) {
		if sp.To <= len(prev) {
			continue
		}
		sp.From, sp.To = max(sp.From, len(prev))-len(prev), sp.To-len(prev)
		out = append(out, sp)
	}
	return out
}

// Find returns the spans p redacts in words (upper case), in order. When
// open is true the last words may still grow (a partial result): a digit
// run reaching the end of the words that could still become a card or an
// SSN is redacted now, so no partial shows its first digits.
func Find(words []string, p Policy, open bool) []Span {
	if !p.On() {
		return nil
	}
	rs := bridge(words, runs(words))
	var spans []Span
	cards := make([]bool, len(rs))
	for k, r := range rs {
		// Digits said right after "card", "expires", "security code" are the
		// card's, however recognition cut them up; after "social security",
		// the SSN's.
		if p.PCI && after(words, r.from, pciWords, 30) {
			cards[k] = true
			spans = append(spans, Span{r.from, r.to, CardMarker, PCI})
			continue
		}
		if p.SSN && after(words, r.from, ssnWords, 20) {
			spans = append(spans, Span{r.from, r.to, SSNMarker, SSN})
			continue
		}
		tail := open && r.to == len(words)
		switch {
		case p.PCI && (r.digits >= 12 && r.digits <= 19 || tail && r.digits >= 4 && r.digits < 12):
			cards[k] = true
			spans = append(spans, Span{r.from, r.to, CardMarker, PCI})
		case p.SSN && (r.digits == 9 || tail && r.digits >= 3 && r.digits < 9):
			spans = append(spans, Span{r.from, r.to, SSNMarker, SSN})
		case p.Numbers > 0 && (r.digits >= p.Numbers || tail && r.digits >= min(p.Numbers, 3)):
			spans = append(spans, Span{r.from, r.to, NumberMarker, Numbers})
		}
	}
	if p.PCI {
		// Expiry dates and security codes near a card number: digit groups
		// of 3 to 4 digits within 25 words after it (or before it).
		for k, r := range rs {
			if cards[k] || r.digits < 3 || r.digits > 4 {
				continue
			}
			for c := range rs {
				if cards[c] && (r.from >= rs[c].to && r.from-rs[c].to <= 25 || rs[c].from >= r.to && rs[c].from-r.to <= 25) {
					if !covered(spans, r.from) {
						spans = append(spans, Span{r.from, r.to, CardMarker, PCI})
					}
					break
				}
			}
		}
	}
	// In the words after a cue, a digit word alone, or a word recognition
	// writes for one ("FOR", "FREE"), is the card's or the SSN's too.
	for i, w := range words {
		if covered(spans, i) || digits(w) == 0 && !twoDigits(w) && !soundAlike(w) {
			continue
		}
		switch {
		case p.PCI && after(words, i, pciWords, 30):
			spans = append(spans, Span{i, i + 1, CardMarker, PCI})
		case p.SSN && after(words, i, ssnWords, 20):
			spans = append(spans, Span{i, i + 1, SSNMarker, SSN})
		}
	}
	slices.SortFunc(spans, func(a, b Span) int { return a.From - b.From })
	// Adjacent spans of one kind are one.
	var out []Span
	for _, sp := range spans {
		if n := len(out); n > 0 && out[n-1].To == sp.From && out[n-1].Kind == sp.Kind {
			out[n-1].To = sp.To
			continue
		}
		out = append(out, sp)
	}
	return out
}

// Pending tells whether words (upper case, after prev, the words already
// written before them) end in a digit run that p does not redact yet but
// would if it went on: a card number read in groups, one utterance each
// ("FOUR FIVE THREE NINE", pause, "ONE FOUR EIGHT EIGHT", ...). from is
// where the run starts in words (0 when it began in prev). Fillers and
// sound-alikes after the run's last digit do not end it.
func Pending(prev, words []string, p Policy) (from int, pending bool) {
	if !p.On() || len(words) == 0 {
		return 0, false
	}
	all := append(append(make([]string, 0, len(prev)+len(words)), prev...), words...)
	rs := bridge(all, runs(all))
	if len(rs) == 0 {
		return 0, false
	}
	r := rs[len(rs)-1]
	for _, w := range all[r.to:] {
		if !fillers[w] && !soundAlike(w) {
			return 0, false
		}
	}
	if r.to <= len(prev) || covered(Find(all, p, false), r.to-1) {
		return 0, false
	}
	grows := p.PCI && r.digits < 12 || p.SSN && r.digits < 9 || p.Numbers > 0 && r.digits < p.Numbers
	return max(r.from-len(prev), 0), grows
}

// Continues tells whether words (upper case, the start of an utterance)
// may go on with a digit run before them: a digit word or numeral first,
// or second after one stray word (recognition turns a digit into a word
// now and then), or a filler or sound-alike first.
func Continues(words []string) bool {
	digit := func(w string) bool {
		_, repeat := word.Repeat(w)
		return digits(w) > 0 || twoDigits(w) || repeat
	}
	if len(words) == 0 {
		return true
	}
	w := words[0]
	return digit(w) || fillers[w] || soundAlike(w) ||
		len(words) > 1 && digit(words[1]) && !apart[w] && !pciWords[w] && !ssnWords[w]
}

// Words that announce a card number and its details, or an SSN.
var (
	pciWords = map[string]bool{"CARD": true, "CREDIT": true, "DEBIT": true, "VISA": true, "MASTERCARD": true, "AMEX": true,
		"EXPIRES": true, "EXPIRY": true, "EXPIRATION": true, "CVV": true, "CVC": true, "SECURITY": true, "CODE": true}
	ssnWords = map[string]bool{"SOCIAL": true, "SSN": true}
)

// after tells whether one of cue is among the within words before i.
func after(words []string, i int, cue map[string]bool, within int) bool {
	for j := i - 1; j >= 0 && j >= i-within; j-- {
		if cue[words[j]] {
			return true
		}
	}
	return false
}

// apart are words that separate two numbers ("four five and six seven").
var apart = map[string]bool{"AND": true, "IS": true, "THE": true, "OR": true, "THEN": true, "A": true, "MY": true, "CODE": true}

// bridge joins digit runs separated by a single other word (recognition
// turns a digit into a word now and then: "FIVE THREE HIGH ONE FOUR").
func bridge(words []string, rs []run) []run {
	var out []run
	for _, r := range rs {
		if n := len(out); n > 0 && r.from-out[n-1].to == 1 && !fillers[words[out[n-1].to]] && !apart[words[out[n-1].to]] &&
			!pciWords[words[out[n-1].to]] && !ssnWords[words[out[n-1].to]] {
			out[n-1].to, out[n-1].digits = r.to, out[n-1].digits+r.digits
			continue
		}
		out = append(out, r)
	}
	return out
}

func covered(spans []Span, i int) bool {
	for _, s := range spans {
		if i >= s.From && i < s.To {
			return true
		}
	}
	return false
}

// Apply replaces each span of words with its marker word, which takes the
// times of the span (and no confidence: 0). It returns the words and the
// kinds redacted ("pci,ssn"; empty: none).
func Apply(words []word.Word, spans []Span) ([]word.Word, string) {
	if len(spans) == 0 {
		return words, ""
	}
	var out []word.Word
	var kinds []string
	i := 0
	for _, s := range spans {
		out = append(out, words[i:s.From]...)
		out = append(out, word.Word{Text: s.Marker, StartMs: words[s.From].StartMs, EndMs: words[s.To-1].EndMs})
		if !slices.Contains(kinds, s.Kind) {
			kinds = append(kinds, s.Kind)
		}
		i = s.To
	}
	out = append(out, words[i:]...)
	return out, strings.Join(kinds, ",")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
