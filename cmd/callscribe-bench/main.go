// Command callscribe-bench measures Callscribe's recognizer beside the
// sherpa-onnx peer on the same files and the same cores, in one run:
// real-time factor, real-time streams one core sustains, throughput ratio,
// state bytes per stream and the batch sizes reached.
//
// The peer runs at its best: the same encoder file, every stream given all
// its audio up front and decoded with decodeStreams (batched), one process
// per core. Needs `scripts/setup --peer` (Node.js and sherpa-onnx-node).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
)

const defaultModel = "../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile"

type options struct {
	model    string
	streams  int
	cores    int
	encoders string
	peer     bool
	peerDir  string
	maxBatch int
	pieceMs  int
	threads  int
	workers  int
	decoding string
	provider string
	devices  []int
	maxWait  time.Duration
	// Real-time mode (realtime.go) and the fault run (faults.go).
	batches   []int
	seconds   float64
	find      bool
	findSteps int
	faults    int
	vad       bool
	null      bool
}

func main() {
	var o options
	flag.StringVar(&o.model, "model", "", "model directory (default: $CALLSCRIBE_MODEL or the shared test model)")
	flag.IntVar(&o.streams, "streams", 64, "concurrent streams (the corpus files, repeated)")
	flag.IntVar(&o.cores, "cores", runtime.NumCPU(), "cores for each side: Callscribe workers, peer processes")
	flag.StringVar(&o.encoders, "encoders", "encoder-epoch-12-avg-2-chunk-16-left-64.fp32.dynbatch.onnx,encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx", "encoder files to measure, comma-separated")
	flag.BoolVar(&o.peer, "peer", true, "run the sherpa-onnx peer too")
	flag.StringVar(&o.peerDir, "peer-dir", ".cache/peer/node_modules", "node_modules holding sherpa-onnx-node")
	flag.IntVar(&o.maxBatch, "max-batch", asr.DefaultMaxBatch, "Callscribe's largest batch")
	flag.IntVar(&o.pieceMs, "piece-ms", 0, "feed Callscribe's streams in pieces of this many ms (0: whole, as the peer is fed)")
	flag.IntVar(&o.threads, "threads", 1, "intra-op threads per Callscribe worker")
	flag.IntVar(&o.workers, "workers", 0, "Callscribe workers (default: -cores)")
	flag.StringVar(&o.decoding, "decoding", asr.Greedy, "decoding method, on both sides: "+asr.Greedy+" or "+asr.ModifiedBeamSearch+" (4 active paths)")
	flag.StringVar(&o.provider, "provider", "cpu", "Callscribe's execution provider: cpu or cuda (with cuda, texts are compared with a CPU run)")
	devices := flag.String("device-ids", "", "CUDA devices, comma-separated (default 0)")
	flag.DurationVar(&o.maxWait, "max-wait", 0, "Callscribe's batch wait (default: by provider)")
	hotwords := flag.Bool("hotwords", false, "measure hotwords instead (espeak-ng speech of 24 phrases the model does not know)")
	realtime := flag.Bool("realtime", false, "measure real-time serving instead: -streams paced streams, chunk latency, step time, host CPU")
	batches := flag.String("batches", "", "real-time mode: the largest batches to try, comma-separated (default -max-batch)")
	flag.Float64Var(&o.seconds, "seconds", 15, "real-time mode: seconds per trial (the first 3 not measured)")
	flag.BoolVar(&o.find, "find", false, "real-time mode: from -streams, double the streams while they are served in real time, then bisect")
	flag.IntVar(&o.findSteps, "find-steps", 2, "real-time mode: bisection steps after the doubling")
	flag.BoolVar(&o.vad, "vad", false, "real-time mode: endpoints by Silero VAD (run for every stream on the host)")
	flag.BoolVar(&o.null, "null-engine", false, "real-time mode: engines that return at once (host-side cost alone: what feeding a device infinitely fast costs)")
	flag.IntVar(&o.faults, "faults", 0, "fault run instead: destroy the engine under a running batch every this many decoder calls (and hang every 3×), compare texts with a clean run")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-bench: -cpuprofile: %v\n", err)
			os.Exit(2)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var err error
	if o.devices, err = intList(*devices); err != nil {
		fmt.Fprintf(os.Stderr, "callscribe-bench: -device-ids: %v\n", err)
		os.Exit(2)
	}
	if o.batches, err = intList(*batches); err != nil {
		fmt.Fprintf(os.Stderr, "callscribe-bench: -batches: %v\n", err)
		os.Exit(2)
	}
	if len(o.batches) == 0 {
		o.batches = []int{o.maxBatch}
	}
	mode := run
	switch {
	case *realtime:
		mode = realtimeBench
	case o.faults > 0:
		mode = faultBench
	}
	if *hotwords {
		if err := hotwordEval(o, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := mode(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "callscribe-bench: %v\n", err)
		os.Exit(1)
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func modelDir(o options) string {
	if o.model != "" {
		return o.model
	}
	if d := os.Getenv("CALLSCRIBE_MODEL"); d != "" {
		return d
	}
	return defaultModel
}

// corpus returns the benchmark files as 16 kHz WAVs (written to tmp) and
// their samples: the model's test WAVs and the parity corpus.
func corpus(model, tmp string) ([]string, [][]float32, error) {
	files, err := globWAVs(model)
	if err != nil {
		return nil, nil, err
	}
	var paths []string
	var sigs [][]float32
	for i, f := range files {
		x, err := read16k(f)
		if err != nil {
			return nil, nil, err
		}
		p := filepath.Join(tmp, fmt.Sprintf("c%02d.wav", i))
		var buf bytes.Buffer
		if err := media.WriteWAV(&buf, media.Audio{SampleRate: 16000, Samples: x}); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return nil, nil, err
		}
		// What the peer reads back: PCM16.
		back, err := media.ReadWAVFile(p)
		if err != nil {
			return nil, nil, err
		}
		paths = append(paths, p)
		sigs = append(sigs, back.Samples)
	}
	return paths, sigs, nil
}

// globWAVs lists the benchmark corpus: the model's test WAVs and the
// parity corpus.
func globWAVs(model string) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(model, "test_wavs", "*.wav"))
	more, _ := filepath.Glob("asr/testdata/parity/*.wav")
	files = append(files, more...)
	if len(files) == 0 {
		return nil, fmt.Errorf("no WAV files under %s", model)
	}
	return files, nil
}

