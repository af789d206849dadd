package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/media"
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
	// each final's span widened by finalMarginMs on both sides.
	finalModel    string
	finalMarginMs int
	stats         *passStats // filled when not nil
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
	fs.IntVar(&o.workers, "workers", 0, fmt.Sprintf("engines run in parallel (default: one per CPU, %d here; on cuda %d per device)", runtime.NumCPU(), asr.DefaultCUDAEnginesPerDevice))
	fs.BoolVar(&o.endpoint, "endpoint", true, "split utterances at endpoints")
	fs.StringVar(&o.epMode, "endpoint-mode", asr.EndpointRules, "endpoints by the decoder's blanks (rules) or by Silero VAD (vad)")
	fs.StringVar(&o.decoding, "decoding", asr.Greedy, "decoding method: "+asr.Greedy+" or "+asr.ModifiedBeamSearch)
	fs.IntVar(&o.paths, "active-paths", asr.DefaultActivePaths, "modified beam search: hypotheses kept per stream")
	fs.StringVar(&o.hotwords, "hotwords", "", "phrases to favour (needs modified_beam_search): a file, one per line, or a list \"a b:2.0, c\"")
	fs.Float64Var(&o.hwScore, "hotwords-score", asr.DefaultHotwordsScore, "bonus per token of a hotword without its own score")
	fs.StringVar(&o.keywords, "keywords", "", "phrases to report where they are said (a file or a list): a KEYWORD line (or JSON object) each")
	fs.StringVar(&o.resampler, "resampler", "kaldi", "filter for non-16 kHz input: kaldi (what the model expects) or sharp")
	fs.StringVar(&o.finalModel, "final-model", "none", "second pass for finals: none, moonshine-tiny, moonshine-base or a Moonshine model directory")
	fs.IntVar(&o.finalMarginMs, "final-margin", defaultFinalMarginMs, "second pass: ms of audio taken on each side of a final's words (not past a neighbouring final's)")
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
			text = strings.Join(nonEmpty(second[i]), " ")
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "%s\t%s\n", f, text)
		}
		if ref, ok := refFor(refs, f); ok {
			score.add(ref, asr.FinalText(results[i]), text)
		}
		for j, r := range results[i] {
			if *asJSON {
				jr := jsonResult{File: f, Type: r.Kind.String(), Utt: r.Utt, Text: r.Text,
					StartMs: r.StartMs, EndMs: r.EndMs, Words: r.Words, Conf: r.Conf}
				if second != nil && r.Kind == asr.Final {
					jr.Text, jr.FirstPass = second[i][j], r.Text
				}
				enc.Encode(jr)
			}
			if r.Kind != asr.Final {
				continue
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
	// FirstPass is a final's text from the streaming model when a second
	// pass wrote Text (Words stay the first pass's).
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
// batcher, then, with a second pass, transcribes every final's audio again:
// second[i][j] is the new text of results[i][j] (second is nil without one).
func transcribeAll(files []string, o transcribeOptions) (results [][]asr.Result, second [][]string, err error) {
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
	second, err = secondPass(rec, sigs, results, o)
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

// defaultFinalMarginMs is the audio the second pass takes on each side of
// a final's first and last word: the transducer emits a word's tokens
// after its sound begins (measured in docs/performance.md).
const defaultFinalMarginMs = 500

// secondPass transcribes again each final that has words, from the span of
// its words widened by o.finalMarginMs on each side, though not into the
// words of the finals before and after it; finals without words keep
// their empty text. All segments go to the recognizer at once, which
// batches those of one padded length.
func secondPass(rec *moonshine.Recognizer, sigs [][]float32, results [][]asr.Result, o transcribeOptions) ([][]string, error) {
	type at struct{ i, j int }
	var segs [][]float32
	var where []at
	second := make([][]string, len(results))
	margin := int64(o.finalMarginMs)
	for i, rs := range results {
		second[i] = make([]string, len(rs))
		var finals []int
		for j, r := range rs {
			if r.Kind == asr.Final && r.Text != "" {
				finals = append(finals, j)
			}
		}
		for k, j := range finals {
			r := rs[j]
			lo, hi := r.StartMs-margin, r.EndMs+margin
			if k > 0 {
				lo = min(max(lo, rs[finals[k-1]].EndMs), r.StartMs)
			}
			if k+1 < len(finals) {
				hi = max(min(hi, rs[finals[k+1]].StartMs), r.EndMs)
			}
			n := int64(len(sigs[i]))
			a, b := min(max(lo*16, 0), n), min(max(hi*16, 0), n)
			segs = append(segs, sigs[i][a:max(a, b)])
			where = append(where, at{i, j})
		}
	}
	if o.stats != nil {
		defer o.stats.measure(&o.stats.second)()
	}
	texts, err := rec.Transcribe(segs)
	if err != nil {
		return nil, err
	}
	for k, w := range where {
		second[w.i][w.j] = texts[k]
	}
	return second, nil
}

func nonEmpty(texts []string) []string {
	var out []string
	for _, t := range texts {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// passStats are the CPU time of each pass (the whole process's, so
// measured one pass at a time) and the audio they decoded.
type passStats struct {
	audio, first, second time.Duration
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
	}
	fmt.Fprintln(w)
}
