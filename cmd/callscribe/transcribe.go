package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/gateway"
	"github.com/callscribe/callscribe/itn"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/word"
)

// defaultModelDir is the model the project's tests and demo use, relative to
// the repository (the binary lives in bin/).
const defaultModelDir = "../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile"

type transcribeOptions struct {
	model     asr.ModelFiles
	ortLib    string
	provider  string
	threads   int
	maxBatch  int
	decoding  string
	paths     int
	hotwords  string
	hwScore   float64
	keywords  string
	epMode    string
	workers   int
	endpoint  bool
	resampler string
	// The second pass: "none", a moonshine.FindModel name or directory;
	// a final's audio longer than finalMaxSegment is cut into pieces.
	finalModel      string
	finalMaxSegment time.Duration
	stats           *passStats // filled when not nil
}

func transcribeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("transcribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o transcribeOptions
	fs.StringVar(&o.model.Dir, "model", "", "model directory (default: $CALLSCRIBE_MODEL or the shared test model)")
	fs.StringVar(&o.model.Encoder, "encoder", "", "encoder file (default: found in the model directory)")
	fs.StringVar(&o.model.Joiner, "joiner", "", "joiner file (default: found in the model directory)")
	fs.StringVar(&o.ortLib, "ort-lib", "", "path of libonnxruntime.so (default: $"+asr.RuntimeLibEnv+" or the setup cache)")
	fs.StringVar(&o.provider, "provider", "cpu", "execution provider: cpu or cuda")
	fs.IntVar(&o.threads, "threads", 1, "intra-op threads per engine")
	fs.IntVar(&o.maxBatch, "max-batch", 0, fmt.Sprintf("most streams per encoder call (default %d on cpu, %d on cuda)", asr.DefaultMaxBatch, asr.DefaultCUDAMaxBatch))
	fs.IntVar(&o.workers, "workers", 0, fmt.Sprintf("engines run in parallel (default: one per CPU the process may use, %d here; on cuda %d per device)", runtime.GOMAXPROCS(0), asr.DefaultCUDAEnginesPerDevice))
	fs.BoolVar(&o.endpoint, "endpoint", true, "split utterances at endpoints")
	fs.StringVar(&o.epMode, "endpoint-mode", asr.EndpointRules, "endpoints by the decoder's blanks (rules) or by Silero VAD (vad)")
	fs.StringVar(&o.decoding, "decoding", asr.Greedy, "decoding method: "+asr.Greedy+" or "+asr.ModifiedBeamSearch)
	fs.IntVar(&o.paths, "active-paths", asr.DefaultActivePaths, "modified beam search: hypotheses kept per stream")
	fs.StringVar(&o.hotwords, "hotwords", "", "phrases to favour (needs modified_beam_search): a file, one per line, or a list \"a b:2.0, c\"")
	fs.Float64Var(&o.hwScore, "hotwords-score", asr.DefaultHotwordsScore, "bonus per token of a hotword without its own score")
	fs.StringVar(&o.keywords, "keywords", "", "phrases to report where they are said (a file or a list): a KEYWORD line (or JSON object) each")
	fs.StringVar(&o.resampler, "resampler", "kaldi", "filter for non-16 kHz input: kaldi (what the model expects) or sharp")
	fs.StringVar(&o.finalModel, "final-model", "none", "second pass for finals: none, moonshine-tiny, moonshine-base or a Moonshine model directory")
	fs.DurationVar(&o.finalMaxSegment, "final-max-segment", gateway.Defaults().ASR.FinalMaxSegment, "second pass: a final's audio longer than this is cut at its quietest moments (asr.final_max_segment)")
	asJSON := fs.Bool("json", false, "print every partial and final as a JSON line")
	refPath := fs.String("ref", "", "reference texts (lines \"FILE TEXT\", FILE a name or path as given): print the word error rate on stderr")
	showStats := fs.Bool("stats", false, "print on stderr the audio duration and each pass's CPU seconds per audio second")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "callscribe transcribe: no WAV files given")
		return 2
	}
	if o.finalMaxSegment < time.Second {
		fmt.Fprintln(stderr, "callscribe transcribe: -final-max-segment: under 1s")
		return 2
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	files := fs.Args()
	var keywords []asr.Phrase
	var kwWords [][]string // each keyword's words, upper case
	if o.keywords != "" {
		var err error
		if keywords, err = readPhraseArg(o.keywords); err != nil {
			fmt.Fprintf(stderr, "callscribe transcribe: -keywords: %v\n", err)
			return 2
		}
		for _, k := range keywords {
			kwWords = append(kwWords, strings.Fields(strings.ToUpper(k.Text)))
		}
	}
	var refs map[string]string
	if *refPath != "" {
		var err error
		if refs, err = readRefs(*refPath); err != nil {
			fmt.Fprintf(stderr, "callscribe transcribe: -ref: %v\n", err)
			return 2
		}
	}
	var stats passStats
	o.stats = &stats
	results, second, err := transcribeAll(files, o)
	if err != nil {
		fmt.Fprintf(stderr, "callscribe transcribe: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	var score wordScore
	for i, f := range files {
		text := asr.FinalText(results[i])
		if second != nil {
			text = displayText(second[i])
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "%s\t%s\n", f, text)
		}
		if ref, ok := refFor(refs, f); ok {
			score.add(ref, asr.FinalText(results[i]), text)
		}
		for j, r := range results[i] {
			if r.Kind != asr.Final {
				if *asJSON {
					enc.Encode(jsonResult{File: f, Type: r.Kind.String(), Utt: r.Utt, Text: r.Text,
						StartMs: r.StartMs, EndMs: r.EndMs, Words: r.Words})
				}
				continue
			}
			p := passed{r: r}
			if second != nil {
				p = second[i][j]
			}
			r = p.r
			if *asJSON {
				jr := jsonResult{File: f, Type: r.Kind.String(), Utt: r.Utt, Text: r.Text,
					StartMs: r.StartMs, EndMs: r.EndMs, Words: r.Words, Conf: r.Conf, SecondPass: p.note}
				jr.DisplayWords = p.displayTokens()
				jr.Display = itn.Text(jr.DisplayWords)
				if p.display != nil {
					jr.FirstPass = results[i][j].Text
				}
				enc.Encode(jr)
			}
			for j, k := range keywords {
				words := kwWords[j]
				for _, at := range asr.PhraseAt(r.Words, words) {
					hit := r.Words[at : at+len(words)]
					if *asJSON {
						enc.Encode(jsonResult{File: f, Type: "keyword", Utt: r.Utt, Text: k.Text,
							StartMs: hit[0].StartMs, EndMs: hit[len(hit)-1].EndMs, Words: hit})
						continue
					}
					fmt.Fprintf(stdout, "%s\tKEYWORD\t%s\t%d\t%d\n", f, k.Text, hit[0].StartMs, hit[len(hit)-1].EndMs)
				}
			}
		}
	}
	if refs != nil {
		score.report(stderr, o.finalModel)
	}
	if *showStats {
		stats.report(stderr, o.finalModel)
	}
	return 0
}

type jsonResult struct {
	File    string     `json:"file"`
	Type    string     `json:"type"`
	Utt     int        `json:"utt"`
	Text    string     `json:"text"`
	StartMs int64      `json:"start_ms"`
	EndMs   int64      `json:"end_ms"`
	Words   []asr.Word `json:"words,omitempty"`
	Conf    float32    `json:"conf,omitempty"`
	// A final's fields as the gateway publishes them (wire-format.md):
	// its display text and tokens; with a second pass, whose words these
	// are (second_pass).
	Display      string       `json:"display,omitempty"`
	DisplayWords []word.Token `json:"display_words,omitempty"`
	SecondPass   string       `json:"second_pass,omitempty"`
	// FirstPass is a final's text from the streaming model when a second
	// pass's words replaced its words (aligned to their times) and text.
	FirstPass string `json:"first_pass,omitempty"`
}

func modelDir(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("CALLSCRIBE_MODEL"); d != "" {
		return d
	}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Join(filepath.Dir(exe), "..", defaultModelDir)
		if _, err := os.Stat(d); err == nil {
			return filepath.Clean(d)
		}
	}
	return defaultModelDir
}

