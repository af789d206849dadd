package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/audiohook"
	"github.com/callscribe/callscribe/audiohook/audiohooktest"
	"github.com/callscribe/callscribe/transcript"
)

// audiohookLoad holds concurrent AudioHook sessions on a running gateway,
// each with two legs (a recording on the customer's channel, another on
// the agent's, PCMU stereo in 200 ms frames in real time, as Genesys Cloud
// sends them), and reports the word error rate of the finals on Redis,
// the partials' latency and the gateway's CPU per leg.
func audiohookLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("audiohook", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's HTTP address (/metrics; the door at /audiohook)")
	path := fs.String("path", audiohook.DefaultPath, "the door's path")
	redisOpts := redisFlags(fs)
	sessions := fs.Int("sessions", 50, "concurrent sessions (two legs each)")
	rounds := fs.Int("rounds", 1, "sessions each client holds, one after the other")
	wavs := fs.String("wavs", "", "directory of WAVs with trans.txt (default: the test model's test_wavs)")
	tail := fs.Duration("tail", 2*time.Second, "silence after the speech, before close")
	turns := fs.Bool("turns", false, "the parties take turns, as in a conversation: the agent's recording starts 0.5 s after the customer's ends (each channel quiet while the other talks); default: both talk at once")
	apiKey := fs.String("api-key", os.Getenv("CALLSCRIBE_AUDIOHOOK_API_KEY"), "the door's API key (default $CALLSCRIBE_AUDIOHOOK_API_KEY)")
	secret := fs.String("client-secret", os.Getenv("CALLSCRIBE_AUDIOHOOK_CLIENT_SECRET"), "its client secret, base64 (default $CALLSCRIBE_AUDIOHOOK_CLIENT_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *wavs == "" {
		*wavs = filepath.Join(os.Getenv("CALLSCRIBE_MODEL"), "test_wavs")
		if os.Getenv("CALLSCRIBE_MODEL") == "" {
			*wavs = "../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile/test_wavs"
		}
	}
	utts, err := loadUtterances(*wavs, *tail)
	if err != nil {
		return err
	}
	wsURL := "ws" + (*base)[len("http"):] + *path
	follower, err := transcript.NewFollower(redisOpts(*sessions))
	if err != nil {
		return err
	}
	defer follower.Close()

	var mu sync.Mutex
	var results []sessionResult
	var wg sync.WaitGroup
	cpu0, _, err := gatewayCPU(*base)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for s := range *sessions {
		wg.Go(func() {
			for r := range *rounds {
				parties := []utterance{utts[(s+r)%len(utts)], utts[(s+r+1)%len(utts)]}
				res, err := audiohookSession(wsURL, *apiKey, *secret, parties, *turns, follower)
				if err != nil {
					fmt.Fprintf(os.Stderr, "callscribe-load: audiohook: %v\n", err)
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	cpu1, _, err := gatewayCPU(*base)
	if err != nil {
		return err
	}
	var errs, words, refused, done int
	var audio time.Duration
	var plat []time.Duration
	for _, r := range results {
		if r.refused {
			refused++
			continue
		}
		if r.words == 0 {
			continue
		}
		done++
		errs += r.errs
		words += r.words
		audio += r.audio
		plat = append(plat, r.partials...)
	}
	if done == 0 {
		return errors.New("no session was transcribed")
	}
	talk := "both parties talking at once"
	if *turns {
		talk = "the parties taking turns"
	}
	fmt.Fprintf(w, "audiohook: %d concurrent sessions x %d rounds, two legs each (%s, PCMU stereo, 200 ms frames, %s, %v of silence before close): %d transcribed, %d refused, %d failed otherwise\n",
		*sessions, *rounds, *wavs, talk, *tail, done, refused, len(results)-done-refused)
	fmt.Fprintf(w, "word error rate against the reference texts: %.1f%% (%d errors in %d words)\n", 100*float64(errs)/float64(words), errs, words)
	fmt.Fprintf(w, "word -> partial on Redis (%d partials): %s\n", len(plat), latencies(plat))
	fmt.Fprintf(w, "gateway CPU: %.1f%% of a core per leg in progress (%.1f s CPU for %.0f s of leg audio in %.1f s)\n",
		100*(cpu1-cpu0)/(2*audio.Seconds()), cpu1-cpu0, 2*audio.Seconds(), wall.Seconds())
	return nil
}

// sessionResult is what one session measured.
type sessionResult struct {
	errs, words int
	partials    []time.Duration
	audio       time.Duration
	refused     bool
}

// audiohookSession holds one session: the two parties' speech on the
// external and internal channels (at once, or the agent's after the
// customer's with turns), then close; it reads the call's finals on Redis.
func audiohookSession(url, apiKey, secret string, parties []utterance, turns bool, f *transcript.Follower) (sessionResult, error) {
	var res sessionResult
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := audiohooktest.Dial(ctx, audiohooktest.Options{URL: url, APIKey: apiKey, Secret: secret,
		Media: []audiohook.Media{{Type: "audio", Format: "PCMU", Channels: []string{"external", "internal"}, Rate: 8000}}})
	if err != nil {
		return res, err
	}
	defer c.Hangup()
	m, err := c.Open()
	if err != nil {
		return res, err
	}
	if m.Type != "opened" {
		res.refused = true
		return res, fmt.Errorf("refused: %s", m.Parameters)
	}
	start := time.Now()
	pcmu := [][]byte{parties[0].pcmu, parties[1].pcmu}
	if turns { // the customer's speech (its tail cut), 0.5 s, then the agent's
		pcmu[1] = append(bytes.Repeat([]byte{0xff}, int(parties[0].speechMs*8)+4000), pcmu[1]...)
	}
	n := max(len(pcmu[0]), len(pcmu[1]))
	var frames [][]byte
	var samples []int
	for at := 0; at < n; at += 1600 {
		k := min(1600, n-at)
		fr := make([]byte, 2*k)
		for i := range k {
			for ch, p := range pcmu {
				b := byte(0xff) // μ-law silence past the shorter recording
				if at+i < len(p) {
					b = p[at+i]
				}
				fr[2*i+ch] = b
			}
		}
		frames, samples = append(frames, fr), append(samples, k)
	}
	if err := c.Stream(frames, samples, 200, nil); err != nil {
		return res, err
	}
	if _, err := c.Close(40 * time.Second); err != nil {
		return res, err
	}
	res.audio = time.Duration(n) * time.Second / 8000
	legs, texts, _, _, partials, err := callFinals(f, c.SessionID(), start)
	if err != nil {
		return res, err
	}
	res.partials = partials
	for i, p := range parties {
		if i < len(legs) {
			e, w := asr.WordErrors(asr.ScoringText(p.ref), asr.ScoringText(texts[legs[i]]))
			res.errs += e
			res.words += w
		}
	}
	return res, nil
}
