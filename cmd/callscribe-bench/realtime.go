package main

// Real-time mode: streams fed at the pace of live calls, as the gateway
// feeds them, for as many streams as the engines keep up with. Each trial
// reports the chunk latency (a stream's chunk ready → its step committed),
// the step time by batch size, the host CPU per stream and the frames
// dropped; with -find the streams double while they are served in real
// time and then the boundary is bisected.

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callscribe/callscribe/asr"
)

// pieceMs is the audio fed per stream per tick, as an RTP packet carries.
const pieceMs = 20

type trial struct {
	streams  int
	maxBatch int
	wall     time.Duration
	cpu      time.Duration // host CPU over the measured span, all threads
	chunk    asr.Latency   // chunk latency over the measured span
	step     asr.Latency
	sizes    map[int]int64
	times    map[int]time.Duration
	dropped  int64 // feature frames dropped (a backlog past its bound)
	lag      time.Duration
	fedShort bool // the feeders fell behind real time: the host, not the recognizer, was the limit
}

// keptUp says whether the streams were served in real time: 95% of chunks
// decoded within one chunk period of being ready, nothing dropped.
func (t trial) keptUp(period time.Duration) bool {
	return t.chunk.N() > 0 && t.chunk.Quantile(0.95) <= period && t.dropped == 0 && !t.fedShort
}

func realtimeBench(o options, w io.Writer) error {
	model, enc, info, err := loadModel(o)
	if err != nil {
		return err
	}
	speech, err := speechLoop(model)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "real time: encoder %s, provider %s, ONNX Runtime %s (%s), %d host cores, %.0f s trials (first 3 s not measured)\n",
		enc, o.provider, asr.RuntimeVersion(), asr.RuntimePath(), runtime.NumCPU(), o.seconds)
	if o.vad {
		fmt.Fprintf(w, "endpoints by Silero VAD\n")
	}
	if o.null {
		fmt.Fprintf(w, "null engines: the model is not run (every output blank); host-side cost alone\n")
	}
	fmt.Fprintf(w, "kept up: chunk latency p95 within one chunk period, no frame dropped, feeders on time\n\n")
	fmt.Fprintf(w, "%9s %7s %7s %9s %9s %9s %9s %11s %9s %8s %s\n", "max_batch", "streams", "kept", "chunk p50", "chunk p95",
		"step p50", "step p95", "cpu/stream", "dropped", "lag", "steps by size (size:count@mean ms)")
	for _, mb := range o.batches {
		bo := batcherOptions(o, mb)
		bo.Endpoint, bo.Calibrate = asr.DefaultEndpointConfig(), true
		if o.vad {
			bo.Endpoint.Mode = asr.EndpointVAD
		}
		if o.null {
			bo.NewEngine = openNull
		}
		b, err := asr.NewBatcher(info, bo)
		if err != nil {
			return err
		}
		if err := onProvider(o.provider, b.Provider()); err != nil {
			b.Close()
			return err
		}
		period := b.ChunkPeriod()
		try := func(n int) (bool, error) {
			t, err := runTrial(b, speech, n, time.Duration(o.seconds*float64(time.Second)))
			if err != nil {
				return false, err
			}
			t.maxBatch = mb
			ok := t.keptUp(period)
			printTrial(w, t, ok)
			return ok, nil
		}
		best, err := search(o, try)
		b.Close()
		if err != nil {
			return err
		}
		if o.find {
			fmt.Fprintf(w, "max_batch %d, %d workers: %d streams served in real time\n\n", mb, b.Workers(), best)
		}
	}
	return nil
}

// search runs one trial at o.streams, or with -find doubles from there
// while the streams keep up (halves while they do not), then bisects the
// boundary; it returns the most streams that kept up (0 if none).
func search(o options, try func(int) (bool, error)) (int, error) {
	n := max(o.streams, 1)
	ok, err := try(n)
	if err != nil || !o.find {
		if ok {
			return n, err
		}
		return 0, err
	}
	good, bad := 0, 0
	for {
		if ok {
			good = n
		} else {
			bad = n
		}
		if good > 0 && bad > 0 {
			break
		}
		if ok {
			n *= 2
		} else if n /= 2; n == 0 {
			return 0, nil
		}
		if ok, err = try(n); err != nil {
			return good, err
		}
	}
	for range o.findSteps {
		if bad-good <= max(1, good/32) {
			break
		}
		n = (good + bad) / 2
		if ok, err = try(n); err != nil {
			return good, err
		}
		if ok {
			good = n
		} else {
			bad = n
		}
	}
	return good, nil
}

func printTrial(w io.Writer, t trial, ok bool) {
	kept := "yes"
	if !ok {
		kept = "no"
	}
	if t.fedShort {
		kept = "host"
	}
	perStream := 100 * t.cpu.Seconds() / t.wall.Seconds() / float64(t.streams)
	fmt.Fprintf(w, "%9d %7d %7s %7dms %7dms %7dms %7dms %9.2f%% %9d %6dms %s\n", t.maxBatch, t.streams, kept,
		t.chunk.Quantile(0.5).Milliseconds(), t.chunk.Quantile(0.95).Milliseconds(),
		t.step.Quantile(0.5).Milliseconds(), t.step.Quantile(0.95).Milliseconds(), perStream, t.dropped,
		t.lag.Milliseconds(), stepSizes(t.sizes, t.times))
}

