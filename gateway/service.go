package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/transcript"
	"github.com/callscribe/callscribe/webrtc"
)

// Service is a whole gateway: the recognizer, the publisher, the call
// registry, the SIP and WHIP sources and the HTTP side. Every goroutine it
// starts is waited for by Close.
type Service struct {
	cfg      Config
	log      *slog.Logger
	batcher  *asr.Batcher
	pub      *transcript.Publisher
	calls    *Calls
	final    []*moonshine.Recognizer // the second pass's
	pass     *SecondPass
	sip      *sip.Server
	whip     *webrtc.Server
	doors    []door // doors.go
	follower *transcript.Follower
	events   *Events
	board    *Board // board.go
	hs       *http.Server
	hl       net.Listener
	draining atomic.Bool
	// metricsToken guards /metrics (empty: open); Reload replaces it.
	metricsToken atomic.Pointer[string]
	reloads      [2]atomic.Int64 // Reload: applied, refused

	stopStreams context.CancelFunc // ends the SSE streams left at Close
	stopMix     chan struct{}      // ends shareMix; nil without asr.share_mix
	errs        chan error         // a server that stopped by itself
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// NewService builds the gateway from a validated configuration and binds
// its listeners; it serves until Close. On error nothing is left running.
func NewService(cfg Config, log *slog.Logger) (_ *Service, err error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, log: log, errs: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// What would fail the start after the models load fails it now.
	if err := checkFiles(cfg); err != nil {
		return nil, err
	}
	if err := checkPorts(cfg); err != nil {
		return nil, err
	}
	a := cfg.ASR
	if err := asr.InitRuntime(a.ORTLib, a.Engine.Provider); err != nil {
		return nil, err
	}
	info, err := asr.LoadModelInfo(a.ModelFiles)
	if err != nil {
		return nil, err
	}
	bo := a.BatcherOptions
	bo.Logger, bo.Calibrate = log, true
	s.batcher, err = asr.NewBatcher(info, bo)
	if err != nil {
		return nil, err
	}
	log.Info(fmt.Sprintf("callscribe: capacity ≈ %d streams on this machine", s.batcher.Capacity()),
		"step_per_stream", s.batcher.StepCost(), "workers", s.batcher.Workers(), "max_streams", a.MaxStreams)
	r := cfg.Redis
	r.Instance, r.Logger = cfg.InstanceName(), log
	s.pub, err = transcript.NewPublisher(r)
	if err != nil {
		return nil, err
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "callscribe_result_latency_seconds",
		Help:    "From the arrival of an utterance's last word to its partial or final.",
		Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5}}, []string{"type"})
	hold := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callscribe_redaction_hold_seconds",
		Help:    "How long each final of a call with redaction on was held back while its digits might go on (0: not held).",
		Buckets: []float64{0, .5, 1, 2, 3, 4, 5, 6, 8, 10, 20}})
	passTime := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callscribe_second_pass_seconds",
		Help:    "From a final's end to its second pass's words (finals that fell back not counted).",
		Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5}})
	if err := s.openSecondPass(func(d time.Duration) { passTime.Observe(d.Seconds()) }); err != nil {
		return nil, err
	}
	limits := cfg.limits()
	hotwords, _ := a.HotwordPhrases() // checked with the configuration
	keywords, _ := a.KeywordPhrases()
	policy, _ := cfg.RedactPolicy()
	s.calls = NewCalls(s.batcher, s.pub, CallsOptions{MaxCalls: limits.MaxCalls, MaxPerPeer: limits.MaxPerPeer,
		MaxStreams: limits.MaxStreams, MaxLag: limits.MaxLag, FinalTimeout: a.FinalTimeout, Logger: log,
		Hotwords: hotwords, Keywords: keywords, HotwordsScore: float32(a.HotwordScore), Redact: policy,
		OnLatency: func(k asr.ResultKind, d time.Duration) { latency.WithLabelValues(k.String()).Observe(d.Seconds()) },
		OnHold:    func(d time.Duration) { hold.Observe(d.Seconds()) }, SecondPass: s.pass})
	if a.SkipSilence && a.ShareMix { // before any door opens: the first calls get the fleet's mix
		s.seedMix()
		s.stopMix = make(chan struct{})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.shareMix(s.stopMix, mixShareEvery, mixMinStreams)
		}()
	}
	sc := cfg.SIP.Config
	sc.Logger = log
	s.sip, err = sip.NewServer(sc, s.calls)
	if err != nil {
		return nil, err
	}
	if err := s.sip.Listen(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	registerMetrics(reg, s)
	reg.MustRegister(latency, hold, passTime)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	s.metricsToken.Store(&cfg.HTTP.MetricsToken)
	mux.Handle("/metrics", bearer(func() string { return *s.metricsToken.Load() }, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	if wc := cfg.WebRTC; wc.Enabled {
		w := wc.Config
		w.Logger = log
		s.whip, err = webrtc.NewServer(w, s.calls)
		if err != nil {
			return nil, err
		}
		mux.Handle(wc.Path, s.whip)
		mux.Handle(wc.Path+"/", s.whip)
	}
	if s.follower, err = transcript.NewFollower(r.Follower(cfg.HTTP.MaxEventStreams)); err != nil {
		return nil, err
	}
	s.events = NewEvents(s.follower, log)
	s.events.Max = cfg.HTTP.MaxEventStreams
	s.events.SetToken(cfg.WebRTC.Token)
	mux.Handle("GET /events/{id}", s.events)
	s.board = NewBoard(s.calls, s.pub, s.events, BoardOptions{}, log)
	s.board.SetToken(cfg.HTTP.BoardToken)
	s.board.Mount(mux)
	if err := s.openDoors(mux); err != nil {
		return nil, err
	}
	pause := func(paused bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !callAccess(w, r, s.events.Token()) {
				return
			}
			if err := s.calls.Pause(r.PathValue("id"), paused, "http"); err != nil {
				http.Error(w, "no such call", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"call_id": r.PathValue("id"), "paused": paused})
		}
	}
	mux.HandleFunc("POST /calls/{id}/pause", pause(true))
	mux.HandleFunc("POST /calls/{id}/resume", pause(false))
	if cfg.HTTP.Page && s.whip != nil {
		page, err := Page(cfg.WebRTC.Path, "/events/")
		if err != nil {
			return nil, err
		}
		mux.Handle("GET /{$}", page)
		mux.Handle("GET /static/", page)
	}
	if cfg.WebRTC.Enabled && cfg.WebRTC.Token == "" && !loopbackAddr(cfg.HTTP.Addr) {
		log.Warn("gateway: no webrtc.token: WHIP takes calls from anyone who reaches the HTTP port; "+
			"transcripts (/events) and pause/resume are served to this host only", "http", cfg.HTTP.Addr)
	}
	return s, s.serveHTTP(mux)
}

// loopbackAddr tells a listening address that only this host can reach.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// serveHTTP binds the HTTP address and serves it on a goroutine.
func (s *Service) serveHTTP(h http.Handler) error {
	hl, err := net.Listen("tcp", s.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w", s.cfg.HTTP.Addr, err)
	}
	// Event streams live until their call ends; base ends the ones left
	// when the service stops.
	base, stop := context.WithCancel(context.Background())
	s.stopStreams = stop
	// Strangers may open connections and stall: headers, bodies and idle
	// keep-alives are bounded in time, headers in size, connections in
	// number (more wait in the kernel's backlog).
	hc := s.cfg.HTTP
	hl = netutil.LimitListener(hl, hc.MaxConnections)
	s.hs = &http.Server{Handler: h, ReadHeaderTimeout: min(5*time.Second, hc.ReadTimeout), ReadTimeout: hc.ReadTimeout,
		IdleTimeout: hc.IdleTimeout, MaxHeaderBytes: 16 << 10, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	serve := func() error { return s.hs.Serve(hl) }
	if s.cfg.HTTP.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.HTTP.TLSCertFile, s.cfg.HTTP.TLSKeyFile)
		if err != nil {
			hl.Close()
			return fmt.Errorf("http.tls_cert_file, http.tls_key_file: %w", err)
		}
		s.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		serve = func() error { return s.hs.ServeTLS(hl, "", "") }
	}
	s.hl = hl
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("callscribe: http server stopped", "err", err)
			s.errs <- fmt.Errorf("http: %w", err)
		}
	}()
	return nil
}

