package gateway

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/transcript"
)

// registerMetrics exports the service's counters, read when scraped, and
// the process's and Go's.
func registerMetrics(reg *prometheus.Registry, s *Service) {
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector(), serviceMetrics{s})
}

// snapshot is what one scrape reads. Each part's counters are taken once:
// Calls and the Batcher answer under the locks that admission and the
// packet path take, so a scrape holds each of them as briefly as it can
// (twice: counters and the active count, counters and the lag), and every
// metric of one part comes from the same moment.
type snapshot struct {
	s          *Service
	calls      Stats
	active     int
	maxStreams int
	asr        asr.Stats
	lag        time.Duration
	capacity   int
	talking    float64
	stepCost   time.Duration
	engines    map[string]int
	pub        transcript.Stats
	pass       SecondPassStats // zero without a second pass
	passCost   time.Duration
}

func (s *Service) snapshot() *snapshot {
	m := &snapshot{s: s, calls: s.calls.Stats(), active: s.calls.Active(), maxStreams: s.calls.MaxStreams(),
		asr: s.batcher.Stats(), lag: s.batcher.Lag(), capacity: s.batcher.Capacity(), talking: s.batcher.Talking(), stepCost: s.batcher.StepCost(),
		engines: s.batcher.Engines(), pub: s.pub.Stats(), pass: SecondPassStats{Fallbacks: map[string]int64{}}}
	if p := s.calls.opts.SecondPass; p != nil {
		m.pass, m.passCost = p.Stats(), p.Cost()
	}
	return m
}

// metric is a series without labels and how it reads its value from a
// snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*snapshot) float64
}

func counter(name, help string, value func(*snapshot) float64) metric {
	return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, value}
}

func gauge(name, help string, value func(*snapshot) float64) metric {
	return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, value}
}

