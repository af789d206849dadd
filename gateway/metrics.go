package gateway

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// registerMetrics exports the service's counters, read when scraped.
func registerMetrics(reg *prometheus.Registry, s *Service) {
	b, pub, calls := s.batcher, s.pub, s.calls
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	for i, result := range []string{"ok", "error"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "callscribe_config_reloads_total",
			Help:        "Configuration reloads (SIGHUP) by result: ok (applied) or error (nothing changed).",
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(s.reloads[i].Load()) }))
	}
	gauge("callscribe_calls_active", "Calls holding a slot: admitted, in progress or finishing.", func() float64 { return float64(calls.Active()) })
	reg.MustRegister(callCounters{calls})
	counter("callscribe_rtp_packets_total", "RTP packets of ended calls.", func() float64 { return float64(calls.Stats().RTP.Packets) })
	counter("callscribe_rtp_lost_total", "RTP packets declared lost (ended calls).", func() float64 { return float64(calls.Stats().RTP.Lost) })
	counter("callscribe_rtp_ignored_total", "RTP packets from sources other than a leg's peer, ignored (ended calls).",
		func() float64 { return float64(calls.Stats().RTP.Ignored) })
	counter("callscribe_rtp_panics_total", "RTP packets whose handling panicked, dropped (ended calls); a bug to report.",
		func() float64 { return float64(calls.Stats().RTP.Panics) })
	counter("callscribe_sip_panics_total", "SIP requests whose handling panicked, answered 500; a bug to report.",
		func() float64 { return float64(s.sip.Panics()) })
	counter("callscribe_srtp_unauthenticated_total", "SRTP and SRTCP packets that failed authentication or were replays, dropped (ended calls).",
		func() float64 { return float64(calls.Stats().RTP.Unauthenticated) })
	counter("callscribe_rtcp_reports_total", "RTCP receiver reports sent (ended calls).", func() float64 { return float64(calls.Stats().RTP.Reports) })
	counter("callscribe_sip_bye_failed_total", "BYEs the gateway sent that got no 2xx (peer gone, TLS connection refused or not verified); each is logged.",
		func() float64 { return float64(s.sip.ByeFailures()) })
	counter("callscribe_sip_refresh_failed_total", "Session refreshes (UPDATE) the gateway sent that got no 2xx; each is logged.",
		func() float64 { return float64(s.sip.RefreshFailures()) })
	counter("callscribe_rtp_malformed_total", "RTP packets dropped as malformed (ended calls).", func() float64 { return float64(calls.Stats().RTP.Malformed) })
	counter("callscribe_audio_dropped_seconds_total", "Audio of ended calls dropped undecoded because the recognizer fell behind.",
		func() float64 { return float64(calls.Stats().DroppedMs) / 1000 })
	counter("callscribe_results_after_end_total", "Recognition results that came after their call's call.end (not published).",
		func() float64 { return float64(calls.Stats().LateResults) })
	counter("callscribe_finals_abandoned_total", "Legs whose last final was not ready by asr.final_timeout.",
		func() float64 { return float64(calls.Stats().Abandoned) })
	counter("callscribe_asr_step_seconds_total", "Time spent in successful batch steps.", func() float64 { return b.Stats().StepTime.Seconds() })
	reg.MustRegister(asrLabelled{s})
	gauge("callscribe_asr_streams_active", "Recognition streams open.", func() float64 { return float64(b.Stats().ActiveStreams) })
	gauge("callscribe_asr_capacity_streams", "Streams the recognizer serves in real time, measured (workers × headroom × chunk period / step time per stream).",
		func() float64 { return float64(b.Capacity()) })
	gauge("callscribe_asr_max_streams", "Streams admission allows now (asr.max_streams, or the capacity when auto).",
		func() float64 { return float64(calls.MaxStreams()) })
	gauge("callscribe_asr_lag_seconds", "How far behind real time decoding is: the most undecoded audio a live stream holds.",
		func() float64 { return b.Lag().Seconds() })
	gauge("callscribe_asr_step_per_stream_seconds", "Measured step time per stream at full batches.",
		func() float64 { return b.StepCost().Seconds() })
	counter("callscribe_asr_batches_total", "Encoder steps run.", func() float64 { return float64(b.Stats().Batches) })
	counter("callscribe_asr_chunks_total", "Stream chunks decoded.", func() float64 { return float64(b.Stats().Chunks) })
	counter("callscribe_asr_faults_total", "Failed or timed-out steps (retried).", func() float64 { return float64(b.Stats().Faults) })
	counter("callscribe_asr_fallbacks_total", "Engines moved to the CPU provider.", func() float64 { return float64(b.Stats().Fallbacks) })
	counter("callscribe_asr_recoveries_total", "Engines back on their GPU after a fallback (asr.gpu_retry).", func() float64 { return float64(b.Stats().Recoveries) })
	counter("callscribe_asr_dropped_frames_total", "Feature frames dropped on overflow.", func() float64 { return float64(b.Stats().DroppedFrames) })
	counter("callscribe_redis_published_total", "Events written to Redis.", func() float64 { return float64(pub.Stats().Published) })
	counter("callscribe_redis_errors_total", "Failed Redis rounds.", func() float64 { return float64(pub.Stats().Errors) })
	counter("callscribe_redis_recovered_calls_total", "Calls a previous run left open, ended with reason restart.",
		func() float64 { return float64(pub.Stats().Recovered) })
	gauge("callscribe_redis_spool_depth", "Events waiting for Redis.", func() float64 { return float64(pub.Stats().SpoolDepth) })
	gauge("callscribe_redis_spool_bytes", "Memory held by events waiting for Redis.", func() float64 { return float64(pub.Stats().SpoolBytes) })
	gauge("callscribe_redis_spool_file_bytes", "Size of the spool file.", func() float64 { return float64(pub.Stats().SpoolFileBytes) })
	counter("callscribe_redis_spool_file_errors_total", "Failed writes to the spool file (the events stay in memory).",
		func() float64 { return float64(pub.Stats().SpoolFileErrs) })
	gauge("callscribe_event_streams_active", "Open /events streams (SSE followers of a call).", func() float64 { return float64(s.events.Active()) })
}

