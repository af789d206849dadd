package redact

import (
	"strings"
	"testing"

	"github.com/callscribe/callscribe/word"
)

func redactText(s string, p Policy, open bool) string {
	f := strings.Fields(s)
	words := make([]word.Word, len(f))
	for i, w := range f {
		words[i] = word.Word{Text: w, StartMs: int64(i * 100), EndMs: int64(i*100 + 90)}
	}
	out, _ := Apply(words, Find(f, p, open))
	return word.Join(out)
}

const card16 = "FOUR ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE ONE"

func TestRedact(t *testing.T) {
	pci, ssn := Policy{PCI: true}, Policy{SSN: true}
	both := Policy{PCI: true, SSN: true}
	for _, c := range []struct {
		in   string
		p    Policy
		open bool
		want string
	}{
		{"MY CARD IS " + card16 + " THANKS", pci, false, "MY CARD IS [CARD] THANKS"},
		// Recognition's ways of writing digits.
		{"IT IS FOUR FOR ONE ONE TWO TO THREE THREE OH OH FIVE FIVE SIX SIX SEVEN SEVEN", pci, false, "IT IS [CARD]"},
		{"FIVE FIVE DOUBLE FOUR TRIPLE ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT", pci, false, "[CARD]"},
		{"FORTY ONE ELEVEN FORTY ONE ELEVEN FORTY ONE ELEVEN FORTY ONE ELEVEN", pci, false, "[CARD]"},
		// Expiry and security code near it go too.
		{card16 + " EXPIRES TWELVE TWENTY SIX AND THE CODE IS ONE TWO THREE", pci, false, "[CARD] EXPIRES [CARD] AND THE CODE IS [CARD]"},
		{"THE CODE IS ONE TWO THREE AND THE NUMBER " + card16, pci, false, "THE CODE IS [CARD] AND THE NUMBER [CARD]"},
		// Not a card: prices, extensions, counts, a phone number, in pci mode.
		{"IT COSTS TWENTY NINE DOLLARS", pci, false, "IT COSTS TWENTY NINE DOLLARS"},
		{"EXTENSION TWO OH FIVE PLEASE", pci, false, "EXTENSION TWO OH FIVE PLEASE"},
		{"I HAVE TWO KIDS FOR TWO YEARS", pci, false, "I HAVE TWO KIDS FOR TWO YEARS"},
		{"CALL FIVE FIVE FIVE ONE TWO THREE FOUR", pci, false, "CALL FIVE FIVE FIVE ONE TWO THREE FOUR"},
		{"ONE HUNDRED AND FIFTY DOLLARS", pci, false, "ONE HUNDRED AND FIFTY DOLLARS"},
		// Social security numbers.
		{"MY SOCIAL IS ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE", ssn, false, "MY SOCIAL IS [SSN]"},
		{"ONE TWO THREE DASH FOUR FIVE DASH SIX SEVEN EIGHT NINE", ssn, false, "[SSN]"},
		{"MY SOCIAL IS ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE", pci, false, "MY SOCIAL IS ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE"},
		{"SSN ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE AND CARD " + card16, both, false, "SSN [SSN] AND CARD [CARD]"},
		// Any long number.
		{"ORDER ONE TWO THREE FOUR SHIPPED", Policy{Numbers: 4}, false, "ORDER [NUMBER] SHIPPED"},
		{"ORDER ONE TWO THREE SHIPPED", Policy{Numbers: 4}, false, "ORDER ONE TWO THREE SHIPPED"},
		// A partial: digits still coming are hidden until they are judged.
		{"ORDER FOUR ONE ONE ONE ONE", pci, true, "ORDER [CARD]"},
		{"ORDER FOUR ONE ONE ONE ONE", pci, false, "ORDER FOUR ONE ONE ONE ONE"},
		// After "card" or "social security", every digit is the card's or
		// the SSN's, however recognition cut them up.
		{"MY CARD I'M VERY FIVE THREE HIGH ONE FOUR EIGHT LIARO THREE FOUR THREE SIX FOUR SIX AND ONE", pci, false,
			"MY CARD I'M VERY [CARD] AND [CARD]"},
		{"MY SOCIAL SECURE IN FIVE TO ONE FOUR EIGHT THREE SIX TO", ssn, false, "MY SOCIAL SECURE IN [SSN]"},
		{"FIVE THREE HIGH ONE FOUR EIGHT NINE THREE FOUR THREE SIX FOUR SIX TWO", pci, false, "[CARD]"},
		{"MY SOCIAL IS ONE TWO THREE FOUR", ssn, true, "MY SOCIAL IS [SSN]"},
		{"IT COSTS TWENTY NINE", pci, true, "IT COSTS TWENTY NINE"},
		// A sound-alike before the first digit is one ("FOR" for 4).
		{"MY NUMBER FOR FIVE THREE NINE", pci, true, "MY NUMBER [CARD]"},
		{"I WAITED FOR FIVE MINUTES", pci, false, "I WAITED FOR FIVE MINUTES"},
		// Numerals, as a second-pass recognizer writes them, and mixed forms.
		{"MY CARD IS 4539 1488 0343 6467", pci, false, "MY CARD IS [CARD]"},
		{"IT IS 4539-1488-0343-6467 EXPIRES 12/26", pci, false, "IT IS [CARD] EXPIRES [CARD]"},
		{"FOUR FIVE 39 1488 0343 SIX FOUR SIX SEVEN", pci, false, "[CARD]"},
		{"MY CARD IS 4,539,148 8034 36467", pci, false, "MY CARD IS [CARD]"},
		{"IT IS 4539–1488—0343 6467", pci, false, "IT IS [CARD]"},
		{"IT IS 4539-ABCD", pci, false, "IT IS 4539-ABCD"},
		{"IT COSTS $29.99 OR 30 DOLLARS", pci, false, "IT COSTS $29.99 OR 30 DOLLARS"},
		{"ORDER 1234 SHIPPED", Policy{Numbers: 4}, false, "ORDER [NUMBER] SHIPPED"},
		// Nothing asked: nothing done.
		{"MY CARD IS " + card16, Policy{}, false, "MY CARD IS " + card16},
	} {
		if got := redactText(c.in, c.p, c.open); got != c.want {
			t.Errorf("%q (%s, open %v):\n got %q\nwant %q", c.in, c.p.Kinds(), c.open, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	p, err := Parse(" PCI, ssn ,numbers:6")
	if err != nil || !p.PCI || !p.SSN || p.Numbers != 6 || p.Kinds() != "pci,ssn,numbers" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"cards", "numbers:1", "numbers:x", "pci;ssn"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m := (Policy{Numbers: 6}).Merge(Policy{PCI: true, Numbers: 4}); !m.PCI || m.Numbers != 4 {
		t.Errorf("merge %+v", m)
	}
}

// The marker takes the times of the span and the kinds are said.
func TestApplyTimes(t *testing.T) {
	f := strings.Fields("SSN ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE OK")
	words := make([]word.Word, len(f))
	for i, w := range f {
		words[i] = word.Word{Text: w, StartMs: int64(i * 100), EndMs: int64(i*100 + 90), Conf: 0.9}
	}
	out, kinds := Apply(words, Find(f, Policy{SSN: true}, false))
	if len(out) != 3 || out[1] != (word.Word{Text: SSNMarker, StartMs: 100, EndMs: 990}) || kinds != "ssn" {
		t.Errorf("%+v %q", out, kinds)
	}
}

func FuzzFind(f *testing.F) {
	f.Add("MY CARD IS "+card16, true)
	f.Add("DOUBLE TRIPLE FOR TO UM", false)
	f.Fuzz(func(t *testing.T, s string, open bool) {
		words := strings.Fields(strings.ToUpper(s))
		prev := 0
		for _, sp := range Find(words, Policy{PCI: true, SSN: true, Numbers: 4}, open) {
			if sp.From < prev || sp.To <= sp.From || sp.To > len(words) {
				t.Fatalf("bad span %+v of %d words", sp, len(words))
			}
			prev = sp.To
		}
	})
}

// A cue at the end of the previous utterance counts for the next one.
func TestFindAfter(t *testing.T) {
	prev := strings.Fields("MY SOCIAL SECURITY NUMBER IS")
	words := strings.Fields("ONE FOUR EIGHT THREE SIX TWO THANKS")
	sp := FindAfter(prev, words, Policy{SSN: true}, false)
	if len(sp) != 1 || sp[0] != (Span{0, 6, SSNMarker, SSN}) {
		t.Errorf("%+v", sp)
	}
	if sp := FindAfter(strings.Fields("I WENT HOME"), words, Policy{SSN: true}, false); len(sp) != 0 {
		t.Errorf("no cue: %+v", sp)
	}
}

// A digit run that may go on into the next utterance is pending while the
// policy would redact more of it than it does now.
func TestPending(t *testing.T) {
	pci, ssn := Policy{PCI: true}, Policy{SSN: true}
	for _, c := range []struct {
		prev, words string
		p           Policy
		from        int
		pending     bool
	}{
		{"", "FOUR FIVE THREE NINE", pci, 0, true},
		{"", "MY NUMBER IS FOUR FIVE THREE NINE UM", pci, 3, true},
		{"FOUR FIVE THREE NINE", "ONE FOUR EIGHT EIGHT", pci, 0, true},
		{"", "4539 1488", pci, 0, true},
		{"", "FOUR FIVE THREE NINE ONE FOUR EIGHT EIGHT ZERO THREE FOUR THREE", pci, 0, false}, // a card already
		{"", "FOUR FIVE THREE NINE AND THANKS", pci, 0, false},                                 // the run ended
		{"FOUR FIVE THREE NINE", "THANK YOU", pci, 0, false},
		{"", "MY CARD IS FOUR FIVE", pci, 0, false},                             // after a cue: redacted already
		{"", "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN", ssn, 0, false}, // longer than an SSN
		{"", "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE", Policy{Numbers: 30}, 0, true},
		{"", "THANK YOU", pci, 0, false},
		{"", "TWO", Policy{}, 0, false},
	} {
		from, pending := Pending(strings.Fields(c.prev), strings.Fields(c.words), c.p)
		if from != c.from || pending != c.pending {
			t.Errorf("%q after %q (%s): %d %v, want %d %v", c.words, c.prev, c.p.Kinds(), from, pending, c.from, c.pending)
		}
	}
}

func TestContinues(t *testing.T) {
	for in, want := range map[string]bool{"ONE FOUR": true, "4539": true, "UM SIX": true, "FOR EIGHT": true, "HIGH ONE": true,
		"AND ONE": false, "THANK YOU": false, "CODE ONE": false, "": true, "DOUBLE FIVE": true, "TWENTY": true} {
		if got := Continues(strings.Fields(in)); got != want {
			t.Errorf("Continues(%q) = %v", in, got)
		}
	}
}