// bearer lets through requests that carry the token, or all while it is
// empty.
func bearer(token func() string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := token(); t != "" && !tokenMatches(r.Header.Get("Authorization"), "Bearer "+t) {
			unauthorized(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readyz answers 503 with the reasons while the gateway should get no new
// work: draining, the recognizer failing, Redis unreachable at start or
// with the spool near its bound.
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	var why []string
	if s.draining.Load() {
		why = append(why, "draining")
	}
	if !s.batcher.Stats().Healthy {
		why = append(why, "recognizer unhealthy")
	}
	if s.calls.Saturated() {
		why = append(why, "recognizer saturated")
	}
	if err := s.pub.Ping(ctx); err != nil {
		st := s.pub.Stats()
		if !st.EverConnected || st.SpoolBytes >= st.SpoolMaxBytes*9/10 {
			why = append(why, "redis unreachable")
		}
	}
	if len(why) > 0 {
		http.Error(w, strings.Join(why, ", "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// SIPAddrs are the bound SIP listen addresses.
func (s *Service) SIPAddrs() []net.Addr { return s.sip.Addrs() }

// HTTPAddr is the bound HTTP address.
func (s *Service) HTTPAddr() net.Addr { return s.hl.Addr() }

// RuntimePath is the ONNX Runtime library the recognizer runs on.
func (s *Service) RuntimePath() string { return asr.RuntimePath() }

// Provider is the recognizer's execution provider.
func (s *Service) Provider() string { return s.batcher.Provider() }

// Err reports a server that stopped by itself (the process should exit).
func (s *Service) Err() <-chan error { return s.errs }

// Drain stops admitting calls (SIP and WHIP get 503, OPTIONS and /readyz
// say so) and waits until the calls in progress are over or ctx ends.
func (s *Service) Drain(ctx context.Context) error {
	s.draining.Store(true)
	s.calls.SetDraining()
	return s.calls.Drain(ctx)
}

// Close ends the calls left (BYE, reason shutdown), publishes their last
// finals and call.end, delivers what it can to Redis within 10 s, and
// stops everything. Idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Service) close() {
	s.draining.Store(true)
	if s.calls != nil {
		s.calls.SetDraining()
	}
	if s.sip != nil {
		s.sip.Close()
	}
	if s.whip != nil {
		s.whip.Close()
	}
	s.closeDoors()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.calls != nil {
		if err := s.calls.Drain(ctx); err != nil {
			s.log.Error("callscribe: calls not finished", "err", err, "left", s.calls.Active())
		}
		s.calls.Wait()
	}
	if s.pub != nil {
		if err := s.pub.Flush(ctx); err != nil {
			s.log.Error("callscribe: transcript events not delivered", "err", err)
		}
	}
	if s.board != nil {
		s.board.Close() // its streams end; the calls have left it
	}
	if s.hs != nil {
		// Followers of the calls just ended get their call.end, then the
		// rest of the streams are cut.
		for t := time.Now(); s.events.Active() > 0 && time.Since(t) < time.Second; {
			time.Sleep(20 * time.Millisecond)
		}
		s.stopStreams()
		if err := s.hs.Shutdown(ctx); err != nil {
			s.log.Warn("callscribe: http shutdown", "err", err)
			s.hs.Close()
		}
	}
	if s.stopMix != nil {
		close(s.stopMix)
	}
	s.wg.Wait()
	if s.follower != nil {
		s.follower.Close()
	}
	if s.pub != nil {
		s.pub.Close()
	}
	if s.pass != nil {
		s.pass.Close()
	}
	for _, r := range s.final {
		r.Close()
	}
	if s.batcher != nil {
		s.batcher.Close()
	}
}

// openSecondPass loads asr.final_model, when there is one, and measures
// what a busy round of it costs (its part of the capacity estimate).
func (s *Service) openSecondPass(onDone func(time.Duration)) error {
	a := s.cfg.ASR
	if a.FinalModel == "none" {
		return nil
	}
	dir, err := moonshine.FindModel(a.FinalModel)
	if err != nil {
		return err
	}
	// A recognizer per engine of the first pass: rounds run on as many
	// cores.
	s.final, err = moonshine.NewN(moonshine.Files{Dir: dir}, moonshine.Options{Provider: a.Engine.Provider,
		DeviceID: a.Engine.DeviceID, CUDAOptions: a.Engine.CUDAOptions, Logger: s.log}, s.batcher.Workers())
	if err != nil {
		return err
	}
	recs := make([]Recognizer, len(s.final))
	for i, r := range s.final {
		recs[i] = r
	}
	// A round of finals as a busy gateway has them: a full batch of 4 s
	// segments decoding 4 tokens a second (speech says about 3.5).
	const n, length, perSecond = moonshine.DefaultMaxBatch, 4 * time.Second, 4
	took, err := s.final[0].Cost(n, length, perSecond*int(length.Seconds()))
	if err != nil {
		return err
	}
	cost := time.Duration(float64(took) / (n * length.Seconds()))
	s.log.Info("callscribe: second pass "+a.FinalModel, "provider", s.final[0].Provider(), "recognizers", len(recs),
		"per_audio_second", cost)
	s.pass = NewSecondPass(recs, cost, SecondPassOptions{Name: filepath.Base(a.FinalModel), MaxSegment: a.FinalMaxSegment, Timeout: a.FinalModelTimeout,
		OnDone: onDone, Logger: s.log})
	return nil
}
