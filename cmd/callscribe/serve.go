package main

import (
	"context"
	"crypto/tls"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/gateway"
	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/webrtc"
)

// envOverrides are the CALLSCRIBE_* variables serve reads, over the config
// file and under the flags.
var envOverrides = []string{"SIP", "HTTP", "REDIS", "MODEL", "RTP_PORTS", "MEDIA_IP", "PROVIDER"}

func serveMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration (see configs/callscribe.yaml); default: built-in defaults")
	set := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"sip", "SIP listen address, UDP and TCP (sip.udp, sip.tcp)"},
		{"http", "HTTP listen address: health, readiness, metrics, events, WHIP, page (http.addr)"},
		{"redis", "Redis address (redis.addr)"},
		{"model", "model directory (asr.model_dir)"},
		{"rtp-ports", "RTP port range LO-HI (sip.rtp_ports)"},
		{"media-ip", "address of the RTP sockets, announced in SDP (sip.media_ip)"},
		{"provider", "execution provider: cpu or cuda (asr.provider)"},
	} {
		set[f.name] = fs.String(f.name, "", f.usage)
	}
	drain := fs.Duration("drain", 0, "on SIGTERM, how long calls may go on before they are ended (drain)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	cfg := gateway.Defaults()
	if *configFile != "" {
		var err error
		if cfg, err = gateway.LoadConfig(*configFile); err != nil {
			fmt.Fprintf(stderr, "callscribe serve: %v\n", err)
			return 1
		}
	}
	apply := func(name, v string) {
		switch name {
		case "SIP", "sip":
			cfg.SIP.UDP, cfg.SIP.TCP = v, v
		case "HTTP", "http":
			cfg.HTTP.Addr = v
		case "REDIS", "redis":
			cfg.Redis.Addr = v
		case "MODEL", "model":
			cfg.ASR.ModelDir = v
		case "RTP_PORTS", "rtp-ports":
			cfg.SIP.RTPPorts = v
		case "MEDIA_IP", "media-ip":
			cfg.SIP.MediaIP = v
		case "PROVIDER", "provider":
			cfg.ASR.Provider = v
		}
	}
	for _, name := range envOverrides {
		if v := os.Getenv("CALLSCRIBE_" + name); v != "" {
			apply(name, v)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if p, ok := set[f.Name]; ok {
			apply(f.Name, *p)
		}
		if f.Name == "drain" {
			cfg.Drain = *drain
		}
	})
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "callscribe serve: config: %v\n", err)
		return 1
	}
	if err := serve(cfg, log); err != nil {
		fmt.Fprintf(stderr, "callscribe serve: %v\n", err)
		return 1
	}
	return 0
}