// loadAudio reads WAV files as 16 kHz mono.
func loadAudio(files []string, filter media.Filter) ([][]float32, error) {
	sigs := make([][]float32, len(files))
	for i, f := range files {
		a, err := media.ReadWAVFile(f)
		if err != nil {
			return nil, err
		}
		x := a.Samples
		if a.SampleRate != 16000 {
			if x, err = media.ResampleFilter(x, a.SampleRate, 16000, filter); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
		}
		sigs[i] = x
	}
	return sigs, nil
}

func resampleFilter(name string) (media.Filter, error) {
	switch name {
	case "kaldi":
		return media.FilterKaldi, nil
	case "sharp":
		return media.FilterSharp, nil
	}
	return media.Filter{}, fmt.Errorf("-resampler %q: want kaldi or sharp", name)
}

// transcribe decodes the files as concurrent streams through one batcher.
func transcribe(files []string, o transcribeOptions) ([][]asr.Result, error) {
	results, _, err := transcribeAll(files, o)
	return results, err
}

// transcribeAll decodes the files as concurrent streams through one
// batcher, then, with a second pass, hears every final again: second[i][j]
// is results[i][j] as the gateway would publish it (second is nil without
// one).
func transcribeAll(files []string, o transcribeOptions) (results [][]asr.Result, second [][]passed, err error) {
	filter, err := resampleFilter(o.resampler)
	if err != nil {
		return nil, nil, err
	}
	sigs, err := loadAudio(files, filter)
	if err != nil {
		return nil, nil, err
	}
	if err := asr.InitRuntime(o.ortLib, o.provider); err != nil {
		return nil, nil, err
	}
	var rec *moonshine.Recognizer
	if o.finalModel != "" && o.finalModel != "none" {
		// Opened first: a wrong name fails before the first pass runs.
		dir, err := moonshine.FindModel(o.finalModel)
		if err != nil {
			return nil, nil, err
		}
		if rec, err = moonshine.New(moonshine.Files{Dir: dir}, moonshine.Options{Provider: o.provider, Threads: o.threads}); err != nil {
			return nil, nil, err
		}
		defer rec.Close()
	}
	if results, err = firstPass(sigs, o); err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return results, nil, nil
	}
	second, err = secondPass(rec, filepath.Base(o.finalModel), sigs, results, o)
	return results, second, err
}

