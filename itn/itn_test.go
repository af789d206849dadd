package itn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/callscribe/callscribe/word"
)

func words(s string) []word.Word {
	var out []word.Word
	for i, f := range strings.Fields(s) {
		out = append(out, word.Word{Text: f, StartMs: int64(100 * i), EndMs: int64(100*i + 80)})
	}
	return out
}

func format(s string) string { return Text(Format(words(s))) }

var cases = []struct{ in, want string }{
	// Prose stays words, in sentence case.
	{"HELLO HOW ARE YOU", "Hello how are you"},
	{"I THINK I'M FINE", "I think I'm fine"},
	{"ONE OF THEM SAID NO", "One of them said no"},
	{"THE FIRST TIME AND THE SECOND", "The first time and the second"},
	{"CALL ME ON MONDAY OR FRIDAY", "Call me on Monday or Friday"},
	{"IN MARCH AND APRIL", "In March and April"},
	{"THAT IS OK", "That is OK"},
	{"A DOG AND A CAT", "A dog and a cat"},
	{"", ""},
	// Cardinals.
	{"TEN", "10"},
	{"TWENTY ONE", "21"},
	{"TWO HUNDRED AND FIFTY", "250"},
	{"TWO HUNDRED FIFTY", "250"},
	{"ONE THOUSAND TWO HUNDRED", "1200"},
	{"TWO THOUSAND TWENTY FOUR", "2024"},
	{"FORTY FIVE THOUSAND", "45,000"},
	{"THREE MILLION FIVE HUNDRED THOUSAND", "3,500,000"},
	{"I OWE TWO HUNDRED AND FIFTY DOLLARS ON CARD FOUR ONE ONE ONE", "I owe $250 on card 4111"},
	{"WE HAVE ELEVEN ITEMS", "We have 11 items"},
	{"FIVE MINUTES", "5 minutes"},
	{"THREE YEARS AGO", "3 years ago"},
	{"ONE HUNDRED AND TEN AND FIVE", "110 and five"},
	// Digit strings.
	{"MY ACCOUNT NUMBER IS FOUR FIVE SIX SEVEN EIGHT NINE", "My account number is 456789"},
	{"FOUR ONE ONE ONE ONE ONE ONE ONE", "41111111"},
	{"EXTENSION TWO OH FIVE", "Extension 205"},
	{"DOUBLE FIVE SEVEN", "557"},
	{"TRIPLE SEVEN", "777"},
	{"ONE TWO", "12"},
	{"OH NO", "Oh no"},
	{"OH OH SEVEN", "007"},
	{"ZERO", "Zero"},
	// Money.
	{"FIVE DOLLARS", "$5"},
	{"ONE DOLLAR", "$1"},
	{"TWENTY DOLLARS AND FIFTY CENTS", "$20.50"},
	{"TEN DOLLARS AND FIVE CENTS", "$10.05"},
	{"NINETY NINE CENTS", "$0.99"},
	{"FIFTY POUNDS", "£50"},
	{"TWELVE THOUSAND EUROS", "€12,000"},
	{"THE BALANCE IS ZERO DOLLARS", "The balance is $0"},
	// Percentages.
	{"FIFTY PERCENT", "50%"},
	{"FIVE PERCENT OFF", "5% off"},
	{"ONE HUNDRED PERCENT", "100%"},
	{"NINE NINE PERCENT", "99%"},
	// Times.
	{"THREE O'CLOCK", "3:00"},
	{"TEN THIRTY A M", "10:30 AM"},
	{"TEN THIRTY AM", "10:30 AM"},
	{"SEVEN PM", "7 PM"},
	{"NINE OH FIVE P M", "9:05 PM"},
	{"AT ELEVEN FORTY FIVE PM", "At 11:45 PM"},
	{"TEN THIRTY", "10 30"}, // a time or a price: left as said
	// Ordinals.
	{"THE TWENTY THIRD OF MAY", "The 23rd of may"},
	{"MARCH TWENTY FIRST", "March 21st"},
	{"THE ELEVENTH", "The 11th"},
	{"THE TWELFTH FLOOR", "The 12th floor"},
	{"THE ONE HUNDREDTH CALLER", "The 100th caller"},
	{"THE TWENTIETH", "The 20th"},
	{"TWO THOUSANDTH", "2000th"},
	{"THIRTY SECOND", "32nd"},
	// Spelled letters.
	{"A B C", "ABC"},
	{"MY CODE IS X Y Z", "My code is XYZ"},
	{"J K", "JK"},
	{"I A M", "IAM"},
	{"A B", "A b"},
	{"SPELL IT B R O W N", "Spell it BROWN"},
}

