package asr

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callscribe/callscribe/asr/asrtest"
)

// faultPlan decides, by the global number of an engine call, whether it
// fails, hangs until aborted, or hangs ignoring Abort for a while.
type faultPlan struct {
	calls    atomic.Int64
	fail     map[int64]bool
	hang     map[int64]bool
	hardHang map[int64]bool
	destroy  map[int64]bool // the real engine closed under the batch, the call failed
	// Engines opened with provider "cuda" fail every call, as a lost
	// device would, until deviceUp; with refuseCUDA they do not open at
	// all (NewEngine's fallback: a CPU engine) until then.
	engines    atomic.Int64
	deviceUp   atomic.Bool
	refuseCUDA bool
}

type faultEngine struct {
	Engine
	plan     *faultPlan
	provider string
	abort    chan struct{}
	once     sync.Once
}

var errInjected = errors.New("injected fault")

func (e *faultEngine) check() error {
	if e.provider == "cuda" && !e.plan.deviceUp.Load() {
		return errInjected
	}
	n := e.plan.calls.Add(1)
	switch {
	case e.plan.fail[n]:
		return errInjected
	case e.plan.hang[n]:
		<-e.abort
		return ErrAborted
	case e.plan.destroy[n]:
		e.Engine.Close()
		if err := e.Engine.Decode(nil); !errors.Is(err, ErrEngineClosed) {
			return fmt.Errorf("a closed engine ran: %v", err)
		}
		return errInjected
	case e.plan.hardHang[n]:
		time.Sleep(1500 * time.Millisecond) // a driver that ignores cancellation
		return ErrAborted
	}
	return nil
}

func (e *faultEngine) Encode(b *Batch) error {
	if err := e.check(); err != nil {
		return err
	}
	return e.Engine.Encode(b)
}

func (e *faultEngine) Decode(b *Batch) error {
	if err := e.check(); err != nil {
		return err
	}
	return e.Engine.Decode(b)
}

func (e *faultEngine) Join(b *Batch) error {
	if err := e.check(); err != nil {
		return err
	}
	return e.Engine.Join(b)
}

func (e *faultEngine) Abort() {
	e.once.Do(func() { close(e.abort) })
	e.Engine.Abort()
}

func (e *faultEngine) Provider() string { return e.provider }

func (p *faultPlan) open(info *ModelInfo, opts EngineOptions) (Engine, error) {
	p.engines.Add(1)
	want := opts.Provider
	opts.Provider = "cpu" // the real engine under the fake device
	eng, err := NewEngine(info, opts)
	if err != nil {
		return nil, err
	}
	if want == "" || (want == "cuda" && p.refuseCUDA && !p.deviceUp.Load()) {
		want = "cpu"
	}
	return &faultEngine{Engine: eng, plan: p, provider: want, abort: make(chan struct{})}, nil
}

func set(ns ...int64) map[int64]bool {
	m := map[int64]bool{}
	for _, n := range ns {
		m[n] = true
	}
	return m
}

// decodeWithin runs DecodeAll and fails the test if it does not finish in time.
func decodeWithin(t *testing.T, b *Batcher, sigs [][]float32, d time.Duration) [][]Result {
	t.Helper()
	type out struct {
		res [][]Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		r, err := DecodeAll(b, sigs, 100)
		ch <- out{r, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.res
	case <-time.After(d):
		t.Fatalf("decoding stuck after %v: %+v", d, b.Stats())
	}
	return nil
}

func TestFaultsLoseNothing(t *testing.T) {
	for _, decoding := range []string{Greedy, ModifiedBeamSearch} {
		t.Run(decoding, func(t *testing.T) { testFaultsLoseNothing(t, decoding) })
	}
}

func testFaultsLoseNothing(t *testing.T, decoding string) {
	names, sigs := loadTestWavs(t)
	clean := newTestBatcher(t, ModelFiles{}, BatcherOptions{Decoding: decoding})
	want := decodeWithin(t, clean, sigs, time.Minute)

	plan := &faultPlan{
		fail:     set(1, 2, 40, 41, 42, 300, 301), // encoder and joiner calls fail, some in a row
		destroy:  set(80, 500),                    // the engine's sessions destroyed mid-step
		hang:     set(25, 150, 151, 600),          // calls hang until aborted
		hardHang: set(400),                        // a call that ignores Abort
	}
	opts := BatcherOptions{NewEngine: plan.open, RunTimeout: 300 * time.Millisecond, Decoding: decoding}
	b := newTestBatcher(t, ModelFiles{}, opts)
	got := decodeWithin(t, b, sigs, time.Minute)

	for i, n := range names {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s: %d results, want %d", n, len(got[i]), len(want[i]))
			continue
		}
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			if g.Kind != w.Kind || g.Text != w.Text || g.StartMs != w.StartMs || g.EndMs != w.EndMs || g.Conf != w.Conf {
				t.Errorf("%s result %d: got %+v, want %+v", n, j, g, w)
			}
		}
	}
	st := b.Stats()
	t.Logf("stats: %+v; engines opened %d", st, plan.engines.Load())
	if st.Faults < 10 || st.Timeouts < 5 || st.Retries != st.Faults {
		t.Errorf("faults %d timeouts %d retries %d", st.Faults, st.Timeouts, st.Retries)
	}
	if plan.engines.Load() < 1+st.Faults {
		t.Errorf("%d engines for %d faults: a failed engine was reused", plan.engines.Load(), st.Faults)
	}
	if st.ActiveStreams != 0 {
		t.Errorf("%d streams left", st.ActiveStreams)
	}
}

