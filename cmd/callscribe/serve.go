package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/gateway"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
)

type serveOptions struct {
	sip, sipTCP, http, redis string
	mediaIP                  string
	rtpPorts                 string
	model                    asr.ModelFiles
	ortLib, provider         string
	drain                    time.Duration
	mediaTimeout             time.Duration
}

// envOr returns $CALLSCRIBE_<NAME> if set, else def.
func envOr(name, def string) string {
	if v := os.Getenv("CALLSCRIBE_" + name); v != "" {
		return v
	}
	return def
}

func serveMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serveOptions
	fs.StringVar(&o.sip, "sip", envOr("SIP", "127.0.0.1:5060"), "SIP listen address (UDP and TCP)")
	fs.StringVar(&o.http, "http", envOr("HTTP", "127.0.0.1:8080"), "HTTP listen address (health, readiness, metrics)")
	fs.StringVar(&o.redis, "redis", envOr("REDIS", "127.0.0.1:6379"), "Redis address")
	fs.StringVar(&o.mediaIP, "media-ip", envOr("MEDIA_IP", "127.0.0.1"), "address of the RTP sockets, announced in SDP")
	fs.StringVar(&o.rtpPorts, "rtp-ports", envOr("RTP_PORTS", "20000-30000"), "RTP port range LO-HI")
	fs.StringVar(&o.model.Dir, "model", envOr("MODEL", ""), "model directory (default: the shared test model)")
	fs.StringVar(&o.ortLib, "ort-lib", "", "libonnxruntime.so (default: $"+asr.RuntimeLibEnv+" or the setup cache)")
	fs.StringVar(&o.provider, "provider", envOr("PROVIDER", "cpu"), "execution provider: cpu or cuda")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "on SIGTERM, how long calls may go on before they are ended")
	fs.DurationVar(&o.mediaTimeout, "media-timeout", 30*time.Second, "end a call after this long without RTP")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	if err := serve(o, log); err != nil {
		fmt.Fprintf(stderr, "callscribe serve: %v\n", err)
		return 1
	}
	return 0
}

func parsePorts(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a <= 0 || b > 65535 || b <= a {
		return 0, 0, fmt.Errorf("rtp-ports %q: want LO-HI, e.g. 20000-30000", s)
	}
	return a, b, nil
}

func serve(o serveOptions, log *slog.Logger) error {
	lo, hi, err := parsePorts(o.rtpPorts)
	if err != nil {
		return err
	}
	if err := asr.InitRuntime(o.ortLib); err != nil {
		return err
	}
	o.model.Dir = modelDir(o.model.Dir)
	info, err := asr.LoadModelInfo(o.model)
	if err != nil {
		return err
	}
	batcher, err := asr.NewBatcher(info, asr.BatcherOptions{Engine: asr.EngineOptions{Provider: o.provider},
		Endpoint: asr.DefaultEndpointConfig(), Logger: log})
	if err != nil {
		return err
	}
	defer batcher.Close()
	pub := transcript.NewPublisher(transcript.Options{Addr: o.redis, Logger: log})
	defer pub.Close()
	calls := gateway.NewCalls(batcher, pub, log)
	srv, err := sip.NewServer(sip.Config{UDP: o.sip, TCP: o.sip, MediaIP: o.mediaIP, RTPPortLo: lo, RTPPortHi: hi,
		MediaTimeout: o.mediaTimeout, Logger: log}, calls)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	hl, err := net.Listen("tcp", o.http)
	if err != nil {
		srv.Close()
		return fmt.Errorf("http: listen %s: %w", o.http, err)
	}
	draining := false
	reg := prometheus.NewRegistry()
	metrics(reg, batcher, pub, calls)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		var why []string
		if draining {
			why = append(why, "draining")
		}
		if !batcher.Stats().Healthy {
			why = append(why, "recognizer unhealthy")
		}
		if err := pub.Ping(ctx); err != nil {
			why = append(why, "redis unreachable")
		}
		if len(why) > 0 {
			http.Error(w, strings.Join(why, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(hl)
	log.Info("callscribe: serving", "sip", srv.Addrs(), "http", hl.Addr().String(), "redis", o.redis,
		"model", info.Files.Encoder, "provider", batcher.Provider())

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	sig := <-sigs
	if sig == syscall.SIGTERM {
		// Drain: no new calls, the ones in progress go on until done or the
		// deadline, then are ended with reason shutdown.
		log.Info("callscribe: draining", "deadline", o.drain)
		draining = true
		srv.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), o.drain)
		select {
		case <-waitCalls(ctx, calls, srv):
		case <-sigs: // a second signal stops now
		}
		cancel()
	}
	srv.Close() // BYE to what is left, finals flushed by the call handlers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls.Drain(ctx)
	if err := pub.Flush(ctx); err != nil {
		log.Error("callscribe: transcript events not delivered", "err", err)
	}
	hs.Shutdown(ctx)
	log.Info("callscribe: stopped")
	return nil
}

func waitCalls(ctx context.Context, calls *gateway.Calls, srv *sip.Server) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for srv.ActiveCalls() > 0 || calls.Active() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

func metrics(reg *prometheus.Registry, b *asr.Batcher, pub *transcript.Publisher, calls *gateway.Calls) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("callscribe_calls_active", "Calls in progress.", func() float64 { return float64(calls.Active()) })
	gauge("callscribe_asr_streams_active", "Recognition streams open.", func() float64 { return float64(b.Stats().ActiveStreams) })
	counter("callscribe_asr_batches_total", "Encoder steps run.", func() float64 { return float64(b.Stats().Batches) })
	counter("callscribe_asr_chunks_total", "Stream chunks decoded.", func() float64 { return float64(b.Stats().Chunks) })
	counter("callscribe_asr_faults_total", "Failed or timed-out steps (retried).", func() float64 { return float64(b.Stats().Faults) })
	counter("callscribe_asr_fallbacks_total", "Engines moved to the CPU provider.", func() float64 { return float64(b.Stats().Fallbacks) })
	counter("callscribe_asr_dropped_frames_total", "Feature frames dropped on overflow.", func() float64 { return float64(b.Stats().DroppedFrames) })
	counter("callscribe_redis_published_total", "Events written to Redis.", func() float64 { return float64(pub.Stats().Published) })
	counter("callscribe_redis_errors_total", "Failed Redis rounds.", func() float64 { return float64(pub.Stats().Errors) })
	gauge("callscribe_redis_spool_depth", "Events waiting for Redis.", func() float64 { return float64(pub.Stats().SpoolDepth) })
}