// firstPass runs the streaming recognizer on 16 kHz signals.
func firstPass(sigs [][]float32, o transcribeOptions) ([][]asr.Result, error) {
	o.model.Dir = modelDir(o.model.Dir)
	info, err := asr.LoadModelInfo(o.model)
	if err != nil {
		return nil, err
	}
	bo := asr.BatcherOptions{MaxBatch: o.maxBatch, Workers: o.workers,
		Engine: asr.EngineOptions{Provider: o.provider, Threads: o.threads}}
	bo.Endpoint = asr.DefaultEndpointConfig()
	bo.Endpoint.Enabled = o.endpoint
	bo.Endpoint.Mode = o.epMode
	bo.Decoding, bo.ActivePaths = o.decoding, o.paths
	b, err := asr.NewBatcher(info, bo)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if o.stats != nil {
		defer o.stats.measure(&o.stats.first)()
		for _, x := range sigs {
			o.stats.audio += time.Duration(len(x)) * time.Second / 16000
		}
	}
	var so asr.StreamOptions
	if o.hotwords != "" {
		phrases, err := readPhraseArg(o.hotwords)
		if err != nil {
			return nil, err
		}
		if so.Hotwords, err = asr.NewContextGraph(asr.NewTokenizer(info), phrases, float32(o.hwScore)); err != nil {
			return nil, err
		}
	}
	return asr.DecodeAllWith(b, sigs, 100, so)
}

// readPhraseArg reads a phrase list given on the command line: a file if
// one is there, else the list itself.
func readPhraseArg(arg string) ([]asr.Phrase, error) {
	if _, err := os.Stat(arg); err == nil {
		return asr.ReadPhrases(arg)
	}
	return asr.ParsePhrases(arg)
}

// passed is a final after its second pass, as the gateway publishes it.
type passed struct {
	r       asr.Result   // the second pass's words, or the first pass's
	display []word.Token // the second pass's display tokens; nil: itn formats r's words
	note    string       // the final's second_pass field
}