func serve(cfg gateway.Config, log *slog.Logger) error {
	lo, hi, err := cfg.SIP.RTPPortRange()
	if err != nil {
		return err
	}
	cidrs, err := cfg.SIP.CIDRs()
	if err != nil {
		return err
	}
	if err := asr.InitRuntime(cfg.ASR.ORTLib); err != nil {
		return err
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: modelDir(cfg.ASR.ModelDir), Encoder: cfg.ASR.Encoder,
		Decoder: cfg.ASR.Decoder, Joiner: cfg.ASR.Joiner})
	if err != nil {
		return err
	}
	batcher, err := asr.NewBatcher(info, asr.BatcherOptions{MaxBatch: cfg.ASR.MaxBatch, MaxWait: cfg.ASR.MaxWait,
		Workers: cfg.ASR.Workers, RunTimeout: cfg.ASR.RunTimeout, Endpoint: cfg.ASR.Endpoint, Logger: log,
		Engine: asr.EngineOptions{Provider: cfg.ASR.Provider, Threads: cfg.ASR.Threads}})
	if err != nil {
		return err
	}
	defer batcher.Close()
	r := cfg.Redis
	pub, err := transcript.NewPublisher(transcript.Options{Addr: r.Addr, Cluster: r.Cluster, Prefix: r.Prefix, Shards: r.Shards, CallMaxLen: r.CallMaxLen,
		FirehoseMaxLen: r.FirehoseMaxLen, Expire: r.Expire, SpoolMax: r.SpoolMax, SpoolFile: r.SpoolFile, Logger: log})
	if err != nil {
		return err
	}
	defer pub.Close()
	calls := gateway.NewCalls(batcher, pub, log)
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callscribe_result_latency_seconds",
		Help:    "From the arrival of an utterance's last word to its partial or final.",
		Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5}}, []string{"type"})
	calls.OnLatency = func(k asr.ResultKind, d time.Duration) { latency.WithLabelValues(k.String()).Observe(d.Seconds()) }
	sc := cfg.SIP
	srv, err := sip.NewServer(sip.Config{UDP: sc.UDP, TCP: sc.TCP, TLS: sc.TLS, TLSCertFile: sc.TLSCertFile, TLSKeyFile: sc.TLSKeyFile,
		MediaIP: sc.MediaIP, RTPPortLo: lo, RTPPortHi: hi, Codecs: sc.Codecs, MediaTimeout: sc.MediaTimeout,
		MaxCalls: sc.MaxCalls, MaxCallsPerSource: sc.MaxCallsPerSource, AllowCIDRs: cidrs, Users: sc.Users,
		Realm: sc.Realm, MinSE: sc.MinSE, CarryHeaders: sc.CarryHeaders, RTPReadWorkers: sc.RTPReadWorkers, AgentAORs: sc.AgentAORs,
		LegNamesHeader: sc.LegNamesHeader,
		Leg:            media.LegOptions{RingMs: sc.RingMs, ReorderMs: sc.ReorderMs}, Logger: log}, calls)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	hl, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("http: listen %s: %w", cfg.HTTP.Addr, err)
	}
	var draining atomic.Bool
	reg := prometheus.NewRegistry()
	metrics(reg, batcher, pub, calls, srv)
	reg.MustRegister(latency, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		var why []string
		if draining.Load() {
			why = append(why, "draining")
		}
		if !batcher.Stats().Healthy {
			why = append(why, "recognizer unhealthy")
		}
		// Redis away is fine while the spool has room, once it has been
		// reached at all; at start it is not.
		if err := pub.Ping(ctx); err != nil {
			st := pub.Stats()
			if !st.EverConnected || st.SpoolDepth >= st.SpoolMax*9/10 {
				why = append(why, "redis unreachable")
			}
		}
		if len(why) > 0 {
			http.Error(w, strings.Join(why, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	var whip *webrtc.Server
	if wc := cfg.WebRTC; wc.Enabled {
		lo, hi, _ := wc.ICEPortRange()
		whip, err = webrtc.NewServer(webrtc.Config{Path: wc.Path, Token: wc.Token, MaxSessions: wc.MaxSessions,
			PortLo: lo, PortHi: hi, PublicIPs: wc.PublicIPs, Loopback: wc.Loopback, ConnectTimeout: wc.ConnectTimeout,
			MediaTimeout: wc.MediaTimeout, Logger: log}, calls)
		if err != nil {
			srv.Close()
			return err
		}
		reg.MustRegister(rejected("webrtc", &whip.Rejected))
		mux.Handle(wc.Path, whip)
		mux.Handle(wc.Path+"/", whip)
	}
	follower := transcript.NewFollower(transcript.FollowerOptions{Addr: r.Addr, Cluster: r.Cluster, Prefix: r.Prefix,
		MaxFollows: cfg.HTTP.MaxEventStreams})
	defer follower.Close()
	events := gateway.NewEvents(follower, log)
	events.Max = cfg.HTTP.MaxEventStreams
	events.Token = cfg.WebRTC.Token
	mux.Handle("GET /events/{id}", events)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "callscribe_event_streams_active",
		Help: "Open /events streams (SSE followers of a call)."}, func() float64 { return float64(events.Active()) }))
	if cfg.HTTP.Page && whip != nil {
		page, err := gateway.Page(cfg.WebRTC.Path, "/events/")
		if err != nil {
			srv.Close()
			return err
		}
		mux.Handle("GET /{$}", page)
		mux.Handle("GET /static/", page)
	}
	// Event streams live until their call ends; base ends the ones left
	// when the server stops.
	base, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	if cfg.HTTP.TLSCertFile == "" {
		go hs.Serve(hl)
	} else {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile)
		if err != nil {
			hl.Close()
			srv.Close()
			return fmt.Errorf("http.tls_cert_file, http.tls_key_file: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go hs.ServeTLS(hl, "", "")
	}
	log.Info("callscribe: serving", "sip", srv.Addrs(), "http", hl.Addr().String(), "redis", r.Addr,
		"model", info.Files.Encoder, "provider", batcher.Provider())

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	sig := <-sigs
	if sig == syscall.SIGTERM {
		// Drain: no new calls, the ones in progress go on until done or the
		// deadline, then are ended with reason shutdown.
		log.Info("callscribe: draining", "deadline", cfg.Drain)
		draining.Store(true)
		srv.Drain()
		if whip != nil {
			whip.Drain()
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
		select {
		case <-waitCalls(ctx, calls, srv):
		case <-sigs: // a second signal stops now
		}
		cancel()
	}
	srv.Close() // BYE to what is left, finals flushed by the call handlers
	if whip != nil {
		whip.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls.Drain(ctx)
	if err := pub.Flush(ctx); err != nil {
		log.Error("callscribe: transcript events not delivered", "err", err)
	}
	// Followers of the calls just ended get their call.end, then the rest
	// of the streams are cut.
	for t := time.Now(); events.Active() > 0 && time.Since(t) < time.Second; {
		time.Sleep(20 * time.Millisecond)
	}
	stopStreams()
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

// batchSizes exports how many batches of each size ran.
type batchSizes struct{ b *asr.Batcher }

var batchSizesDesc = prometheus.NewDesc("callscribe_asr_batches_by_size_total", "Encoder steps, by batch size.", []string{"size"}, nil)

func (batchSizes) Describe(ch chan<- *prometheus.Desc) { ch <- batchSizesDesc }

func (c batchSizes) Collect(ch chan<- prometheus.Metric) {
	for size, n := range c.b.Stats().BatchSizes {
		ch <- prometheus.MustNewConstMetric(batchSizesDesc, prometheus.CounterValue, float64(n), strconv.Itoa(size))
	}
}

func metrics(reg *prometheus.Registry, b *asr.Batcher, pub *transcript.Publisher, calls *gateway.Calls, srv *sip.Server) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("callscribe_calls_active", "Calls in progress.", func() float64 { return float64(calls.Active()) })
	for _, src := range []string{"sip", "webrtc"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callscribe_calls_started_total",
			Help: "Calls answered, by source.", ConstLabels: prometheus.Labels{"source": src}},
			func() float64 { return float64(calls.Stats().StartedBy[src]) }))
	}
	reg.MustRegister(rejected("sip", &srv.Rejected))
	for _, reason := range []string{"bye", "timeout", "shutdown", "error"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callscribe_calls_ended_total",
			Help: "Calls ended, by reason.", ConstLabels: prometheus.Labels{"reason": reason}},
			func() float64 { return float64(calls.Stats().EndedBy[reason]) }))
	}
	counter("callscribe_rtp_packets_total", "RTP packets of ended calls.", func() float64 { return float64(calls.Stats().Packets) })
	counter("callscribe_rtp_lost_total", "RTP packets declared lost (ended calls).", func() float64 { return float64(calls.Stats().Lost) })
	counter("callscribe_rtp_malformed_total", "RTP packets dropped as malformed (ended calls).", func() float64 { return float64(calls.Stats().Malformed) })
	counter("callscribe_ring_dropped_samples_total", "Audio samples dropped on ring overflow (ended calls).", func() float64 { return float64(calls.Stats().DroppedSamples) })
	counter("callscribe_asr_step_seconds_total", "Time spent in successful batch steps.", func() float64 { return b.Stats().StepTime.Seconds() })
	reg.MustRegister(batchSizes{b})
	gauge("callscribe_asr_streams_active", "Recognition streams open.", func() float64 { return float64(b.Stats().ActiveStreams) })
	counter("callscribe_asr_batches_total", "Encoder steps run.", func() float64 { return float64(b.Stats().Batches) })
	counter("callscribe_asr_chunks_total", "Stream chunks decoded.", func() float64 { return float64(b.Stats().Chunks) })
	counter("callscribe_asr_faults_total", "Failed or timed-out steps (retried).", func() float64 { return float64(b.Stats().Faults) })
	counter("callscribe_asr_fallbacks_total", "Engines moved to the CPU provider.", func() float64 { return float64(b.Stats().Fallbacks) })
	counter("callscribe_asr_dropped_frames_total", "Feature frames dropped on overflow.", func() float64 { return float64(b.Stats().DroppedFrames) })
	counter("callscribe_redis_published_total", "Events written to Redis.", func() float64 { return float64(pub.Stats().Published) })
	counter("callscribe_redis_errors_total", "Failed Redis rounds.", func() float64 { return float64(pub.Stats().Errors) })
	gauge("callscribe_redis_spool_depth", "Events waiting for Redis.", func() float64 { return float64(pub.Stats().SpoolDepth) })
	gauge("callscribe_redis_spool_file_bytes", "Size of the spool file.", func() float64 { return float64(pub.Stats().SpoolFileBytes) })
	counter("callscribe_redis_spool_file_errors_total", "Failed writes to the spool file (the events stay in memory).",
		func() float64 { return float64(pub.Stats().SpoolFileErrs) })
}

// rejected exports a source's refused calls (SIP INVITEs, WHIP offers).
func rejected(source string, n *atomic.Int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callscribe_calls_rejected_total",
		Help:        "Calls refused (SIP 4xx/5xx to an INVITE, WHIP 4xx/5xx to an offer), by source.",
		ConstLabels: prometheus.Labels{"source": source}}, func() float64 { return float64(n.Load()) })
}