func TestLostDeviceFallsBackToCPU(t *testing.T) {
	names, sigs := loadTestWavs(t)
	plan := &faultPlan{}
	opts := BatcherOptions{NewEngine: plan.open, RunTimeout: 30 * time.Second, FallbackAfter: 2, Workers: 1,
		Engine: EngineOptions{Provider: "cuda"}}
	b := newTestBatcher(t, ModelFiles{}, opts)
	got := decodeWithin(t, b, sigs, time.Minute)
	for i, n := range names {
		if text := FinalText(got[i]); text != testWavTexts[n] {
			t.Errorf("%s: %q", n, text)
		}
	}
	st := b.Stats()
	if st.Fallbacks != 1 || st.Faults != 2 /* the two failed CUDA steps */ || !st.Healthy || b.Provider() != "cpu" {
		t.Errorf("fallbacks %d faults %d healthy %v provider %s", st.Fallbacks, st.Faults, st.Healthy, b.Provider())
	}
}

// A device lost while serving: its engine moves to CPU after FallbackAfter
// failed steps, tries the device every GPURetry, and moves back once it
// opens again; nothing is lost on the way.
func TestDeviceComesBack(t *testing.T) {
	names, sigs := loadTestWavs(t)
	plan := &faultPlan{refuseCUDA: true}
	plan.deviceUp.Store(true)
	opts := BatcherOptions{NewEngine: plan.open, Workers: 1, GPURetry: 200 * time.Millisecond,
		Engine: EngineOptions{Provider: "cuda"}}
	b := newTestBatcher(t, ModelFiles{}, opts)
	check := func(when string) {
		got := decodeWithin(t, b, sigs, time.Minute)
		for i, n := range names {
			if text := FinalText(got[i]); text != testWavTexts[n] {
				t.Errorf("%s: %s: %q", when, n, text)
			}
		}
	}
	check("device up")
	if st := b.Stats(); st.Fallbacks != 0 || b.Provider() != "cuda" {
		t.Fatalf("device up: fallbacks %d, provider %s", st.Fallbacks, b.Provider())
	}
	plan.deviceUp.Store(false) // off the bus: calls fail, the device does not open
	check("device lost")
	// One failed step; the fresh engine could not open on the device.
	if st := b.Stats(); st.Fallbacks != 1 || st.Faults != 1 || st.Recoveries != 0 || b.Provider() != "cpu" {
		t.Fatalf("device lost: fallbacks %d faults %d recoveries %d, provider %s", st.Fallbacks, st.Faults, st.Recoveries, b.Provider())
	}
	plan.deviceUp.Store(true)
	time.Sleep(300 * time.Millisecond)
	check("device back")
	if st := b.Stats(); st.Recoveries != 1 || st.Faults != 1 || b.Provider() != "cuda" {
		t.Errorf("device back: recoveries %d faults %d provider %s", st.Recoveries, st.Faults, b.Provider())
	}
}

