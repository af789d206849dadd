package asr

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/callscribe/callscribe/word"
)

// ResultKind tells a partial from a final result.
type ResultKind int

const (
	// Partial is the current text of an open utterance; it replaces the
	// previous partial of the same utterance.
	Partial ResultKind = iota
	// Final closes an utterance.
	Final
	// SpeechStart and SpeechEnd say where VAD heard speech begin and end
	// (StartMs; endpoint mode vad only).
	SpeechStart
	SpeechEnd
)

func (k ResultKind) String() string {
	switch k {
	case Final:
		return "final"
	case SpeechStart:
		return "speech.start"
	case SpeechEnd:
		return "speech.end"
	}
	return "partial"
}

// Word is one decoded word with its time in the stream (ms since the stream
// started) and confidence (mean token posterior, 0..1): the word every
// stage after the recognizer reads (redact, itn, transcript).
type Word = word.Word

// Result is a partial or final transcript of one utterance of a stream.
type Result struct {
	Stream  string
	Kind    ResultKind
	Utt     int // utterance index in the stream, from 0
	Text    string
	StartMs int64
	EndMs   int64
	Words   []Word  // the words so far (a partial's may still change)
	Conf    float32 // finals only: mean word confidence
	// GapMs is audio of the utterance dropped undecoded because the
	// stream's backlog overflowed (the recognizer fell behind); times stay
	// true across the gap.
	GapMs int64
	// EndpointMs is where a final's utterance ended: the stream time its
	// endpoint fired, after the trailing silence (at or after EndMs); the
	// next utterance starts there.
	EndpointMs int64
	// NoSpeech: a final of a stream that runs VAD (endpoint mode vad) whose
	// utterance VAD heard no speech in (its words came from noise).
	NoSpeech bool
}

// Stream is one audio source being recognized (a call leg). Accept and
// Finish may be called from one goroutine while the batcher decodes.
type Stream struct {
	id       string
	b        *Batcher
	onResult func(Result)
	done     chan struct{}
	doneOnce sync.Once

	mu         sync.Mutex // guards the fields up to decoding state
	fbank      *Fbank
	feats      []float32 // frames [featStart, featStart+len/dim)
	featStart  int64
	processed  int64        // first frame of the next chunk
	finishing  bool         // Finish called
	queued     bool         // in the batcher's ready queue or in a batch
	readyAt    atomic.Int64 // when last queued, since the batcher's epoch (ns)
	closed     bool
	dropped    int64 // frames dropped on overflow
	segDropped int64 // dropped when the open utterance began
	wordsEnd   int64 // ms where the last final's last word ended
	maxBacklog int64 // frames; <= 0: unbounded
	// VAD (endpoint mode vad or skipping silence): the samples not yet
	// seen, from vadBase.
	vadBuf  []float32
	vadBase int64
	// silent: the stream's last chunk was skipped (read by the batcher's
	// take without s.mu).
	silent atomic.Bool

	// Decoding state: only the batch holding the stream touches it.
	state     []StateBuf
	tokens    []int64 // context + tokens of the open utterance
	times     []int64 // encoder frame of each token after the context
	probs     []float32
	trailing  int // blank frames since the last token
	decOut    []float32
	hasDecOut bool
	hyps      []hyp         // modified beam search: the open utterance's hypotheses
	graph     *ContextGraph // hotwords; nil: none
	vad       *VADState     // nil: no VAD
	seg       *Segmenter    // endpoint mode vad; nil: no speech events
	vadNext   int64         // sample where the next VAD window starts
	vadPend   []vadProb     // mode vad: windows the segmenter has not had yet
	// Skipping silence: where the last voiced window ended (sample; -1:
	// none yet), whether the last chunk was skipped and since which frame.
	voiceEnd  int64
	floor     noiseFloor
	quiet     int // encoder frames since the last token (endpoints do not reset it)
	skipping  bool
	skipFrom  int64
	noSkip    bool // always encoded (calibration)
	vadPrimed bool
	vadHeard  bool  // VAD heard speech in the open utterance
	segStart  int64 // feature frame where the utterance began
	utt       int
	lastLen   int // tokens at the last partial
}