// unlabelled are the series without labels.
var unlabelled = []metric{
	gauge("callscribe_calls_active", "Calls holding a slot: admitted, in progress or finishing.",
		func(m *snapshot) float64 { return float64(m.active) }),
	counter("callscribe_rtp_packets_total", "RTP packets of ended calls.", func(m *snapshot) float64 { return float64(m.calls.RTP.Packets) }),
	counter("callscribe_rtp_lost_total", "RTP packets declared lost (ended calls).", func(m *snapshot) float64 { return float64(m.calls.RTP.Lost) }),
	counter("callscribe_rtp_ignored_total", "RTP packets from sources other than a leg's peer, ignored (ended calls).",
		func(m *snapshot) float64 { return float64(m.calls.RTP.Ignored) }),
	counter("callscribe_rtp_panics_total", "RTP packets whose handling panicked, dropped (ended calls); a bug to report.",
		func(m *snapshot) float64 { return float64(m.calls.RTP.Panics) }),
	counter("callscribe_sip_panics_total", "SIP requests whose handling panicked, answered 500; a bug to report.",
		func(m *snapshot) float64 { return float64(m.s.sip.Panics()) }),
	counter("callscribe_srtp_unauthenticated_total", "SRTP and SRTCP packets that failed authentication or were replays, dropped (ended calls).",
		func(m *snapshot) float64 { return float64(m.calls.RTP.Unauthenticated) }),
	counter("callscribe_rtcp_reports_total", "RTCP receiver reports sent (ended calls).", func(m *snapshot) float64 { return float64(m.calls.RTP.Reports) }),
	counter("callscribe_sip_bye_failed_total", "BYEs the gateway sent that got no 2xx (peer gone, TLS connection refused or not verified); each is logged.",
		func(m *snapshot) float64 { return float64(m.s.sip.ByeFailures()) }),
	counter("callscribe_sip_refresh_failed_total", "Session refreshes (UPDATE) the gateway sent that got no 2xx; each is logged.",
		func(m *snapshot) float64 { return float64(m.s.sip.RefreshFailures()) }),
	counter("callscribe_rtp_malformed_total", "RTP packets dropped as malformed (ended calls).",
		func(m *snapshot) float64 { return float64(m.calls.RTP.Malformed) }),
	counter("callscribe_audio_dropped_seconds_total", "Audio of ended calls dropped undecoded because the recognizer fell behind.",
		func(m *snapshot) float64 { return float64(m.calls.DroppedMs) / 1000 }),
	counter("callscribe_results_after_end_total", "Recognition results that came after their call's call.end (not published).",
		func(m *snapshot) float64 { return float64(m.calls.LateResults) }),
	counter("callscribe_finals_abandoned_total", "Legs whose last final was not ready by asr.final_timeout.",
		func(m *snapshot) float64 { return float64(m.calls.Abandoned) }),
	counter("callscribe_asr_step_seconds_total", "Time spent in successful batch steps.", func(m *snapshot) float64 { return m.asr.StepTime.Seconds() }),
	gauge("callscribe_asr_streams_active", "Recognition streams open.", func(m *snapshot) float64 { return float64(m.asr.ActiveStreams) }),
	gauge("callscribe_asr_capacity_streams", "Streams the recognizer serves in real time, measured (workers × headroom × chunk period / the cost of a stream's chunk at the current mix of talking and quiet streams).",
		func(m *snapshot) float64 { return float64(m.capacity) }),
	gauge("callscribe_asr_talking_ratio", "Share of the streams' chunks the encoder ran lately, the rest skipped silence (EWMA over about 10 s; the fleet's shared mix, or 1, until measured).",
		func(m *snapshot) float64 { return m.talking }),
	gauge("callscribe_asr_max_streams", "Streams admission allows now (asr.max_streams, or the capacity when auto).",
		func(m *snapshot) float64 { return float64(m.maxStreams) }),
	gauge("callscribe_asr_lag_seconds", "How far behind real time decoding is: the most undecoded audio a live stream holds.",
		func(m *snapshot) float64 { return m.lag.Seconds() }),
	gauge("callscribe_asr_step_per_stream_seconds", "Measured step time per stream at full batches.",
		func(m *snapshot) float64 { return m.stepCost.Seconds() }),
	counter("callscribe_asr_batches_total", "Encoder steps run.", func(m *snapshot) float64 { return float64(m.asr.Batches) }),
	counter("callscribe_asr_chunks_total", "Stream chunks decoded.", func(m *snapshot) float64 { return float64(m.asr.Chunks) }),
	counter("callscribe_asr_skipped_chunks_total", "Stream chunks of silence not encoded (asr.skip_silence).",
		func(m *snapshot) float64 { return float64(m.asr.Skipped) }),
	counter("callscribe_asr_vad_windows_total", "Windows of audio (32 ms each) the VAD model heard: a quiet stream's when skipping silence (not its digital silence or steady line noise), every window with endpoint mode vad.",
		func(m *snapshot) float64 { return float64(m.asr.VADWindows) }),
	counter("callscribe_asr_vad_seconds_total", "CPU time the VAD took before steps (its thread's, or the wall clock where not read).", func(m *snapshot) float64 { return m.asr.VADTime.Seconds() }),
	counter("callscribe_asr_faults_total", "Failed or timed-out steps (retried).", func(m *snapshot) float64 { return float64(m.asr.Faults) }),
	counter("callscribe_asr_fallbacks_total", "Engines moved to the CPU provider.", func(m *snapshot) float64 { return float64(m.asr.Fallbacks) }),
	counter("callscribe_asr_recoveries_total", "Engines back on their GPU after a fallback (asr.gpu_retry).",
		func(m *snapshot) float64 { return float64(m.asr.Recoveries) }),
	counter("callscribe_asr_dropped_frames_total", "Feature frames dropped on overflow.", func(m *snapshot) float64 { return float64(m.asr.DroppedFrames) }),
	counter("callscribe_redis_published_total", "Events written to Redis.", func(m *snapshot) float64 { return float64(m.pub.Published) }),
	counter("callscribe_redis_errors_total", "Failed Redis rounds.", func(m *snapshot) float64 { return float64(m.pub.Errors) }),
	counter("callscribe_redis_recovered_calls_total", "Calls a previous run left open, ended with reason restart.",
		func(m *snapshot) float64 { return float64(m.pub.Recovered) }),
	gauge("callscribe_redis_spool_depth", "Events waiting for Redis.", func(m *snapshot) float64 { return float64(m.pub.SpoolDepth) }),
	gauge("callscribe_redis_spool_bytes", "Memory held by events waiting for Redis.", func(m *snapshot) float64 { return float64(m.pub.SpoolBytes) }),
	gauge("callscribe_redis_spool_file_bytes", "Size of the spool file.", func(m *snapshot) float64 { return float64(m.pub.SpoolFileBytes) }),
	counter("callscribe_redis_spool_file_errors_total", "Failed writes to the spool file (the events stay in memory).",
		func(m *snapshot) float64 { return float64(m.pub.SpoolFileErrs) }),
	gauge("callscribe_event_streams_active", "Open /events streams (SSE followers of a call).",
		func(m *snapshot) float64 { return float64(m.s.events.Active()) }),
	counter("callscribe_second_pass_finals_total", "Finals whose words came from the second pass (asr.final_model).",
		func(m *snapshot) float64 { return float64(m.pass.Done) }),
	gauge("callscribe_second_pass_waiting", "Finals waiting for their second pass.", func(m *snapshot) float64 { return float64(m.pass.Waiting) }),
	counter("callscribe_second_pass_audio_seconds_total", "Audio the second pass recognized.",
		func(m *snapshot) float64 { return m.pass.Audio.Seconds() }),
	counter("callscribe_second_pass_busy_seconds_total", "Time the second pass spent recognizing.",
		func(m *snapshot) float64 { return m.pass.Busy.Seconds() }),
	gauge("callscribe_second_pass_cost_seconds", "Second-pass time per second of final audio at busy rounds (measured; the capacity estimate counts it).",
		func(m *snapshot) float64 { return m.passCost.Seconds() }),
}

