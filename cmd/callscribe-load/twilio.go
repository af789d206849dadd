package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/twilio/twiliotest"
)

// placed is one call a load round placed: its id on Redis, when its clock
// started, and the reference text of each of its legs.
type placed struct {
	id    string
	start time.Time
	refs  []string
	audio time.Duration // the longest leg's
	code  int           // 200: taken; else the refusal (HTTP or SIP status)
}

// roundFigures are what a round of concurrent calls measured.
type roundFigures struct {
	taken, refused, legs, errs, words int
	legAudio                          time.Duration
	finals, partials                  []time.Duration
	cpu                               float64 // gateway CPU seconds over the round
	wall                              time.Duration
}

// round places n calls at once with place and reads each one's events on
// Redis once it is over.
func round(base string, follower *transcript.Follower, n int, place func(i int) placed) (roundFigures, error) {
	var f roundFigures
	cpu0, _, err := gatewayCPU(base)
	if err != nil {
		return f, err
	}
	t0 := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := place(i)
			if p.code != 200 {
				mu.Lock()
				f.refused++
				mu.Unlock()
				return
			}
			legs, texts, last, lastEnd, partials, err := callFinals(follower, p.id, p.start)
			if err != nil || len(legs) != len(p.refs) {
				fmt.Fprintf(os.Stderr, "callscribe-load: call %s: legs %v: %v\n", p.id, legs, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			f.taken++
			for i, ref := range p.refs {
				e, w := asr.WordErrors(asr.ScoringText(ref), asr.ScoringText(texts[legs[i]]))
				f.errs, f.words = f.errs+e, f.words+w
			}
			f.legs += len(p.refs)
			f.legAudio += time.Duration(len(p.refs)) * p.audio
			f.partials = append(f.partials, partials...)
			f.finals = append(f.finals, last.Sub(lastEnd))
		})
	}
	wg.Wait()
	f.wall = time.Since(t0)
	cpu1, _, err := gatewayCPU(base)
	f.cpu = cpu1 - cpu0
	return f, err
}

func (f roundFigures) report(w io.Writer, what string) {
	fmt.Fprintf(w, "%s: %d taken and transcribed (%d legs), %d refused, in %.1f s\n", what, f.taken, f.legs, f.refused, f.wall.Seconds())
	if f.taken == 0 {
		return
	}
	fmt.Fprintf(w, "  word error rate against the reference texts: %.1f%% (%d errors in %d words)\n", 100*float64(f.errs)/float64(max(f.words, 1)), f.errs, f.words)
	fmt.Fprintf(w, "  word -> partial on Redis (%d partials): %s\n", len(f.partials), latencies(f.partials))
	fmt.Fprintf(w, "  last word -> its final on Redis: %s\n", latencies(f.finals))
	fmt.Fprintf(w, "  gateway CPU per leg in progress: %.2f%% of a core (%.1f s CPU for %.0f s of leg audio)\n",
		100*f.cpu/f.legAudio.Seconds(), f.cpu, f.legAudio.Seconds())
}