// MemoryBytes is what the stream holds of its own: encoder state, decoder
// cache, hypothesis, feature and fbank buffers (tables shared by all streams
// are not counted).
func (s *Stream) MemoryBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.b.info.StateBytes() + 4*cap(s.decOut) + 8*cap(s.tokens) + 8*cap(s.times) + 4*cap(s.probs)
	for _, h := range s.hyps {
		n += 8*len(h.ys) + 8*len(h.times) + 4*len(h.probs) + 4*len(h.dec)
	}
	return n + 4*cap(s.feats) + s.fbank.bytes()
}

// ID returns the stream's name.
func (s *Stream) ID() string { return s.id }

// Done is closed when a finished stream has delivered its last result.
func (s *Stream) Done() <-chan struct{} { return s.done }

// DroppedMs is the audio dropped undecoded on overflow so far.
func (s *Stream) DroppedMs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped * 10
}

// DecodedMs is how far the recognizer has decoded the stream (ms of stream
// time). The results of the last step may still be on their way, and the
// model emits a word a few hundred ms after its audio.
func (s *Stream) DecodedMs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.processed * 10
}

// Close abandons the stream: it leaves the batcher at once, its pending
// audio is not decoded and no result follows except from a step already
// running. Done is closed. Idempotent; a no-op after the last result.
func (s *Stream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.finishing = true, true
	s.mu.Unlock()
	s.b.remove(s)
	s.doneOnce.Do(func() { close(s.done) })
}

// Accept adds 16 kHz samples in [-1, 1]. It computes features at once and
// never blocks on the model; when decoding falls behind by more than the
// batcher's backlog limit the oldest audio is dropped and counted.
func (s *Stream) Accept(samples []float32) {
	s.mu.Lock()
	if s.finishing || s.closed {
		s.mu.Unlock()
		return
	}
	s.fbank.Accept(samples)
	if s.vad != nil {
		s.vadBuf = append(s.vadBuf, samples...)
		// Decoding far behind: the oldest go, unless the stream keeps
		// all its audio (a file).
		if over := len(s.vadBuf) - vadBufMax; over > 0 && s.maxBacklog > 0 {
			s.vadBuf = s.vadBuf[over:]
			s.vadBase += int64(over)
		}
	}
	s.pullFrames()
	ready := s.readyLocked()
	s.mu.Unlock()
	if ready {
		s.b.enqueue(s)
	}
}

// Finish ends the input: the tail is padded with silence so the model sees
// the last words, the rest is decoded and the last utterance is finalized.
func (s *Stream) Finish() {
	s.mu.Lock()
	if s.finishing || s.closed {
		s.mu.Unlock()
		return
	}
	if pad := s.b.opts.TailPaddingMs * 16; pad > 0 {
		s.fbank.Accept(make([]float32, pad))
	}
	s.fbank.Finish()
	s.pullFrames()
	s.finishing = true
	// A stream in a batch is put back by the batcher when the batch ends.
	enqueue := !s.queued
	s.queued = true
	s.mu.Unlock()
	if enqueue {
		s.b.enqueue(s)
	}
}