var (
	startedDesc  = prometheus.NewDesc("callscribe_calls_started_total", "Calls answered, by source.", []string{"source"}, nil)
	endedDesc    = prometheus.NewDesc("callscribe_calls_ended_total", "Calls ended, by reason.", []string{"reason"}, nil)
	rejectedDesc = prometheus.NewDesc("callscribe_calls_rejected_total",
		"Calls refused (SIP 4xx/5xx to an INVITE, WHIP 4xx/5xx to an offer), by source and reason.", []string{"source", "reason"}, nil)
	batchSizesDesc = prometheus.NewDesc("callscribe_asr_batches_by_size_total", "Encoder steps, by batch size.", []string{"size"}, nil)
	enginesDesc    = prometheus.NewDesc("callscribe_asr_engines", "Engines by the execution provider they run on now.", []string{"provider"}, nil)
)

// callCounters exports the call registry's labelled counters.
type callCounters struct{ c *Calls }

func (callCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- startedDesc
	ch <- endedDesc
	ch <- rejectedDesc
}

func (m callCounters) Collect(ch chan<- prometheus.Metric) {
	st := m.c.Stats()
	for _, src := range []string{"sip", "webrtc"} { // present from the start
		st.Started[src] += 0
	}
	for _, reason := range []string{"bye", "timeout", "shutdown", "error"} {
		st.Ended[reason] += 0
	}
	for src, n := range st.Started {
		ch <- prometheus.MustNewConstMetric(startedDesc, prometheus.CounterValue, float64(n), src)
	}
	for reason, n := range st.Ended {
		ch <- prometheus.MustNewConstMetric(endedDesc, prometheus.CounterValue, float64(n), reason)
	}
	for k, n := range st.Rejected {
		src, reason, _ := strings.Cut(k, "/")
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(n), src, reason)
	}
}

// asrLabelled exports the recognizer's labelled metrics: batches by size,
// engines by provider.
type asrLabelled struct{ s *Service }

func (asrLabelled) Describe(ch chan<- *prometheus.Desc) {
	ch <- batchSizesDesc
	ch <- enginesDesc
}

func (c asrLabelled) Collect(ch chan<- prometheus.Metric) {
	for size, n := range c.s.batcher.Stats().BatchSizes {
		ch <- prometheus.MustNewConstMetric(batchSizesDesc, prometheus.CounterValue, float64(n), strconv.Itoa(size))
	}
	engines := c.s.batcher.Engines()
	engines["cpu"] += 0 // present from the start
	for provider, n := range engines {
		ch <- prometheus.MustNewConstMetric(enginesDesc, prometheus.GaugeValue, float64(n), provider)
	}
}