// displayTokens are the tokens of the final's display field.
func (p passed) displayTokens() []word.Token {
	if p.display != nil {
		return p.display
	}
	return itn.Format(p.r.Words)
}

// displayText is a file's finals' display texts, one after the other.
func displayText(finals []passed) string {
	var texts []string
	for _, p := range finals {
		if t := itn.Text(p.displayTokens()); t != "" {
			texts = append(texts, t)
		}
	}
	return strings.Join(texts, " ")
}

// secondPass hears every final again as a gateway's leg does (package
// gateway's PassSpan, PassPieces, PassWords, HeardAgain): the audio from
// before its first word to its endpoint, cut into pieces no longer than
// o.finalMaxSegment, its words used unless a guard refuses them, aligned to
// the first pass's times. second[i][j] is results[i][j] so heard when it
// is a final. All pieces of all files go to the recognizer at once, which
// batches those of one padded length; its batches are exact, so each text
// is what the gateway's rounds make of it. A failure of the recognizer,
// which the gateway would publish as fallback:error, is an error here.
func secondPass(rec *moonshine.Recognizer, name string, sigs [][]float32, results [][]asr.Result, o transcribeOptions) ([][]passed, error) {
	type ask struct{ i, j, pieces int }
	var segs [][]float32
	var asks []ask
	second := make([][]passed, len(results))
	for i, rs := range results {
		second[i] = make([]passed, len(rs))
		from, n := int64(0), int64(len(sigs[i]))
		for j, r := range rs {
			if r.Kind != asr.Final {
				continue
			}
			lo, hi := gateway.PassSpan(r.StartMs, r.EndMs, r.EndpointMs, from)
			from = hi
			second[i][j] = passed{r: r, note: "skipped"}
			if gateway.PassSkipped(r) {
				continue
			}
			a := min(max(lo*16, 0), n)
			b := min(max(hi*16, a), n)
			pieces := gateway.PassPieces(sigs[i][a:b], o.finalMaxSegment)
			segs = append(segs, pieces...)
			asks = append(asks, ask{i, j, len(pieces)})
		}
	}
	if o.stats != nil {
		defer o.stats.measure(&o.stats.second)()
	}
	res, err := rec.Recognize(segs)
	if err != nil {
		return nil, err
	}
	for _, a := range asks {
		p := &second[a.i][a.j]
		words, reason := gateway.PassWords(res[:a.pieces], len(p.r.Words))
		res = res[a.pieces:]
		if reason != "" {
			p.note = "fallback:" + reason
			continue
		}
		p.r, p.display = gateway.HeardAgain(p.r, words)
		p.note = name
	}
	if o.stats != nil {
		o.stats.finals = map[string]int{}
		for i, rs := range results {
			for j, r := range rs {
				if r.Kind == asr.Final {
					o.stats.finals[second[i][j].note]++
				}
			}
		}
	}
	return second, nil
}

// passStats are the CPU time of each pass (the whole process's, so
// measured one pass at a time), the audio they decoded and the finals by
// what their second pass did (second_pass).
type passStats struct {
	audio, first, second time.Duration
	finals               map[string]int
}

// measure adds the CPU time until the returned func is called to d.
func (s *passStats) measure(d *time.Duration) func() {
	c0 := cpuTime()
	return func() { *d += cpuTime() - c0 }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s passStats) report(w io.Writer, model string) {
	per := func(d time.Duration) float64 { return d.Seconds() / max(s.audio.Seconds(), 1e-9) }
	fmt.Fprintf(w, "audio %.1f s; first pass %.1f CPU s (%.4f per audio s)", s.audio.Seconds(), s.first.Seconds(), per(s.first))
	if model != "" && model != "none" {
		fmt.Fprintf(w, "; second pass (%s) %.1f CPU s (%.4f per audio s); both %.4f per audio s",
			model, s.second.Seconds(), per(s.second), per(s.first+s.second))
		var notes []string
		for _, n := range slices.Sorted(maps.Keys(s.finals)) {
			notes = append(notes, fmt.Sprintf("%d %s", s.finals[n], n))
		}
		fmt.Fprintf(w, "; finals: %s", strings.Join(notes, ", "))
	}
	fmt.Fprintln(w)
}
