package main

// The fault run: the same files decoded twice on the chosen provider, once
// clean and once with the engines destroyed under running batches and
// hung past the step deadline, and the texts compared. The batcher must
// notice each fault, open a fresh engine (on the device while it works)
// and re-run the batch from the streams' committed state, losing nothing.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callscribe/callscribe/asr"
)

var errDestroyed = errors.New("bench: engine destroyed under a running batch")

// faultPlan counts engine calls across all engines.
type faultPlan struct {
	every     int64
	decodes   atomic.Int64
	encodes   atomic.Int64
	destroyed atomic.Int64
	hung      atomic.Int64
	opened    atomic.Int64
}

// faultyEngine destroys its engine on every every-th decoder call (the
// step's encoder has run: the batch is mid-way) — the ONNX Runtime
// sessions and, on CUDA, their device memory — and fails the call as a
// lost device does; every 3×every-th encoder call hangs until the
// batcher's deadline aborts it.
type faultyEngine struct {
	asr.Engine
	p     *faultPlan
	abort chan struct{}
	once  sync.Once
}

func (e *faultyEngine) Decode(b *asr.Batch) error {
	if e.p.decodes.Add(1)%e.p.every == 0 {
		e.Engine.Close()
		e.p.destroyed.Add(1)
		return errDestroyed
	}
	return e.Engine.Decode(b)
}

func (e *faultyEngine) Encode(b *asr.Batch) error {
	if e.p.encodes.Add(1)%(3*e.p.every) == 0 {
		e.p.hung.Add(1)
		<-e.abort
		return asr.ErrAborted
	}
	return e.Engine.Encode(b)
}

func (e *faultyEngine) Abort() {
	e.once.Do(func() { close(e.abort) })
	e.Engine.Abort()
}

func (p *faultPlan) open(info *asr.ModelInfo, o asr.EngineOptions) (asr.Engine, error) {
	eng, err := asr.NewEngine(info, o)
	if err != nil {
		return nil, err
	}
	p.opened.Add(1)
	return &faultyEngine{Engine: eng, p: p, abort: make(chan struct{})}, nil
}

func faultBench(o options, w io.Writer) error {
	model, enc, info, err := loadModel(o)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "callscribe-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_, sigs, err := corpus(model, tmp)
	if err != nil {
		return err
	}
	var all [][]float32
	for i := range o.streams {
		all = append(all, sigs[i%len(sigs)])
	}
	decode := func(open func(*asr.ModelInfo, asr.EngineOptions) (asr.Engine, error)) ([]string, asr.Stats, string, time.Duration, error) {
		bo := batcherOptions(o, o.maxBatch)
		bo.RunTimeout, bo.MaxBacklogMs, bo.NewEngine = 2*time.Second, -1, open
		b, err := asr.NewBatcher(info, bo)
		if err != nil {
			return nil, asr.Stats{}, "", 0, err
		}
		defer b.Close()
		t0 := time.Now()
		res, err := asr.DecodeAll(b, all, 0)
		if err != nil {
			return nil, asr.Stats{}, "", 0, err
		}
		var texts []string
		for _, r := range res {
			texts = append(texts, asr.FinalText(r))
		}
		return texts, b.Stats(), b.Provider(), time.Since(t0), nil
	}
	clean, _, prov, cleanWall, err := decode(asr.NewEngine)
	if err != nil {
		return err
	}
	if err := onProvider(o.provider, prov); err != nil {
		return err
	}
	plan := &faultPlan{every: int64(o.faults)}
	got, st, provAfter, wall, err := decode(plan.open)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "fault run: %d streams, encoder %s, provider %s, ONNX Runtime %s (%s)\n", len(all), enc, o.provider,
		asr.RuntimeVersion(), asr.RuntimePath())
	fmt.Fprintf(w, "  clean: %.2f s; faulted: %.2f s, engines destroyed under a batch %d, steps hung past the deadline %d\n",
		cleanWall.Seconds(), wall.Seconds(), plan.destroyed.Load(), plan.hung.Load())
	fmt.Fprintf(w, "  batcher: faults %d, timeouts %d, retries %d, fallbacks to CPU %d, engines opened %d, provider at the end %s\n",
		st.Faults, st.Timeouts, st.Retries, st.Fallbacks, plan.opened.Load(), provAfter)
	same := equalTexts(got, clean)
	fmt.Fprintf(w, "  %d of %d texts identical to the clean run\n", same, len(clean))
	if same != len(clean) {
		return fmt.Errorf("%d texts differ after faults", len(clean)-same)
	}
	if plan.destroyed.Load() == 0 {
		return fmt.Errorf("no fault injected: -faults %d is more than the run's decoder calls", o.faults)
	}
	return nil
}
