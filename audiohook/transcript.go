package audiohook

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/word"
)

// Entity is one entity of an event message.
type Entity struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Transcript is the Transcription Connector's transcript entity: one
// utterance of one channel.
type Transcript struct {
	ID           string        `json:"id"`
	ChannelID    int           `json:"channelId"`
	IsFinal      bool          `json:"isFinal"`
	Offset       Duration      `json:"offset"`
	Duration     Duration      `json:"duration"`
	Alternatives []Alternative `json:"alternatives"`
}

// Alternative is one reading of an utterance.
type Alternative struct {
	Confidence      float64          `json:"confidence"`
	Languages       []string         `json:"languages,omitempty"`
	Interpretations []Interpretation `json:"interpretations"`
}

// Interpretation is an alternative's text (type display) and its tokens.
type Interpretation struct {
	Type       string  `json:"type"`
	Transcript string  `json:"transcript"`
	Tokens     []Token `json:"tokens"`
}

// Token is one word of an interpretation, on the stream's positions.
type Token struct {
	Type       string   `json:"type"`
	Value      string   `json:"value"`
	Confidence float64  `json:"confidence"`
	Offset     Duration `json:"offset"`
	Duration   Duration `json:"duration"`
	Language   string   `json:"language,omitempty"`
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// finalWords reads a final's tokens (display_words, or words when the
// final has no display text) with their confidences.
type finalToken struct {
	text       string
	start, end int64 // ms on the call's clock
	conf       float64
}

func finalTokens(e *transcript.Event) (tokens []finalToken, display string, err error) {
	var words []word.Word
	if err := json.Unmarshal([]byte(e.Fields["words"]), &words); err != nil {
		return nil, "", fmt.Errorf("audiohook: final words: %w", err)
	}
	confAt := func(start, end int64) float64 { // the mean confidence of the words a token stands for
		sum, n := 0.0, 0
		for _, w := range words {
			if w.StartMs >= start && w.StartMs <= end {
				sum += float64(w.Conf)
				n++
			}
		}
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	}
	if dw, ok := e.Fields["display_words"]; ok {
		var toks []word.Token
		if err := json.Unmarshal([]byte(dw), &toks); err != nil {
			return nil, "", fmt.Errorf("audiohook: final display_words: %w", err)
		}
		for _, t := range toks {
			tokens = append(tokens, finalToken{t.Text, t.StartMs, t.EndMs, confAt(t.StartMs, t.EndMs)})
		}
		return tokens, e.Fields["display"], nil
	}
	for _, w := range words {
		tokens = append(tokens, finalToken{w.Text, w.StartMs, w.EndMs, float64(w.Conf)})
	}
	return tokens, e.Fields["text"], nil
}

// transcripts turns a final into transcript entities: one, or one per
// part between the positions in splits (a language update, a pause); pos
// maps a call-clock ms onto the stream's position.
func transcripts(e *transcript.Event, ch int, lang string, splits []int64, pos func(ms int64) time.Duration) ([]Transcript, error) {
	tokens, display, err := finalTokens(e)
	if err != nil || len(tokens) == 0 {
		return nil, err
	}
	conf, _ := strconv.ParseFloat(e.Fields["conf"], 64)
	var langs []string
	if lang != "" {
		langs = []string{lang}
	}
	var parts [][]Token
	var texts [][]string
	for i, t := range tokens {
		start, end := pos(t.start), pos(t.end)
		tok := Token{Type: "word", Value: t.text, Confidence: round3(t.conf), Offset: Duration(start),
			Duration: Duration(max(end-start, 0)), Language: lang}
		if i == 0 || crosses(splits, pos(tokens[i-1].start), start) {
			parts, texts = append(parts, nil), append(texts, nil)
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], tok)
		texts[len(texts)-1] = append(texts[len(texts)-1], t.text)
	}
	out := make([]Transcript, 0, len(parts))
	for i, p := range parts {
		text := display
		if len(parts) > 1 || text == "" {
			text = strings.Join(texts[i], " ")
		}
		c := conf
		if len(parts) > 1 {
			sum := 0.0
			for _, t := range p {
				sum += t.Confidence
			}
			c = sum / float64(len(p))
		}
		last := p[len(p)-1]
		out = append(out, Transcript{ID: newUUID(), ChannelID: ch, IsFinal: true, Offset: p[0].Offset,
			Duration: last.Offset + last.Duration - p[0].Offset,
			Alternatives: []Alternative{{Confidence: round3(c), Languages: langs,
				Interpretations: []Interpretation{{Type: "display", Transcript: text, Tokens: p}}}}})
	}
	return out, nil
}

// crosses tells whether a split lies in (a, b].
func crosses(splits []int64, a, b time.Duration) bool {
	for _, s := range splits {
		at := time.Duration(s) * (time.Second / 8000)
		if at > a && at <= b {
			return true
		}
	}
	return false
}

func round3(f float64) float64 {
	if f < 0 {
		return 0
	}
	if f > 1 {
		return 1
	}
	return float64(int64(f*1000+0.5)) / 1000
}
