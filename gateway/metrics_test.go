package gateway

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/sip"
	"github.com/callscribe/callscribe/sip/siptest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/metrics.golden from this run")

// metricsService is a Service with the parts registerMetrics reads (a real
// recognizer, publisher, registry and SIP server), and its registry.
func metricsService(tb testing.TB) (*Service, *prometheus.Registry) {
	tb.Helper()
	b := newBatcher(tb)
	_, pub, calls, srv := testGateway(tb, b, CallsOptions{MaxStreams: -1, MaxLag: -1}, sip.Config{UDP: "127.0.0.1:0"})
	s := &Service{batcher: b, pub: pub, calls: calls, sip: srv, events: NewEvents(nil, nil)}
	reg := prometheus.NewRegistry()
	registerMetrics(reg, s)
	return s, reg
}

// scrape is the /metrics text of reg.
func scrape(tb testing.TB, reg *prometheus.Registry) string {
	tb.Helper()
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		tb.Fatalf("/metrics: %d\n%s", w.Code, w.Body)
	}
	return w.Body.String()
}

// timed are the series whose values depend on the machine and the moment
// (step times, what calibration and batching did, the engines per core):
// the golden file keeps their names and labels, not their values.
var timed = []string{"callscribe_asr_step_seconds_total", "callscribe_asr_capacity_streams", "callscribe_asr_talking_ratio",
	"callscribe_asr_step_per_stream_seconds", "callscribe_asr_batches_total", "callscribe_asr_chunks_total",
	"callscribe_asr_skipped_chunks_total", "callscribe_asr_vad_windows_total", "callscribe_asr_vad_seconds_total",
	"callscribe_asr_engines"}

// callscribeLines is the text's callscribe_ lines, the values of timed
// series masked and the batch sizes (which depend on timing) left out.
func callscribeLines(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		name := l
		if rest, ok := strings.CutPrefix(l, "# "); ok {
			_, name, _ = strings.Cut(rest, " ")
		}
		if !strings.HasPrefix(name, "callscribe_") {
			continue
		}
		if !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "callscribe_asr_batches_by_size_total{") {
				continue
			}
			series, _, _ := strings.Cut(l, " ")
			family, _, _ := strings.Cut(series, "{")
			for _, n := range timed {
				if family == n {
					l = series + " <timed>"
				}
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// /metrics of a gateway after one SIP call, a refusal, a reload and
// counters set by hand, with one call holding a slot: every
// callscribe_ family with its help, type, labels and values as in
// testdata/metrics.golden (written from the scrape before the metrics were
// one collector), the process and Go collectors there too.
func TestMetricsText(t *testing.T) {
	s, reg := metricsService(t)
	code := siptest.NewPhone(t).Talk(t, s.sip.Addrs()[0].String(), siptest.PCMU(make([]float32, 8000)))
	if code != 200 {
		t.Fatalf("call: %d", code)
	}
	s.calls.Refused("sip", &ingest.Refusal{Reason: "forbidden", SIP: 403})
	s.reloads[0].Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settle(t, ctx, s.calls, s.pub)
	// Counters no test call moves, each its own value: a metric that read
	// another's field would show.
	s.calls.mu.Lock()
	st := &s.calls.stats
	st.RTP.Lost, st.RTP.Ignored, st.RTP.Panics, st.RTP.Unauthenticated, st.RTP.Reports, st.RTP.Malformed = 3, 5, 7, 11, 13, 17
	st.DroppedMs, st.LateResults, st.Abandoned = 19000, 23, 29
	s.calls.mu.Unlock()
	tk, err := s.calls.Admit(ingest.Offer{ID: "live", Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"), Legs: []string{"caller"}})
	if err != nil {
		t.Fatal(err)
	}
	text := scrape(t, reg)
	tk.End("bye", nil)
	s.calls.Wait()
	got := callscribeLines(text)
	path := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("/metrics differs from %s:\n%s", path, lineDiff(string(want), got))
	}
	for _, family := range []string{"process_cpu_seconds_total", "go_goroutines"} {
		if !strings.Contains(text, "\n# TYPE "+family+" ") {
			t.Errorf("no %s", family)
		}
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(text string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(text, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// A scrape of a gateway with 1,000 calls holding slots, one stream each.
func BenchmarkScrape(b *testing.B) {
	s, reg := metricsService(b)
	var tickets []ingest.Ticket
	b.Cleanup(func() {
		for _, tk := range tickets {
			tk.End("bye", nil)
		}
		s.calls.Wait()
	})
	for i := range 1000 {
		tk, err := s.calls.Admit(ingest.Offer{ID: fmt.Sprint("c", i), Source: "sip", Peer: netip.MustParseAddr("127.0.0.1"),
			Legs: []string{"caller"}})
		if err != nil {
			b.Fatal(err)
		}
		tk.Start(nil)
		tickets = append(tickets, tk)
	}
	b.ReportAllocs()
	for b.Loop() {
		scrape(b, reg)
	}
}