func TestFormatCases(t *testing.T) {
	for _, c := range cases {
		if got := format(c.in); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// spell writes n in words as a speaker says it ("two hundred and fifty").
func spell(n int) string {
	under20 := []string{"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN",
		"TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN"}
	tensW := []string{"", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"}
	below1000 := func(n int, and bool) []string {
		var out []string
		if n >= 100 {
			out = append(out, under20[n/100], "HUNDRED")
			n %= 100
			if n == 0 {
				return out
			}
			if and {
				out = append(out, "AND")
			}
		}
		if n < 20 {
			return append(out, under20[n])
		}
		out = append(out, tensW[n/10])
		if n%10 != 0 {
			out = append(out, under20[n%10])
		}
		return out
	}
	if n < 1000 {
		return strings.Join(below1000(n, n%2 == 0), " ")
	}
	out := append(below1000(n/1000, false), "THOUSAND")
	if n%1000 != 0 {
		out = append(out, below1000(n%1000, true)...)
	}
	return strings.Join(out, " ")
}

// Every cardinal a caller says (10 to 999,999, in steps)
// comes out as its digits; after "dollars" as money; before "percent" as a
// percentage.
func TestFormatCardinals(t *testing.T) {
	n := 0
	for v := 10; v < 1_000_000; v += 1 + v/25 {
		want := group(int64(v))
		if got := format(spell(v)); got != want {
			t.Errorf("%d: %q → %q", v, spell(v), got)
		}
		if got := format(spell(v) + " DOLLARS"); got != "$"+want {
			t.Errorf("%d dollars: %q", v, got)
		}
		if got := format(spell(v) + " PERCENT"); got != fmt.Sprint(v)+"%" {
			t.Errorf("%d percent: %q", v, got)
		}
		n++
	}
	if n < 200 {
		t.Fatalf("only %d numbers", n)
	}
	t.Logf("%d numbers, each as a cardinal, money and a percentage", n)
}

// Ordinals from 10th up, and compound ones below it.
func TestFormatOrdinals(t *testing.T) {
	ords := map[int]string{1: "FIRST", 2: "SECOND", 3: "THIRD", 4: "FOURTH", 5: "FIFTH", 6: "SIXTH", 7: "SEVENTH", 8: "EIGHTH",
		9: "NINTH", 10: "TENTH", 11: "ELEVENTH", 12: "TWELFTH", 13: "THIRTEENTH", 14: "FOURTEENTH", 15: "FIFTEENTH",
		16: "SIXTEENTH", 17: "SEVENTEENTH", 18: "EIGHTEENTH", 19: "NINETEENTH"}
	tensO := []string{"", "", "TWENTIETH", "THIRTIETH", "FORTIETH", "FIFTIETH", "SIXTIETH", "SEVENTIETH", "EIGHTIETH", "NINETIETH"}
	tensW := []string{"", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"}
	for v := 10; v < 100; v++ {
		var said string
		switch {
		case v < 20:
			said = ords[v]
		case v%10 == 0:
			said = tensO[v/10]
		default:
			said = tensW[v/10] + " " + ords[v%10]
		}
		want := fmt.Sprintf("%d%s", v, suffix(int64(v)))
		if got := format("THE " + said); got != "The "+want {
			t.Errorf("%q: %q, want %q", said, got, "The "+want)
		}
	}
}

// Digit strings of every length from 2 to 19, as card and phone numbers
// are read out.
func TestFormatDigitStrings(t *testing.T) {
	names := []string{"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"}
	for n := 2; n <= 19; n++ {
		var said []string
		var want []byte
		for k := range n {
			d := (k*7 + n) % 10
			said = append(said, names[d])
			want = append(want, byte('0'+d))
		}
		if got := format("NUMBER " + strings.Join(said, " ")); got != "Number "+string(want) {
			t.Errorf("%d digits: %q", n, got)
		}
	}
}

// A token takes the times of the words it stands for.
func TestFormatKeepsTimes(t *testing.T) {
	tok := Format(words("I OWE TWO HUNDRED AND FIFTY DOLLARS TODAY"))
	if len(tok) != 4 || tok[2].Text != "$250" || tok[2].From != 2 || tok[2].To != 7 || tok[2].StartMs != 200 || tok[2].EndMs != 680 ||
		tok[3].StartMs != 700 {
		t.Errorf("%+v", tok)
	}
}

func FuzzFormat(f *testing.F) {
	for _, c := range cases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Format(words(s))
		end := 0
		for _, x := range tok {
			if x.From != end || x.To <= x.From {
				t.Fatalf("tokens do not tile the words: %+v", tok)
			}
			end = x.To
		}
		if end != len(strings.Fields(s)) {
			t.Fatalf("tokens cover %d of %d words", end, len(strings.Fields(s)))
		}
	})
}