type result struct {
	name      string
	wall, cpu time.Duration
	audio     time.Duration
	batches   map[int]int64
	texts     []string
	stateB    int // encoder state per stream
	ownB      int // Stream.MemoryBytes of a live stream
}

func (r result) rtf() float64 { return r.cpu.Seconds() / r.audio.Seconds() }

// streamsPerCore is how many real-time streams one core sustains.
func (r result) streamsPerCore() float64 { return r.audio.Seconds() / r.cpu.Seconds() }

// throughput is seconds of audio decoded per second of wall time.
func (r result) throughput() float64 { return r.audio.Seconds() / r.wall.Seconds() }

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(o options, w io.Writer) error {
	model := modelDir(o)
	tmp, err := os.MkdirTemp("", "callscribe-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	paths, sigs, err := corpus(model, tmp)
	if err != nil {
		return err
	}
	var files []string
	var all [][]float32
	var audio time.Duration
	for i := range o.streams {
		files = append(files, paths[i%len(paths)])
		all = append(all, sigs[i%len(sigs)])
		audio += time.Duration(len(sigs[i%len(sigs)])) * time.Second / 16000
	}
	if err := asr.InitRuntime("", o.provider); err != nil {
		return err
	}
	fmt.Fprintf(w, "corpus: %d streams, %.1f s of audio, %d cores each side, ONNX Runtime %s (%s)\n\n",
		o.streams, audio.Seconds(), o.cores, asr.RuntimeVersion(), asr.RuntimePath())
	for _, enc := range strings.Split(o.encoders, ",") {
		cs, err := runCallscribe(model, enc, all, o)
		if err != nil {
			return err
		}
		cs.audio = audio
		rows := []result{cs}
		if o.provider != "cpu" { // the same files on CPU, same library
			oc := o
			oc.provider = "cpu"
			cr, err := runCallscribe(model, enc, all, oc)
			if err != nil {
				return err
			}
			cr.audio, cr.name = audio, "callscribe/cpu"
			rows = append(rows, cr)
			defer fmt.Fprintf(w, "%s: %d of %d texts equal between %s and CPU\n", enc, equalTexts(cs.texts, cr.texts), len(cs.texts), cs.name)
		}
		if o.peer {
			pr, err := runPeer(model, enc, files, o)
			if err != nil {
				return err
			}
			pr.audio = audio
			rows = append(rows, pr)
			defer fmt.Fprintf(w, "%s: %d of %d texts equal between Callscribe and the peer\n", enc, equalTexts(cs.texts, pr.texts), len(cs.texts))
		}
		fmt.Fprintf(w, "encoder %s\n", enc)
		fmt.Fprintf(w, "  %-11s %9s %9s %8s %13s %12s %s\n", "", "wall s", "cpu s", "RTF", "streams/core", "audio s/s", "batches (size:count)")
		for _, r := range rows {
			fmt.Fprintf(w, "  %-11s %9.2f %9.2f %8.4f %13.1f %12.1f %s\n", r.name, r.wall.Seconds(), r.cpu.Seconds(),
				r.rtf(), r.streamsPerCore(), r.throughput(), hist(r.batches))
		}
		if p := rows[len(rows)-1]; o.peer && len(rows) >= 2 {
			fmt.Fprintf(w, "  throughput Callscribe / peer: %.2fx (cpu per audio second: %.2fx)\n",
				rows[0].throughput()/p.throughput(), p.cpu.Seconds()/rows[0].cpu.Seconds())
		}
		fmt.Fprintf(w, "  memory per live stream: %d B (encoder state %d B, the rest decoder cache, features, fbank, hypothesis)\n\n", cs.ownB, cs.stateB)
	}
	return nil
}

// batcherOptions are Callscribe's batcher as the flags choose it: on CPU
// one worker per -cores unless -workers, on a GPU the provider's default.
func batcherOptions(o options, maxBatch int) asr.BatcherOptions {
	workers := o.workers
	if workers <= 0 && o.provider == "cpu" {
		workers = o.cores
	}
	return asr.BatcherOptions{MaxBatch: maxBatch, MaxWait: o.maxWait, Workers: workers, Decoding: o.decoding,
		Engine: asr.EngineOptions{Threads: o.threads, Provider: o.provider}, DeviceIDs: o.devices}
}

// onProvider refuses figures taken on another provider than the one asked
// (CUDA that did not start runs on CPU).
func onProvider(asked, running string) error {
	if running != asked {
		return fmt.Errorf("provider %s asked, engines run on %s", asked, running)
	}
	return nil
}

// loadModel starts ONNX Runtime for the provider and reads the model with
// the first of -encoders.
func loadModel(o options) (model, enc string, info *asr.ModelInfo, err error) {
	model = modelDir(o)
	if err = asr.InitRuntime("", o.provider); err != nil {
		return "", "", nil, err
	}
	enc = strings.Split(o.encoders, ",")[0]
	info, err = asr.LoadModelInfo(asr.ModelFiles{Dir: model, Encoder: enc})
	return model, enc, info, err
}

func equalTexts(a, b []string) int {
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return same
}

func hist(m map[int]int64) string {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	s := strings.Join(parts, " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func runCallscribe(model, enc string, sigs [][]float32, o options) (result, error) {
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: model, Encoder: enc})
	if err != nil {
		return result{}, err
	}
	bo := batcherOptions(o, o.maxBatch)
	bo.MaxBacklogMs = -1
	b, err := asr.NewBatcher(info, bo)
	if err != nil {
		return result{}, err
	}
	defer b.Close()
	if err := onProvider(o.provider, b.Provider()); err != nil {
		return result{}, err
	}
	// Measured before the run on engines already grown by a warm-up, so the
	// heap the streams add is their own.
	if _, err := asr.DecodeAll(b, sigs[:min(len(sigs), 2*o.maxBatch)], 0); err != nil {
		return result{}, err
	}
	own := streamMemory(b, sigs[1%len(sigs)])
	before := b.Stats().BatchSizes
	runtime.GC()
	c0, t0 := cpuTime(syscall.RUSAGE_SELF), time.Now()
	res, err := asr.DecodeAll(b, sigs, o.pieceMs)
	if err != nil {
		return result{}, err
	}
	r := result{name: "callscribe/" + o.provider, wall: time.Since(t0), cpu: cpuTime(syscall.RUSAGE_SELF) - c0,
		batches: b.Stats().BatchSizes, stateB: info.StateBytes(), ownB: own}
	for k, v := range before {
		if r.batches[k] -= v; r.batches[k] == 0 {
			delete(r.batches, k)
		}
	}
	for _, rs := range res {
		r.texts = append(r.texts, asr.FinalText(rs))
	}
	return r, nil
}

