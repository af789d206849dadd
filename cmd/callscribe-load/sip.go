package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
)

// utterance is a test recording with its reference text, as PCMU.
type utterance struct {
	name, ref string
	pcmu      []byte
	speechMs  int64
}

// loadUtterances reads dir/trans.txt ("file.wav TEXT") and the WAVs it
// names, at 8 kHz G.711 μ-law with tail of silence after each.
func loadUtterances(dir string, tail time.Duration) ([]utterance, error) {
	f, err := os.Open(filepath.Join(dir, "trans.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []utterance
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, ref, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		a, err := media.ReadWAVFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		x := a.Samples
		if a.SampleRate != 8000 {
			if x, err = media.Resample(x, a.SampleRate, 8000); err != nil {
				return nil, err
			}
		}
		speech := int64(len(x)) / 8
		x = append(x, make([]float32, int(tail.Seconds()*8000))...)
		out = append(out, utterance{name: name, ref: ref, pcmu: siptest.PCMU(x), speechMs: speech})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no utterances in trans.txt", dir)
	}
	return out, nil
}

// sipLoad places concurrent SIP calls with recorded speech on a running
// gateway and reports accuracy (word error rate of the finals on Redis
// against the recordings' reference texts), how long after the end of the
// speech each call's last final arrived, and the gateway's CPU per call.
func sipLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("sip", flag.ContinueOnError)
	target := fs.String("sip", "127.0.0.1:5060", "the gateway's SIP address (UDP)")
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's HTTP address (/metrics)")
	redisOpts := redisFlags(fs)
	calls := fs.Int("calls", 20, "concurrent calls")
	rounds := fs.Int("rounds", 2, "calls each caller places, one after the other")
	wavs := fs.String("wavs", "", "directory of WAVs with trans.txt (default: the test model's test_wavs)")
	tail := fs.Duration("tail", 2*time.Second, "silence after the speech, before the hangup")
	siprec := fs.Bool("siprec", false, "place SIPREC recording sessions (over TCP): two parties, two recordings, a leg each")
	talk := fs.Float64("talk", 1, "share of the time a call talks: each recording is followed by silence so that it is this share (0.5: as much silence as speech), then -tail before the hangup")
	perCall := fs.Int("utterances", 1, "recordings each call speaks, one after the other (the corpus in turn from the call's own)")
	lead := fs.Duration("lead", 0, "silence every call starts with (all calls quiet, then all talking at once)")
	stagger := fs.Bool("stagger", false, "spread the calls' talk: call i starts with (i mod 16)/16 of its first recording and its silence more silence")
	warm := fs.Int("warm", 0, "calls placed first: the rest follow at once -warm-for later (a burst on a gateway that has measured the calls' mix)")
	warmFor := fs.Duration("warm-for", 20*time.Second, "how long the -warm calls run before the rest")
	noise := fs.Float64("noise", 0, "white noise in the silences at this level in dBFS, as a line or a room has (e.g. -50; 0: digital silence)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *talk <= 0 || *talk > 1 || *perCall < 1 || *noise > 0 || *warm < 0 || *warm > *calls {
		return errors.New("-talk must be in (0, 1], -utterances at least 1, -noise at most 0 dBFS and -warm within -calls")
	}
	if *wavs == "" {
		*wavs = filepath.Join(os.Getenv("CALLSCRIBE_MODEL"), "test_wavs")
		if os.Getenv("CALLSCRIBE_MODEL") == "" {
			*wavs = "../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile/test_wavs"
		}
	}
	// The phones' SIP stack logs each closed dialog; only errors matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	utts, err := loadUtterances(*wavs, 0)
	if err != nil {
		return err
	}
	// A party's audio: the call's recordings, each followed by its
	// silence, after the lead, then the tail.
	party := func(c, r int) utterance {
		var u utterance
		var refs []string
		var x []byte
		rng := rand.New(rand.NewPCG(uint64(c), uint64(r)))
		pad := func(d time.Duration) {
			quiet := make([]float32, int(d.Seconds()*8000))
			if *noise < 0 {
				rms := math.Pow(10, *noise/20)
				for i := range quiet {
					quiet[i] = float32(rng.NormFloat64() * rms)
				}
			}
			x = append(x, siptest.PCMU(quiet)...)
		}
		pad(*lead)
		for k := range *perCall {
			v := utts[(c+r+k)%len(utts)]
			gap := time.Duration(float64(len(v.pcmu))*(1 / *talk - 1)) * time.Second / 8000
			if k == 0 && *stagger {
				pad(time.Duration(c%16) * (time.Duration(len(v.pcmu))*time.Second/8000 + gap) / 16)
			}
			x = append(x, v.pcmu...)
			u.speechMs = int64(len(x)) / 8 // the end of the last recording's speech
			if k < *perCall-1 {
				pad(gap)
			}
			refs = append(refs, v.ref)
		}
		pad(*tail)
		u.name, u.ref, u.pcmu = utts[(c+r)%len(utts)].name, strings.Join(refs, " "), x
		return u
	}
	follower, err := transcript.NewFollower(redisOpts(*calls))
	if err != nil {
		return err
	}
	defer follower.Close()

	type result struct {
		errs, words int
		latency     time.Duration   // speech end to the call's last final
		partials    []time.Duration // each partial: the end of its last word to Redis
		audio       time.Duration
		legAudio    time.Duration // every leg's
		code        int
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	cpu0, _, err := gatewayCPU(*base)
	if err != nil {
		return err
	}
	m0, err := gatewayMetrics(*base)
	if err != nil {
		return err
	}
	// The recognizer's lag, every 250 ms while the calls run.
	var maxLag float64
	var lagWG sync.WaitGroup
	stopLag := make(chan struct{})
	lagWG.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopLag:
				return
			case <-tick.C:
				if m, err := gatewayMetrics(*base); err == nil {
					maxLag = max(maxLag, m["callscribe_asr_lag_seconds"])
				}
			}
		}
	})
	t0 := time.Now()
	for c := range *calls {
		wg.Go(func() {
			if *warm > 0 && c >= *warm {
				time.Sleep(*warmFor)
			}
			ph, err := siptest.Dial()
			if err != nil {
				fmt.Fprintf(os.Stderr, "callscribe-load: %v\n", err)
				return
			}
			defer ph.Close()
			for r := range *rounds {
				parties := []utterance{party(c, r)}
				var talked siptest.Talked
				if *siprec {
					parties = append(parties, party(c, r+1))
					talked, err = ph.Record(*target, siptest.RecordingMetadata("sip:customer@trunk.invalid", "sip:agent@agents.invalid"),
						parties[0].pcmu, parties[1].pcmu)
				} else {
					talked, err = ph.Call(*target, parties[0].pcmu)
				}
				if err != nil || talked.Code != 200 {
					fmt.Fprintf(os.Stderr, "callscribe-load: call: %d %v\n", talked.Code, err)
					mu.Lock()
					results = append(results, result{code: talked.Code})
					mu.Unlock()
					continue
				}
				legs, texts, last, lastEnd, partials, err := callFinals(follower, talked.CallID, talked.Start)
				if err != nil || len(legs) != len(parties) {
					fmt.Fprintf(os.Stderr, "callscribe-load: call %s: legs %v: %v\n", talked.CallID, legs, err)
					continue
				}
				res := result{code: 200, partials: partials}
				var speechMs int64
				for i, u := range parties { // the legs come in the order of the streams
					e, n := asr.WordErrors(asr.ScoringText(u.ref), asr.ScoringText(texts[legs[i]]))
					res.errs += e
					res.words += n
					speechMs = max(speechMs, u.speechMs)
					res.audio = max(res.audio, time.Duration(len(u.pcmu))*time.Second/8000)
					res.legAudio += time.Duration(len(u.pcmu)) * time.Second / 8000
				}
				spoken := talked.Start.Add(time.Duration(speechMs) * time.Millisecond)
				if lastEnd.Before(spoken) {
					spoken = lastEnd
				}
				res.latency = last.Sub(spoken)
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	close(stopLag)
	lagWG.Wait()
	cpu1, _, err := gatewayCPU(*base)
	if err != nil {
		return err
	}
	m1, err := gatewayMetrics(*base)
	if err != nil {
		return err
	}
	var errs, words, refused, failed int
	var audio, legAudio time.Duration
	var lat, plat []time.Duration
	for _, r := range results {
		switch {
		case r.code == 503:
			refused++
			continue
		case r.code != 200:
			failed++
			continue
		}
		errs += r.errs
		words += r.words
		audio += r.audio
		legAudio += r.legAudio
		lat = append(lat, r.latency)
		plat = append(plat, r.partials...)
	}
	if len(lat) == 0 {
		return errors.New("no call was transcribed")
	}
	quiet := "silence digital"
	if *noise < 0 {
		quiet = fmt.Sprintf("silence white noise at %g dBFS", *noise)
	}
	kind := "calls"
	if *siprec {
		kind = "recording sessions (two parties each)"
	}
	if *warm > 0 {
		kind += fmt.Sprintf(" (%d placed %v before the rest)", *warm, *warmFor)
	}
	fmt.Fprintf(w, "sip: %d concurrent %s x %d rounds (%s, G.711 μ-law, %d recordings a call talking %.0f%% of the time after %v of silence, stagger %v, %v of silence before BYE, %s): %d accepted and transcribed, %d refused (503), %d failed otherwise\n",
		*calls, kind, *rounds, *wavs, *perCall, 100**talk, *lead, *stagger, *tail, quiet, len(lat), refused, failed)
	fmt.Fprintf(w, "word error rate of the accepted calls against the reference texts: %.1f%% (%d errors in %d words)\n", 100*float64(errs)/float64(words), errs, words)
	fmt.Fprintf(w, "last word -> its final on Redis: %s\n", latencies(lat))
	fmt.Fprintf(w, "word -> partial on Redis (%d partials): %s\n", len(plat), latencies(plat))
	fmt.Fprintf(w, "gateway CPU: %.1f%% of a core per call in progress (%.1f s CPU for %.0f s of call audio in %.1f s)\n",
		100*(cpu1-cpu0)/audio.Seconds(), cpu1-cpu0, audio.Seconds(), wall.Seconds())
	chunks := m1["callscribe_asr_chunks_total"] - m0["callscribe_asr_chunks_total"]
	vadWins := m1["callscribe_asr_vad_windows_total"] - m0["callscribe_asr_vad_windows_total"]
	fmt.Fprintf(w, "recognizer: %.2f chunks encoded per second of leg audio (3.1 is every chunk), VAD %.1f windows per second of leg audio (31 is every window), most lag %.2f s, audio dropped undecoded %.1f s, admission's bound now %.0f streams\n",
		chunks/legAudio.Seconds(), vadWins/legAudio.Seconds(), maxLag, (m1["callscribe_asr_dropped_frames_total"]-m0["callscribe_asr_dropped_frames_total"])/100, m1["callscribe_asr_max_streams"])
	if done := m1["callscribe_second_pass_finals_total"] - m0["callscribe_second_pass_finals_total"]; done > 0 || m1["callscribe_second_pass_cost_seconds"] > 0 {
		var falls []string
		for _, r := range []string{"error", "timeout", "lag", "guard"} {
			k := `callscribe_second_pass_fallbacks_total{reason="` + r + `"}`
			falls = append(falls, fmt.Sprintf("%s %.0f", r, m1[k]-m0[k]))
		}
		audio := m1["callscribe_second_pass_audio_seconds_total"] - m0["callscribe_second_pass_audio_seconds_total"]
		busy := m1["callscribe_second_pass_busy_seconds_total"] - m0["callscribe_second_pass_busy_seconds_total"]
		fmt.Fprintf(w, "second pass: %.0f finals its words, fell back %s; %.3f s recognizing per second of final audio\n",
			done, strings.Join(falls, ", "), busy/max(audio, 1e-9))
	}
	return nil
}

// gatewayMetrics reads the gateway's unlabelled metrics, and the second
// pass's fallbacks by reason ("callscribe_second_pass_fallbacks_total{reason=\"lag\"}").
func gatewayMetrics(base string) (map[string]float64, error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") &&
			(!strings.Contains(name, "{") || strings.HasPrefix(name, "callscribe_second_pass_fallbacks_total{")) {
			m[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	return m, sc.Err()
}

// callFinals reads a call's events on Redis up to its call.end: its legs
// (from call.start), each leg's finals, when the last final was added to
// Redis and when the end of its last word was heard, and how long after
// its last word each partial came. Event times count from call.start (its
// ts), which can be well before the caller's first audio when the answer
// is slow to reach it (a burst of INVITEs): start, the caller's first
// audio, is taken only if call.start has no ts.
func callFinals(f *transcript.Follower, callID string, start time.Time) ([]string, map[string]string, time.Time, time.Time, []time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var legs []string
	texts := map[string]string{}
	var last, lastEnd time.Time
	origin := start
	var partials []time.Duration
	after := ""
	for {
		ms, err := f.Read(ctx, callID, after, 64, 5*time.Second)
		if err != nil {
			return nil, nil, last, lastEnd, nil, err
		}
		for _, m := range ms {
			after = m.ID
			// The entry id is Redis's clock when the entry was added.
			ms, _, _ := strings.Cut(m.ID, "-")
			n, _ := strconv.ParseInt(ms, 10, 64)
			now := time.UnixMilli(n)
			fl := m.Event.Fields
			switch m.Event.Type {
			case transcript.CallStart:
				legs = strings.Split(fl["legs"], ",")
				if m.Event.TS > 0 {
					origin = time.UnixMilli(m.Event.TS)
				}
			case transcript.Partial:
				if fl["text"] != "" {
					e, _ := strconv.ParseInt(fl["end_ms"], 10, 64)
					partials = append(partials, now.Sub(origin.Add(time.Duration(e)*time.Millisecond)))
				}
			case transcript.Final:
				if fl["text"] != "" {
					texts[fl["leg"]] = strings.TrimSpace(texts[fl["leg"]] + " " + fl["text"])
					last = now
					e, _ := strconv.ParseInt(fl["end_ms"], 10, 64)
					lastEnd = origin.Add(time.Duration(e) * time.Millisecond)
				}
			case transcript.CallEnd:
				if last.IsZero() {
					last = now
				}
				return legs, texts, last, lastEnd, partials, nil
			}
		}
		if len(ms) == 0 && ctx.Err() != nil {
			return nil, nil, last, lastEnd, nil, fmt.Errorf("call %s: no call.end on Redis", callID)
		}
	}
}