// stepSizes lists the most frequent batch sizes with their mean step time.
func stepSizes(sizes map[int]int64, times map[int]time.Duration) string {
	var ks []int
	for k := range sizes {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		return sizes[ks[i]] > sizes[ks[j]] || sizes[ks[i]] == sizes[ks[j]] && ks[i] > ks[j]
	})
	var parts []string
	for _, k := range ks[:min(len(ks), 4)] {
		parts = append(parts, fmt.Sprintf("%d:%d@%.1f", k, sizes[k], float64(times[k].Microseconds())/1000/float64(sizes[k])))
	}
	return strings.Join(parts, " ")
}

// speechLoop is the benchmark corpus end to end, at 16 kHz: the audio every
// stream plays from its own offset, over and over.
func speechLoop(model string) ([]float32, error) {
	files, err := globWAVs(model)
	if err != nil {
		return nil, err
	}
	var all []float32
	for _, f := range files {
		x, err := read16k(f)
		if err != nil {
			return nil, err
		}
		all = append(all, x...)
	}
	if len(all) < 16000 {
		return nil, fmt.Errorf("no speech under %s", model)
	}
	return all, nil
}

// runTrial feeds n streams in real time for d: one feeder goroutine per
// core, each feeding its share of the streams every 20 ms (catching up
// when late). Streams start spread over one chunk period, as calls do.
func runTrial(b *asr.Batcher, speech []float32, n int, d time.Duration) (trial, error) {
	t := trial{streams: n}
	streams := make([]*asr.Stream, n)
	for i := range streams {
		s, err := b.NewStream(fmt.Sprint("rt", i), func(asr.Result) {})
		if err != nil {
			for _, s := range streams[:i] {
				s.Close()
			}
			return t, err
		}
		streams[i] = s
	}
	piece := 16 * pieceMs
	ticks := int(d / (pieceMs * time.Millisecond))
	stagger := int(b.ChunkPeriod() / (pieceMs * time.Millisecond))
	warm := int(3 * time.Second / (pieceMs * time.Millisecond))
	feeders := runtime.NumCPU()
	start := time.Now()
	var wg sync.WaitGroup
	var late atomic.Bool
	var measured sync.Once
	var m0 struct {
		at    time.Time
		cpu   time.Duration
		chunk asr.Latency
		step  asr.Latency
		st    asr.Stats
	}
	mark := func() {
		m0.at, m0.cpu = time.Now(), cpuTime(syscall.RUSAGE_SELF)
		m0.chunk, m0.step, m0.st = b.ChunkLatency(), b.StepLatency(), b.Stats()
	}
	for f := range feeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fed := 0 // ticks fed
			for fed < ticks {
				due := min(int(time.Since(start)/(pieceMs*time.Millisecond))+1, ticks)
				if due-fed > stagger { // more than a chunk behind real time
					late.Store(true)
				}
				for ; fed < due; fed++ {
					if fed == warm && f == 0 {
						measured.Do(mark)
					}
					for i := f; i < n; i += feeders {
						k := fed - i%stagger // the stream's own tick
						if k < 0 {
							continue
						}
						off := ((i*7919 + k) * piece) % (len(speech) - piece)
						streams[i].Accept(speech[off : off+piece])
					}
				}
				time.Sleep(time.Until(start.Add(time.Duration(fed) * pieceMs * time.Millisecond)))
			}
		}()
	}
	wg.Wait()
	measured.Do(mark)
	st := b.Stats()
	t.wall = time.Since(m0.at)
	t.cpu = cpuTime(syscall.RUSAGE_SELF) - m0.cpu
	t.chunk, t.step = b.ChunkLatency().Sub(m0.chunk), b.StepLatency().Sub(m0.step)
	t.dropped = st.DroppedFrames - m0.st.DroppedFrames
	t.lag = b.Lag()
	t.fedShort = late.Load()
	t.sizes, t.times = map[int]int64{}, map[int]time.Duration{}
	for k, v := range st.BatchSizes {
		if c := v - m0.st.BatchSizes[k]; c > 0 {
			t.sizes[k], t.times[k] = c, st.BatchTime[k]-m0.st.BatchTime[k]
		}
	}
	for _, s := range streams {
		s.Close()
	}
	return t, nil
}

// nullEngine has a real engine's buffers but runs nothing: every output
// stays zero (blank), so a step costs only the host's side of it —
// features, stacking states in and out, the search, committing.
type nullEngine struct{ asr.Engine }

func (nullEngine) Encode(*asr.Batch) error { return nil }
func (nullEngine) Decode(*asr.Batch) error { return nil }
func (nullEngine) Join(*asr.Batch) error   { return nil }

func openNull(info *asr.ModelInfo, o asr.EngineOptions) (asr.Engine, error) {
	o.Provider = "cpu"
	eng, err := asr.NewEngine(info, o)
	if err != nil {
		return nil, err
	}
	return nullEngine{eng}, nil
}
