package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	pw "github.com/pion/webrtc/v4"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/webrtc/webrtctest"
)

// opusSilence is a 20 ms Opus frame of silence (CELT, fullband).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// webrtcLoad publishes Opus speech from many WHIP sessions to a running
// gateway and measures, from the transcripts on Redis, how long after the
// end of each utterance its final arrived, and the gateway's CPU per
// session (process_cpu_seconds_total from its /metrics).
func webrtcLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("webrtc", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's HTTP address (WHIP at /whip, /metrics)")
	redisOpts := redisFlags(fs)
	sessions := fs.Int("sessions", 10, "concurrent browser sessions")
	repeat := fs.Int("repeat", 3, "utterances per session, each followed by -silence")
	silence := fs.Duration("silence", 3*time.Second, "silence after each utterance (longer than the endpoint's trailing silence); 0 with -repeat 1: hang up as the speech ends")
	opusFile := fs.String("opus", "media/testdata/speech.opus.ogg", "speech as an Ogg Opus file of 20 ms packets")
	ref := fs.String("ref", "", "what the speech says: the word error rate of each final against it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*opusFile)
	if err != nil {
		return err
	}
	pkts, err := media.OggPackets(b)
	if err != nil || len(pkts) < 3 {
		return fmt.Errorf("%s: not an Ogg Opus file: %v", *opusFile, err)
	}
	speech := pkts[2:] // after OpusHead and OpusTags
	var script [][]byte
	for range *repeat {
		script = append(script, speech...)
		for range int(*silence / (20 * time.Millisecond)) {
			script = append(script, opusSilence)
		}
	}
	follower, err := transcript.NewFollower(redisOpts(*sessions))
	if err != nil {
		return err
	}
	defer follower.Close()

	// Connect everyone first, so that the measured window is steady.
	clients := make([]*webrtctest.Client, *sessions)
	for i := range clients {
		c, err := webrtctest.Dial(pw.RTPCodecCapability{MimeType: pw.MimeTypeOpus, ClockRate: 48000, Channels: 2})
		if err == nil {
			err = c.PublishTo(*base + "/whip")
		}
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		defer c.Close()
		clients[i] = c
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		up := 0
		for _, c := range clients {
			if c.PC.ConnectionState() == pw.PeerConnectionStateConnected {
				up++
			}
		}
		if up == len(clients) {
			break
		}
		if time.Since(start) > 20*time.Second {
			return fmt.Errorf("%d of %d sessions connected", up, len(clients))
		}
	}

	type final struct {
		latency time.Duration
		text    string
	}
	var mu sync.Mutex
	var finals []final
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(script))*20*time.Millisecond+time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	cpu0, asr0, err := gatewayCPU(*base)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for _, c := range clients {
		wg.Go(func() {
			callID := path.Base(c.Location)
			followed := make(chan struct{})
			start := time.Now() // when the first packet goes out
			go func() {
				defer close(followed)
				after := ""
				for ctx.Err() == nil {
					ms, err := follower.Read(ctx, callID, after, 64, time.Second)
					if err != nil {
						fmt.Fprintf(os.Stderr, "callscribe-load: %v\n", err)
						time.Sleep(time.Second)
						continue
					}
					now := time.Now()
					for _, m := range ms {
						after = m.ID
						ev := m.Event
						if ev.Type == transcript.CallEnd {
							return
						}
						if ev.Type != transcript.Final || ev.Fields["text"] == "" {
							continue
						}
						// The last word's end, but no later than the audio:
						// word times of a call's tail may run past it.
						endMs, _ := strconv.ParseInt(ev.Fields["end_ms"], 10, 64)
						end := start.Add(min(time.Duration(endMs)*time.Millisecond, time.Duration(len(script))*20*time.Millisecond))
						mu.Lock()
						finals = append(finals, final{now.Sub(end), ev.Fields["text"]})
						mu.Unlock()
					}
				}
			}()
			c.SpeakPackets(script)
			if err := c.HangupAt(*base); err != nil {
				fmt.Fprintf(os.Stderr, "callscribe-load: %v\n", err)
			}
			<-followed
		})
	}
	// The window is the sending, before the hangups.
	time.Sleep(time.Duration(len(script))*20*time.Millisecond - 200*time.Millisecond)
	cpu1, asr1, err := gatewayCPU(*base)
	wall := time.Since(t0)
	if err != nil {
		return err
	}
	wg.Wait()
	if len(finals) == 0 {
		return errors.New("no finals on Redis")
	}
	lat := make([]time.Duration, len(finals))
	for i, f := range finals {
		lat[i] = f.latency
	}
	audio := float64(*sessions) * wall.Seconds()
	fmt.Fprintf(w, "webrtc: %d sessions x %d utterances (Opus, %.1f s speech + %v silence each), %d finals; e.g. %q\n",
		*sessions, *repeat, float64(len(speech))*0.02, *silence, len(finals), finals[0].text)
	fmt.Fprintf(w, "speech end -> final on Redis: %s\n", latencies(lat))
	if *ref != "" {
		errs, words := 0, 0
		for _, f := range finals {
			e, n := asr.WordErrors(asr.ScoringText(*ref), asr.ScoringText(f.text))
			errs, words = errs+e, words+n
		}
		fmt.Fprintf(w, "word error rate of the finals against %q: %.1f%% (%d errors in %d words)\n", *ref, 100*float64(errs)/float64(words), errs, words)
	}
	fmt.Fprintf(w, "gateway CPU: %.1f%% of a core per session (%.1f%% in recognizer steps, %.1f%% the rest: WebRTC, Opus, resampling, features, Redis)\n",
		100*(cpu1-cpu0)/audio, 100*(asr1-asr0)/audio, 100*((cpu1-cpu0)-(asr1-asr0))/audio)
	return nil
}

// gatewayCPU reads the gateway's CPU seconds and recognizer step seconds
// from its /metrics.
func gatewayCPU(base string) (cpu, asr float64, err error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	found := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "process_cpu_seconds_total":
			cpu, _ = strconv.ParseFloat(v, 64)
			found++
		case "callscribe_asr_step_seconds_total":
			asr, _ = strconv.ParseFloat(v, 64)
			found++
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s/metrics: no process_cpu_seconds_total or callscribe_asr_step_seconds_total", base)
	}
	return cpu, asr, nil
}
