package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/callscribe/callscribe/asr"
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
	fs.IntVar(&o.workers, "workers", 0, "engines run in parallel (default: 1, or one per CPU for a batch-1 model)")
	fs.BoolVar(&o.endpoint, "endpoint", true, "split utterances at endpoints")
	fs.StringVar(&o.epMode, "endpoint-mode", asr.EndpointRules, "endpoints by the decoder's blanks (rules) or by Silero VAD (vad)")
	fs.StringVar(&o.decoding, "decoding", asr.Greedy, "decoding method: "+asr.Greedy+" or "+asr.ModifiedBeamSearch)
	fs.IntVar(&o.paths, "active-paths", asr.DefaultActivePaths, "modified beam search: hypotheses kept per stream")
	fs.StringVar(&o.hotwords, "hotwords", "", "phrases to favour (needs modified_beam_search): a file, one per line, or a list \"a b:2.0, c\"")
	fs.Float64Var(&o.hwScore, "hotwords-score", asr.DefaultHotwordsScore, "bonus per token of a hotword without its own score")
	fs.StringVar(&o.keywords, "keywords", "", "phrases to report where they are said (a file or a list): a KEYWORD line (or JSON object) each")
	fs.StringVar(&o.resampler, "resampler", "kaldi", "filter for non-16 kHz input: kaldi (what the model expects) or sharp")
	asJSON := fs.Bool("json", false, "print every partial and final as a JSON line")
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
	results, err := transcribe(files, o)
	if err != nil {
		fmt.Fprintf(stderr, "callscribe transcribe: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	for i, f := range files {
		if !*asJSON {
			fmt.Fprintf(stdout, "%s\t%s\n", f, asr.FinalText(results[i]))
		}
		for _, r := range results[i] {
			if *asJSON {
				enc.Encode(jsonResult{File: f, Type: r.Kind.String(), Utt: r.Utt, Text: r.Text,
					StartMs: r.StartMs, EndMs: r.EndMs, Words: r.Words, Conf: r.Conf})
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
	filter, err := resampleFilter(o.resampler)
	if err != nil {
		return nil, err
	}
	sigs, err := loadAudio(files, filter)
	if err != nil {
		return nil, err
	}
	if err := asr.InitRuntime(o.ortLib, o.provider); err != nil {
		return nil, err
	}
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