// pullFrames moves computed frames into the feature buffer. s.mu held.
func (s *Stream) pullFrames() {
	dim := s.fbank.Dim()
	// Drop frames no chunk needs any more (a stream skipping silence keeps
	// its pre-roll).
	keep := s.processed - s.b.prerollFrames()
	if dead := int(keep-s.featStart) * dim; dead > 0 && dead >= len(s.feats)/2 {
		n := copy(s.feats, s.feats[dead:])
		s.feats = s.feats[:n]
		s.featStart = keep
	}
	for {
		n := len(s.feats)
		if cap(s.feats) < n+dim {
			grown := make([]float32, n, 2*cap(s.feats)+64*dim)
			copy(grown, s.feats)
			s.feats = grown
		}
		s.feats = s.feats[:n+dim]
		if !s.fbank.Next(s.feats[n:]) {
			s.feats = s.feats[:n]
			break
		}
	}
	// Overflow: skip whole chunk shifts of the oldest undecoded audio. A
	// batch holding the stream has copied its chunk already and its commit
	// advances past it, so the skip lands after that chunk.
	if limit := s.maxBacklog; limit > 0 {
		shift := int64(s.b.info.ChunkShift)
		for s.framesEnd()-s.processed > limit+int64(s.b.info.ChunkFrames) {
			s.processed += shift
			s.dropped += shift
			s.b.countDropped(shift)
		}
	}
}

func (s *Stream) framesEnd() int64 {
	return s.featStart + int64(len(s.feats)/s.fbank.Dim())
}

// readyLocked tells whether a full chunk waits and no batch holds the stream.
// It marks the stream queued when so. s.mu held.
func (s *Stream) readyLocked() bool {
	if s.queued || s.closed {
		return false
	}
	if s.framesEnd()-s.processed >= int64(s.b.info.ChunkFrames) {
		s.queued = true
		return true
	}
	return false
}

// text joins BPE tokens: "▁" starts a word.
func (s *Stream) text(tokens []int64) string {
	var sb strings.Builder
	for _, t := range tokens {
		if t < 0 || int(t) == s.b.info.UnkID || int(t) == s.b.info.BlankID {
			continue
		}
		sb.WriteString(s.b.info.Tokens[t])
	}
	return strings.TrimSpace(strings.ReplaceAll(sb.String(), "\u2581", " "))
}

// result describes the open utterance, decoded up to frame processed with
// dropped frames lost so far, with its words (a partial's serve keyword
// alerts and redaction).
func (s *Stream) result(kind ResultKind, processed, dropped int64) Result {
	ctx := s.b.info.ContextSize
	toks := s.tokens[ctx:]
	shift := int64(s.b.info.FrameShiftMs())
	r := Result{Stream: s.id, Kind: kind, Utt: s.utt, Text: s.text(toks), StartMs: s.segStart * 10, EndMs: processed * 10,
		GapMs: (dropped - s.segDropped) * 10, NoSpeech: kind == Final && s.seg != nil && !s.vadHeard}
	if kind == Final {
		r.EndpointMs = processed * 10
	}
	if len(toks) > 0 {
		r.StartMs = s.times[0] * shift
		r.EndMs = s.times[len(s.times)-1]*shift + shift
	}
	var w *Word
	var n int
	flush := func() {
		if w != nil {
			w.Conf /= float32(n)
			w.Text = strings.TrimSpace(w.Text)
			if w.Text != "" {
				r.Words = append(r.Words, *w)
			}
		}
	}
	for i, t := range toks {
		if int(t) == s.b.info.UnkID {
			continue
		}
		sym := s.b.info.Tokens[t]
		start := s.times[i] * shift
		if w == nil || strings.HasPrefix(sym, "\u2581") {
			flush()
			w, n = &Word{StartMs: start}, 0
		}
		w.Text += strings.ReplaceAll(sym, "\u2581", "")
		w.EndMs = start + shift
		w.Conf += s.probs[i]
		n++
	}
	flush()
	// A word's first token comes about wordLeadMs after the word begins:
	// it starts that much earlier, not before the word before it (in this
	// utterance or the last final). Not the utterance's start: in silence
	// the endpoint rules start utterance after utterance, and one may begin
	// just before a word.
	floor := s.wordsEnd
	for i := range r.Words {
		w := &r.Words[i]
		w.StartMs = max(w.StartMs-wordLeadMs, min(floor, w.StartMs))
		floor = w.EndMs
		r.Conf += w.Conf
	}
	if len(r.Words) > 0 {
		r.StartMs = min(r.StartMs, r.Words[0].StartMs)
		r.Conf /= float32(len(r.Words))
		if kind == Final {
			s.wordsEnd = r.Words[len(r.Words)-1].EndMs
		}
	}
	return r
}