// The series with labels.
var (
	reloadsDesc = prometheus.NewDesc("callscribe_config_reloads_total",
		"Configuration reloads (SIGHUP) by result: ok (applied) or error (nothing changed).", []string{"result"}, nil)
	startedDesc  = prometheus.NewDesc("callscribe_calls_started_total", "Calls answered, by source.", []string{"source"}, nil)
	endedDesc    = prometheus.NewDesc("callscribe_calls_ended_total", "Calls ended, by reason.", []string{"reason"}, nil)
	rejectedDesc = prometheus.NewDesc("callscribe_calls_rejected_total",
		"Calls refused (SIP 4xx/5xx to an INVITE, WHIP 4xx/5xx to an offer), by source and reason.", []string{"source", "reason"}, nil)
	batchSizesDesc = prometheus.NewDesc("callscribe_asr_batches_by_size_total", "Encoder steps, by batch size.", []string{"size"}, nil)
	enginesDesc    = prometheus.NewDesc("callscribe_asr_engines", "Engines by the execution provider they run on now.", []string{"provider"}, nil)
	fallbacksDesc  = prometheus.NewDesc("callscribe_second_pass_fallbacks_total",
		"Finals published from the first pass although a second pass is configured, by reason: error, timeout, lag, guard.", []string{"reason"}, nil)
)

// Label values present from the start (at 0), so that a rate or an alert
// has a series before the first event: the sources, and the reasons a
// source ends a call that was answered (a call ended before its answer,
// as by CANCEL, is not counted here).
var (
	sources      = []string{"sip", "webrtc", "audiohook", "twilio", "stream", "jambonz", "audiosocket"}
	endReasons   = []string{"bye", "timeout", "shutdown", "error", "keepalive"}
	reloadResult = []string{"ok", "error"} // the order of Service.reloads
)

// serviceMetrics is the service's one collector: a scrape takes one
// snapshot of each part and reads every series from it.
type serviceMetrics struct{ s *Service }

func (serviceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range unlabelled {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{reloadsDesc, startedDesc, endedDesc, rejectedDesc, batchSizesDesc, enginesDesc, fallbacksDesc} {
		ch <- d
	}
}

func (c serviceMetrics) Collect(ch chan<- prometheus.Metric) {
	m := c.s.snapshot()
	for _, x := range unlabelled {
		ch <- prometheus.MustNewConstMetric(x.desc, x.kind, x.value(m))
	}
	for i, result := range reloadResult {
		ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(c.s.reloads[i].Load()), result)
	}
	st := m.calls
	for _, src := range sources {
		st.Started[src] += 0
	}
	for _, reason := range endReasons {
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
	for size, n := range m.asr.BatchSizes {
		ch <- prometheus.MustNewConstMetric(batchSizesDesc, prometheus.CounterValue, float64(n), strconv.Itoa(size))
	}
	m.engines["cpu"] += 0
	for provider, n := range m.engines {
		ch <- prometheus.MustNewConstMetric(enginesDesc, prometheus.GaugeValue, float64(n), provider)
	}
	for _, reason := range FallbackReasons() {
		ch <- prometheus.MustNewConstMetric(fallbacksDesc, prometheus.CounterValue, float64(m.pass.Fallbacks[reason]), reason)
	}
}
