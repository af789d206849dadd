package asr

import (
	"fmt"
	"testing"
	"time"
)

// benchStreams makes n streams with a chunk of real features ready and
// committed state from having decoded the start of a test WAV.
func benchStreams(b *testing.B, bt *Batcher, n int) []*Stream {
	_, sigs := loadTestWavs(b)
	var ss []*Stream
	for i := range n {
		s, err := bt.NewStream(streamName(i), func(Result) {})
		if err != nil {
			b.Fatal(err)
		}
		s.mu.Lock()
		s.fbank.Accept(sigs[1][:16000*2])
		s.pullFrames()
		s.mu.Unlock()
		ss = append(ss, s)
	}
	return ss
}

func benchEngine(b *testing.B, encoder string, batches []int) {
	bt := newTestBatcher(b, ModelFiles{Encoder: encoder}, BatcherOptions{})
	info := bt.Info()
	for _, n := range batches {
		if info.MaxBatch > 0 && n > info.MaxBatch {
			continue
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			streams := benchStreams(b, bt, n)
			eng, err := NewEngine(info, EngineOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			r := &runner{eng: eng}
			b.ReportAllocs()
			for b.Loop() {
				if err := r.step(info, streams); err != nil {
					b.Fatal(err)
				}
			}
			perChunk := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(n)
			chunkNs := float64(info.ChunkShift) * 10e6
			b.ReportMetric(perChunk/1e3, "µs/stream-chunk")
			b.ReportMetric(chunkNs/perChunk, "streams/core")
		})
	}
}

// BenchmarkEngineStep is one model step (encoder + batched greedy search)
// for a batch of streams on one thread; streams/core is how many real-time
// streams one core sustains at that batch size.
func BenchmarkEngineStep(b *testing.B) {
	b.Run("fp32.dynbatch", func(b *testing.B) { benchEngine(b, "", []int{1, 4, 16, 64}) })
	b.Run("int8", func(b *testing.B) {
		benchEngine(b, "encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx", []int{1})
	})
}

// BenchmarkGreedySearch is the joiner/decoder part of a step alone.
func BenchmarkGreedySearch(b *testing.B) {
	bt := newTestBatcher(b, ModelFiles{}, BatcherOptions{})
	info := bt.Info()
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			streams := benchStreams(b, bt, n)
			eng, _ := NewEngine(info, EngineOptions{})
			defer eng.Close()
			r := &runner{eng: eng}
			if err := r.step(info, streams); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := r.greedy(info, streams, r.batch, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamMemory reports what one live stream holds (Stream.MemoryBytes:
// encoder state, decoder cache, features, fbank, hypothesis) after 10 s of
// speech arriving in 20 ms packets with decoding keeping up, as on a call.
func BenchmarkStreamMemory(b *testing.B) {
	_, sigs := loadTestWavs(b)
	bt := newTestBatcher(b, ModelFiles{}, BatcherOptions{})
	const n = 16
	var own int
	for b.Loop() {
		streams := make([]*Stream, n)
		for i := range streams {
			streams[i], _ = bt.NewStream(streamName(i), func(Result) {})
		}
		chunks := bt.Stats().Chunks
		for off := 0; off+320 <= 16000*10; off += 320 {
			for _, s := range streams {
				s.Accept(sigs[1][off : off+320])
			}
			if (off/320)%16 == 15 { // every 320 ms, let decoding catch up
				frames := (off+320-280)/160 + 1
				want := chunks
				if frames >= 45 {
					want += int64(n * ((frames-45)/32 + 1))
				}
				for start := time.Now(); bt.Stats().Chunks < want && time.Since(start) < 10*time.Second; {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		own = 0
		for _, s := range streams {
			own += s.MemoryBytes()
			s.Finish()
			<-s.Done()
		}
	}
	b.ReportMetric(float64(own)/n, "bytes/stream")
	b.ReportMetric(float64(bt.info.StateBytes()), "state-bytes")
}

// BenchmarkVADChunk: the VAD's time for one stream's 320 ms chunk (ten
// windows) of noise, batched as the worker batches it.
func BenchmarkVADChunk(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			initRuntime(b)
			path, err := FindVADModel("")
			if err != nil {
				b.Fatal(err)
			}
			v, err := NewVAD(path)
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			wins := make([][]float32, n)
			states := make([]*VADState, n)
			for i := range n {
				wins[i] = make([]float32, VADWindow)
				for k := range wins[i] {
					wins[i][k] = float32((i*7919+k*104729)%2001-1000) * 3e-6
				}
				states[i] = &VADState{}
			}
			probs := make([]float32, n)
			b.ResetTimer()
			for range b.N {
				for range 10 {
					if err := v.Run(wins, states, probs); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/stream-chunk")
		})
	}
}
