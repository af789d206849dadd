package asr

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Phrase is a hotword or keyword: words, and a score per token (0: the
// default).
type Phrase struct {
	Text  string
	Score float32
}

// DefaultHotwordsScore is the bonus per token of a hotword without its own
// score (sherpa-onnx's default).
const DefaultHotwordsScore = 1.5

// Bounds of a phrase list: a list beyond them is refused.
const (
	MaxPhrases     = 256
	MaxPhraseBytes = 100
	MaxPhraseScore = 20
)

// ErrPhrases is wrapped by every error about a phrase list.
var ErrPhrases = errors.New("asr: bad phrase list")

// ParsePhrases reads a comma-separated list of phrases, each optionally
// followed by ":score" ("Acme Cloud:2.5, cancel my account"); empty items
// are skipped. Phrases are letters, digits, apostrophes and spaces.
func ParsePhrases(list string) ([]Phrase, error) {
	var out []Phrase
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p := Phrase{Text: item}
		if text, score, ok := strings.Cut(item, ":"); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(score), 32)
			if err != nil || f <= 0 || f > MaxPhraseScore {
				return nil, fmt.Errorf("%w: %q: the score must be a number in (0, %d]", ErrPhrases, item, MaxPhraseScore)
			}
			p = Phrase{Text: strings.TrimSpace(text), Score: float32(f)}
		}
		if len(p.Text) > MaxPhraseBytes {
			return nil, fmt.Errorf("%w: a phrase of %d bytes (at most %d)", ErrPhrases, len(p.Text), MaxPhraseBytes)
		}
		for _, r := range p.Text {
			if !(r == ' ' || r == '\'' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return nil, fmt.Errorf("%w: %q: letters, digits, apostrophes and spaces only", ErrPhrases, p.Text)
			}
		}
		p.Text = strings.Join(strings.Fields(strings.ReplaceAll(p.Text, "-", " ")), " ")
		if p.Text == "" {
			continue
		}
		out = append(out, p)
		if len(out) > MaxPhrases {
			return nil, fmt.Errorf("%w: more than %d phrases", ErrPhrases, MaxPhrases)
		}
	}
	return out, nil
}

// ReadPhrases reads a phrase list from a file: one phrase per line (or
// comma-separated), "#" comments.
func ReadPhrases(path string) ([]Phrase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var items []string
	for _, line := range strings.Split(string(b), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			items = append(items, line)
		}
	}
	return ParsePhrases(strings.Join(items, ","))
}

// ContextGraph biases beam search towards phrases (hotwords): an
// Aho-Corasick automaton over their token sequences with sherpa-onnx's
// scoring. Each token that extends a match earns its phrase's score; a
// match that fails gives back what its partial match earned (falling to
// the longest suffix that is a prefix of another phrase); a completed
// phrase keeps its bonus and the state returns to the start. Immutable once
// built; hypotheses point into it.
type ContextGraph struct {
	root *ctxNode
}

type ctxNode struct {
	token       int
	tokenScore  float32 // earned by the token leading here
	nodeScore   float32 // earned along the path from the root
	outputScore float32 // earned when a phrase ends here (or at a suffix)
	isEnd       bool
	phrase      string
	next        map[int]*ctxNode
	fail        *ctxNode
	output      *ctxNode // the longest phrase ending at a suffix of this node
}

// NewContextGraph builds the automaton of phrases, each spelled by tok;
// a phrase without a score gets defaultScore.
func NewContextGraph(tok *Tokenizer, phrases []Phrase, defaultScore float32) (*ContextGraph, error) {
	root := &ctxNode{token: -1, next: map[int]*ctxNode{}}
	root.fail = root
	for _, p := range phrases {
		ids, err := tok.Encode(p.Text)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPhrases, err)
		}
		score := p.Score
		if score == 0 {
			score = defaultScore
		}
		node := root
		for j, id := range ids {
			last := j == len(ids)-1
			nx, ok := node.next[id]
			if !ok {
				nx = &ctxNode{token: id, tokenScore: score, nodeScore: node.nodeScore + score, next: map[int]*ctxNode{}}
				node.next[id] = nx
			} else {
				nx.tokenScore = max(score, nx.tokenScore)
				nx.nodeScore = node.nodeScore + nx.tokenScore
			}
			if last {
				nx.isEnd, nx.phrase = true, p.Text
			}
			if nx.isEnd {
				nx.outputScore = nx.nodeScore
			} else {
				nx.outputScore = 0
			}
			node = nx
		}
	}
	// Fail and output arcs, breadth first.
	queue := make([]*ctxNode, 0, len(root.next))
	for _, id := range sortedKeys(root.next) {
		n := root.next[id]
		n.fail = root
		queue = append(queue, n)
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, id := range sortedKeys(cur.next) {
			n := cur.next[id]
			f := cur.fail
			for f != root && f.next[id] == nil {
				f = f.fail
			}
			if g := f.next[id]; g != nil && g != n {
				f = g
			}
			n.fail = f
			out := f
			for out != root && !out.isEnd {
				out = out.fail
			}
			if out != root {
				n.output = out
				n.outputScore += out.outputScore
			}
			queue = append(queue, n)
		}
	}
	return &ContextGraph{root: root}, nil
}

func sortedKeys(m map[int]*ctxNode) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// forward moves state by one emitted token: the score it earns (negative
// when a partial match fails) and the new state. A completed phrase keeps
// its bonus and returns to the start (sherpa-onnx's non-strict mode).
func (g *ContextGraph) forward(state *ctxNode, token int) (float32, *ctxNode) {
	var node *ctxNode
	var score float32
	if n := state.next[token]; n != nil {
		node, score = n, n.tokenScore
	} else {
		node = state.fail
		for node != g.root && node.next[token] == nil {
			node = node.fail
		}
		if n := node.next[token]; n != nil {
			node = n
		}
		score = node.nodeScore - state.nodeScore
	}
	if node.outputScore != 0 {
		out := node.nodeScore
		if !node.isEnd && node.output != nil {
			out = node.output.nodeScore
		}
		return score + out - node.nodeScore, g.root
	}
	return score + node.outputScore, node
}

// PhraseAt tells where the words of phrase (upper case, single spaces)
// occur in words: the index of the first word of each occurrence.
func PhraseAt(words []Word, phrase []string) []int {
	var at []int
	for i := 0; i+len(phrase) <= len(words) && len(phrase) > 0; i++ {
		match := true
		for j, w := range phrase {
			if !strings.EqualFold(words[i+j].Text, w) {
				match = false
				break
			}
		}
		if match {
			at = append(at, i)
		}
	}
	return at
}