// CUDA that does not start at all makes a CPU recognizer for the run, with
// the CPU's defaults, and its engines do not try the device again.
func TestNoDeviceAtStartRunsAsCPU(t *testing.T) {
	plan := &faultPlan{refuseCUDA: true}
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{NewEngine: plan.open, GPURetry: time.Millisecond,
		Engine: EngineOptions{Provider: "cuda"}})
	if b.Workers() != runtime.GOMAXPROCS(0) || b.opts.MaxBatch != DefaultMaxBatch || b.opts.MaxWait != DefaultMaxWait ||
		b.Engines()["cpu"] != b.Workers() {
		t.Errorf("workers %d, batch %d, wait %v, engines %v", b.Workers(), b.opts.MaxBatch, b.opts.MaxWait, b.Engines())
	}
	_, sigs := loadTestWavs(t)
	plan.deviceUp.Store(true)
	decodeWithin(t, b, sigs, time.Minute)
	if st := b.Stats(); st.Recoveries != 0 || st.Fallbacks != 1 || b.Provider() != "cpu" {
		t.Errorf("recoveries %d fallbacks %d provider %s", st.Recoveries, st.Fallbacks, b.Provider())
	}
}

// Engines are spread over the devices named.
func TestEnginesSpreadOverDevices(t *testing.T) {
	var mu sync.Mutex
	devices := map[int]int{}
	plan := &faultPlan{}
	plan.deviceUp.Store(true)
	open := func(info *ModelInfo, o EngineOptions) (Engine, error) {
		mu.Lock()
		devices[o.DeviceID]++
		mu.Unlock()
		return plan.open(info, o)
	}
	b := newTestBatcher(t, ModelFiles{}, BatcherOptions{NewEngine: open, DeviceIDs: []int{2, 5},
		Engine: EngineOptions{Provider: "cuda"}})
	mu.Lock()
	defer mu.Unlock()
	if b.Workers() != 2*DefaultCUDAEnginesPerDevice || devices[2] != DefaultCUDAEnginesPerDevice || devices[5] != DefaultCUDAEnginesPerDevice {
		t.Errorf("%d workers, engines by device %v", b.Workers(), devices)
	}
	if b.opts.MaxBatch != DefaultCUDAMaxBatch || b.opts.MaxWait != DefaultCUDAMaxWait {
		t.Errorf("CUDA batch %d wait %v", b.opts.MaxBatch, b.opts.MaxWait)
	}
}

// Without a CUDA build of ONNX Runtime the real engine starts on CPU.
func TestCUDAUnavailableStartsOnCPU(t *testing.T) {
	initRuntime(t)
	info, err := LoadModelInfo(ModelFiles{Dir: asrtest.ModelDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(info, EngineOptions{Provider: "cuda"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Provider() != "cpu" {
		t.Skipf("CUDA provider available here (%s)", e.Provider())
	}
	// The batcher counts the fallback and decodes on CPU.
	b, err := NewBatcher(info, BatcherOptions{Workers: 1, Engine: EngineOptions{Provider: "cuda"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st := b.Stats(); st.Fallbacks != 1 || b.Provider() != "cpu" {
		t.Errorf("fallbacks %d, provider %s", st.Fallbacks, b.Provider())
	}
	if _, err := NewEngine(info, EngineOptions{Provider: "tpu"}); err == nil {
		t.Error("unknown provider accepted")
	}
}

// A stalled engine never lets a stream's backlog grow past its bound: the
// oldest audio is dropped, counted, and decoding resumes after it.
func TestBacklogIsBounded(t *testing.T) {
	_, sigs := loadTestWavs(t)
	plan := &faultPlan{hang: set(1)} // the first call hangs until its deadline
	opts := BatcherOptions{NewEngine: plan.open, RunTimeout: 2 * time.Second, MaxBacklogMs: 1000}
	b := newTestBatcher(t, ModelFiles{}, opts)
	s, err := b.NewStream("s", func(Result) {})
	if err != nil {
		t.Fatal(err)
	}
	x := sigs[1] // 16.7 s, fed while the engine hangs
	for off := 0; off < len(x); off += 320 {
		s.Accept(x[off:min(off+320, len(x))])
		s.mu.Lock()
		backlog := s.framesEnd() - s.processed
		s.mu.Unlock()
		if backlog > 100+45+32 {
			t.Fatalf("backlog %d frames", backlog)
		}
	}
	s.Finish()
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("stream stuck")
	}
	st := b.Stats()
	if st.DroppedFrames < 1000 || st.Timeouts < 1 {
		t.Errorf("dropped %d frames, %d timeouts", st.DroppedFrames, st.Timeouts)
	}
}