// twilioLoad opens concurrent Twilio Media Streams to a running gateway,
// each speaking a recording in real time as Twilio sends it (20 ms
// chunks), and reports the finals' word error rate, how long after each
// word its partial and final reached Redis, and the gateway's CPU per leg;
// with -sip, then as many SIP calls (RTP legs) of the same recordings,
// for the CPU per leg beside an RTP leg's.
func twilioLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("twilio", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's HTTP address (/twilio, /metrics)")
	redisOpts := redisFlags(fs)
	streams := fs.Int("streams", 50, "concurrent streams")
	both := fs.Bool("both", false, "both tracks: each stream is two legs, a recording each")
	token := fs.String("token", os.Getenv("CALLSCRIBE_TWILIO_AUTH_TOKEN"), "the gateway's twilio.auth_token: streams are signed with it")
	wavs := fs.String("wavs", "", "directory of WAVs with trans.txt (default: the test model's test_wavs)")
	tail := fs.Duration("tail", 2*time.Second, "silence after the speech, before stop")
	sipAddr := fs.String("sip", "", "the gateway's SIP address: then place as many SIP calls of the same recordings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *wavs == "" {
		*wavs = filepath.Join(os.Getenv("CALLSCRIBE_MODEL"), "test_wavs")
		if os.Getenv("CALLSCRIBE_MODEL") == "" {
			*wavs = "../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile/test_wavs"
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	utts, err := loadUtterances(*wavs, *tail)
	if err != nil {
		return err
	}
	follower, err := transcript.NewFollower(redisOpts(*streams))
	if err != nil {
		return err
	}
	defer follower.Close()
	wsURL := "ws" + strings.TrimPrefix(*base, "http") + "/twilio"
	run := time.Now().UnixNano()
	tw, err := round(*base, follower, *streams, func(i int) placed {
		parties := []utterance{utts[i%len(utts)]}
		tracks := []string{"inbound"}
		if *both {
			parties, tracks = append(parties, utts[(i+1)%len(utts)]), append(tracks, "outbound")
		}
		p := placed{id: fmt.Sprintf("MZload%x%04d", run, i), code: 200}
		st, err := twiliotest.Dial(context.Background(), twiliotest.Call{URL: wsURL, AuthToken: *token, StreamSid: p.id,
			CallSid: fmt.Sprintf("CAload%04d", i), Tracks: tracks})
		if err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-load: stream %d: %v\n", i, err)
			p.code = twiliotest.StatusOf(err)
			return p
		}
		defer st.Vanish()
		p.start = st.Started()
		audio := map[string][]float32{}
		for k, u := range parties {
			audio[tracks[k]] = ulaw(u.pcmu)
			p.refs = append(p.refs, u.ref)
			p.audio = max(p.audio, time.Duration(len(u.pcmu))*time.Second/8000)
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.audio+time.Minute)
		defer cancel()
		if err := st.Play(ctx, 0, audio, nil, true); err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-load: stream %d: %v\n", i, err)
		}
		if code, err := st.Stop(ctx); err != nil || code != 1000 {
			fmt.Fprintf(os.Stderr, "callscribe-load: stream %d: closed %v: %v\n", i, code, err)
		}
		return p
	})
	if err != nil {
		return err
	}
	tw.report(w, fmt.Sprintf("twilio: %d concurrent Media Streams (%s, real time, 20 ms chunks, %v of silence before stop)", *streams, *wavs, *tail))
	if *sipAddr == "" {
		if tw.taken == 0 {
			return errors.New("no stream was transcribed")
		}
		return nil
	}
	sp, err := round(*base, follower, *streams, func(i int) placed {
		u := utts[i%len(utts)]
		p := placed{refs: []string{u.ref}, audio: time.Duration(len(u.pcmu)) * time.Second / 8000}
		ph, err := siptest.Dial()
		if err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-load: %v\n", err)
			return p
		}
		defer ph.Close()
		talked, err := ph.Call(*sipAddr, u.pcmu)
		if err != nil {
			fmt.Fprintf(os.Stderr, "callscribe-load: call: %v\n", err)
		}
		p.id, p.start, p.code = talked.CallID, talked.Start, talked.Code
		return p
	})
	if err != nil {
		return err
	}
	sp.report(w, fmt.Sprintf("sip, beside it: %d concurrent SIP calls (RTP, G.711 μ-law, the same recordings)", *streams))
	return nil
}

// ulaw decodes G.711 μ-law to 8 kHz samples.
func ulaw(b []byte) []float32 {
	x := make([]float32, len(b))
	for i, v := range b {
		x[i] = float32(g711.DecodeUlawFrame(v)) / 32768
	}
	return x
}

// twilioPlay streams one WAV through a gateway's Twilio door as Twilio
// would (the demo's --door twilio): its inbound track in real time, then
// stop.
func twilioPlay(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("twilio-play", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's HTTP address")
	wav := fs.String("wav", "", "the WAV to speak (any rate; sent as 8 kHz μ-law)")
	token := fs.String("token", os.Getenv("CALLSCRIBE_TWILIO_AUTH_TOKEN"), "the gateway's twilio.auth_token: the stream is signed with it")
	sid := fs.String("stream", fmt.Sprintf("MZdemo%x", time.Now().UnixNano()), "the streamSid: the call's id on Redis")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := media.ReadWAVFile(*wav)
	if err != nil {
		return err
	}
	x := a.Samples
	if a.SampleRate != 8000 {
		if x, err = media.Resample(x, a.SampleRate, 8000); err != nil {
			return err
		}
	}
	x = append(x, make([]float32, 12000)...) // 1.5 s for the last words' final
	url := "ws" + strings.TrimPrefix(*base, "http") + "/twilio"
	st, err := twiliotest.Dial(context.Background(), twiliotest.Call{URL: url, AuthToken: *token, StreamSid: *sid,
		CallSid: "CAdemo", Params: map[string]string{"demo": filepath.Base(*wav)}})
	if err != nil {
		return err
	}
	defer st.Vanish()
	fmt.Fprintf(w, "twilio-play: stream %s open on %s, speaking %s\n", *sid, url, filepath.Base(*wav))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(x))*time.Second/8000+30*time.Second)
	defer cancel()
	if err := st.Play(ctx, 0, map[string][]float32{"inbound": x}, nil, true); err != nil {
		return err
	}
	if code, err := st.Stop(ctx); err != nil || code != 1000 {
		return fmt.Errorf("stop: closed %v: %v", code, err)
	}
	return nil
}
