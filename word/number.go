package word

// The English number lexicon: which words say a number and what it is.
// Words are upper case, as the recognizer writes them. How numbers are put
// together (itn) or counted in digits (redact) is up to the reader.

// cardinals are the number words and their values.
var cardinals = map[string]int64{
	"ZERO": 0, "ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5, "SIX": 6, "SEVEN": 7, "EIGHT": 8, "NINE": 9,
	"TEN": 10, "ELEVEN": 11, "TWELVE": 12, "THIRTEEN": 13, "FOURTEEN": 14, "FIFTEEN": 15, "SIXTEEN": 16,
	"SEVENTEEN": 17, "EIGHTEEN": 18, "NINETEEN": 19,
	"TWENTY": 20, "THIRTY": 30, "FORTY": 40, "FIFTY": 50, "SIXTY": 60, "SEVENTY": 70, "EIGHTY": 80, "NINETY": 90,
	"HUNDRED": 100, "THOUSAND": 1_000, "MILLION": 1_000_000, "BILLION": 1_000_000_000,
}

// ordinals are the ordinal words and their values.
var ordinals = map[string]int64{
	"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "FIFTH": 5, "SIXTH": 6, "SEVENTH": 7, "EIGHTH": 8, "NINTH": 9,
	"TENTH": 10, "ELEVENTH": 11, "TWELFTH": 12, "THIRTEENTH": 13, "FOURTEENTH": 14, "FIFTEENTH": 15,
	"SIXTEENTH": 16, "SEVENTEENTH": 17, "EIGHTEENTH": 18, "NINETEENTH": 19,
	"TWENTIETH": 20, "THIRTIETH": 30, "FORTIETH": 40, "FIFTIETH": 50, "SIXTIETH": 60, "SEVENTIETH": 70,
	"EIGHTIETH": 80, "NINETIETH": 90, "HUNDREDTH": 100, "THOUSANDTH": 1_000,
}

// soundAlikes are words recognition writes for a digit said, and the digit.
var soundAlikes = map[string]int{"FOR": 4, "TO": 2, "TOO": 2, "WON": 1, "ATE": 8, "FREE": 3, "TREE": 3}

// Cardinal is the value of a number word: ZERO to NINETEEN, the tens
// TWENTY to NINETY, HUNDRED, THOUSAND, MILLION, BILLION.
func Cardinal(w string) (int64, bool) {
	v, ok := cardinals[w]
	return v, ok
}

// Ordinal is the value of an ordinal word: FIRST to NINETEENTH, the tens
// TWENTIETH to NINETIETH, HUNDREDTH, THOUSANDTH.
func Ordinal(w string) (int64, bool) {
	v, ok := ordinals[w]
	return v, ok
}

// Digit is the digit a word says when a number is read digit by digit:
// ZERO to NINE, and OH for zero.
func Digit(w string) (int, bool) {
	if w == "OH" {
		return 0, true
	}
	if v, ok := cardinals[w]; ok && v < 10 {
		return int(v), true
	}
	return 0, false
}

// SoundAlike is the digit a word sounds like that recognition writes in
// its place now and then: FOR (four), TO and TOO (two), WON (one), ATE
// (eight), FREE and TREE (three). Mostly they are just words.
func SoundAlike(w string) (int, bool) {
	d, ok := soundAlikes[w]
	return d, ok
}

// Repeat is how many times the digit after a word is said: DOUBLE 2,
// TRIPLE 3 ("DOUBLE FIVE" is 55).
func Repeat(w string) (int, bool) {
	switch w {
	case "DOUBLE":
		return 2, true
	case "TRIPLE":
		return 3, true
	}
	return 0, false
}