// resetUtterance starts the next utterance as sherpa-onnx does: the last
// tokens stay as decoder context; an utterance without tokens starts over
// from the blank context.
func (s *Stream) resetUtterance(processed, dropped int64) {
	ctx := s.b.info.ContextSize
	if len(s.tokens) > ctx {
		s.utt++ // an utterance without words keeps its number
		copy(s.tokens, s.tokens[len(s.tokens)-ctx:])
	} else {
		for i := range ctx {
			s.tokens[i] = -1
		}
		s.tokens[ctx-1] = int64(s.b.info.BlankID)
		s.hasDecOut = false
	}
	s.tokens = s.tokens[:ctx]
	s.times = s.times[:0]
	s.probs = s.probs[:0]
	s.hyps = s.hyps[:0] // the next step starts from the context alone
	s.vadHeard = s.seg != nil && s.seg.Speaking()
	s.trailing = 0
	s.segStart = processed
	s.segDropped = dropped
	s.lastLen = 0
}

// wordLeadMs is how long before its first token a word begins: the
// median over the Asterisk prompts' first words (their energy onsets),
// 260 ms at the start of a stream, 267 ms after a pause (docs/interop.md,
// AudioHook).
const wordLeadMs = 260

// vadBufMax bounds the samples a stream keeps for VAD (30 s).
const vadBufMax = 30 * 16000

// vadProb is a VAD window's speech probability and the sample it ends at.
type vadProb struct {
	end int64
	p   float32
}

// vadWindows moves the stream's VAD windows that end by sample limit into
// dst (copies) and returns the sample the first of them starts at. s.mu
// held.
func (s *Stream) vadWindows(dst [][]float32, limit int64) ([][]float32, int64) {
	end := min(limit, s.vadBase+int64(len(s.vadBuf)))
	if !s.vadPrimed {
		if end-s.vadBase < vadContext {
			return dst, 0
		}
		s.vad.Prime(s.vadBuf[:vadContext])
		s.vadPrimed, s.vadNext = true, s.vadBase+vadContext
	}
	s.vadNext = max(s.vadNext, s.vadBase) // after an overflow
	first := s.vadNext
	for s.vadNext+VADWindow <= end {
		off := s.vadNext - s.vadBase
		dst = append(dst, append([]float32(nil), s.vadBuf[off:off+VADWindow]...))
		s.vadNext += VADWindow
	}
	s.vadTrim()
	return dst, first
}

// vadPass moves the stream's VAD past the windows that end by sample limit
// without hearing them: its model starts over from the audio before the
// next window. s.mu held.
func (s *Stream) vadPass(limit int64) {
	end := min(limit, s.vadBase+int64(len(s.vadBuf)))
	if !s.vadPrimed {
		if end-s.vadBase < vadContext {
			return
		}
		s.vadPrimed, s.vadNext = true, s.vadBase+vadContext
	}
	s.vadNext = max(s.vadNext, s.vadBase+vadContext)
	if s.vadNext+VADWindow > end {
		return
	}
	s.vadNext += (end - s.vadNext) / VADWindow * VADWindow
	s.vad.h = [vadStateLen]float32{}
	off := s.vadNext - s.vadBase
	copy(s.vad.tail[:], s.vadBuf[off-vadContext:off])
	s.vadTrim()
}

// vadTrim drops the samples no VAD window needs any more. s.mu held.
func (s *Stream) vadTrim() {
	if dead := s.vadNext - vadContext - s.vadBase; dead > int64(len(s.vadBuf)/2) {
		n := copy(s.vadBuf, s.vadBuf[dead:])
		s.vadBuf = s.vadBuf[:n]
		s.vadBase += dead
	}
}