// streamMemory reports what one of 16 live streams holds of its own
// (Stream.MemoryBytes) after 5 s of speech arriving in 20 ms packets with
// decoding keeping up, as on a call.
func streamMemory(b *asr.Batcher, x []float32) int {
	const n = 16
	streams := make([]*asr.Stream, n)
	for i := range streams {
		streams[i], _ = b.NewStream(fmt.Sprint("m", i), func(asr.Result) {})
	}
	chunks := b.Stats().Chunks
	for off := 0; off+320 <= min(len(x), 5*16000); off += 320 {
		for _, s := range streams {
			s.Accept(x[off : off+320])
		}
		if frames := (off+320-280)/160 + 1; (off/320)%16 == 15 && frames >= 45 {
			want := chunks + int64(n*((frames-45)/32+1))
			for start := time.Now(); b.Stats().Chunks < want && time.Since(start) < 10*time.Second; {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	own := 0
	for _, s := range streams {
		own += s.MemoryBytes()
		s.Finish()
		<-s.Done()
	}
	return own / n
}

type peerOut struct {
	Texts   []string       `json:"texts"`
	Batches map[string]int `json:"batches"`
	Seconds float64        `json:"seconds"`
}

func runPeer(model, enc string, files []string, o options) (result, error) {
	peerDir, err := filepath.Abs(o.peerDir)
	if err != nil {
		return result{}, err
	}
	if _, err := os.Stat(filepath.Join(peerDir, "sherpa-onnx-node")); err != nil {
		return result{}, fmt.Errorf("peer not installed (run scripts/setup --peer): %w", err)
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: model, Encoder: enc})
	if err != nil {
		return result{}, err
	}
	batch1 := "0"
	if info.MaxBatch == 1 {
		batch1 = "1"
	}
	// Streams are dealt to the processes round robin.
	parts := make([][]int, o.cores)
	for i := range files {
		parts[i%o.cores] = append(parts[i%o.cores], i)
	}
	r := result{name: "sherpa-onnx", batches: map[int]int64{}, texts: make([]string, len(files))}
	c0, t0 := cpuTime(syscall.RUSAGE_CHILDREN), time.Now()
	var wg sync.WaitGroup
	errs := make([]error, o.cores)
	outs := make([]peerOut, o.cores)
	for p, idx := range parts {
		args := []string{"scripts/peer/bench.js", model, filepath.Base(info.Files.Encoder),
			filepath.Base(info.Files.Decoder), filepath.Base(info.Files.Joiner), batch1}
		for _, i := range idx {
			args = append(args, files[i])
		}
		cmd := exec.Command("node", args...)
		peerDecoding := "greedy_search"
		if o.decoding == asr.ModifiedBeamSearch {
			peerDecoding = asr.ModifiedBeamSearch
		}
		cmd.Env = append(os.Environ(), "NODE_PATH="+peerDir, "PEER_DECODING="+peerDecoding, "PEER_ACTIVE_PATHS=4",
			"LD_LIBRARY_PATH="+filepath.Join(peerDir, "sherpa-onnx-linux-x64"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.Output()
			if err != nil {
				errs[p] = fmt.Errorf("peer process %d: %w", p, err)
				return
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			errs[p] = json.Unmarshal([]byte(lines[len(lines)-1]), &outs[p])
		}()
	}
	wg.Wait()
	r.wall, r.cpu = time.Since(t0), cpuTime(syscall.RUSAGE_CHILDREN)-c0
	for p, idx := range parts {
		if errs[p] != nil {
			return result{}, errs[p]
		}
		for k, i := range idx {
			r.texts[i] = outs[p].Texts[k]
		}
		for k, v := range outs[p].Batches {
			var n int
			fmt.Sscan(k, &n)
			r.batches[n] += int64(v)
		}
	}
	return r, nil
}
