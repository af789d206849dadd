package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"go.yaml.in/yaml/v3"

	"github.com/callscribe/callscribe/media"
	"github.com/callscribe/callscribe/sip/siptest"
	"github.com/callscribe/callscribe/transcript/transcripttest"
)

// The files operators are given (deployments/prometheus, deployments/grafana).
const (
	promConfig = "../../deployments/prometheus/prometheus.yml"
	promRules  = "../../deployments/prometheus/callscribe-rules.yml"
	dashboard  = "../../deployments/grafana/callscribe.json"
)

// secondPassSeries are the series of the second-pass stage, which is being built:
// the dashboard and the rules read them, and until the gateway exports
// them (gateway/testdata/metrics.golden or its /metrics names them) a query
// of them may come back empty.
var secondPassSeries = []string{"callscribe_second_pass_fallbacks_total", "callscribe_second_pass_seconds"}

// prometheus is Debian's Prometheus scraping one gateway every second.
type prometheus struct {
	addr string
	out  *lockedBuffer
}

// startPrometheus runs Prometheus on the shipped configuration
// (deployments/prometheus/prometheus.yml: its job, its rules) with target
// as the only gateway, scraped and its rules evaluated every second.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("no prometheus on PATH: run scripts/setup (it installs Debian's prometheus)")
	}
	b, err := os.ReadFile(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	global := cfg["global"].(map[string]any)
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1s"
	rules, err := filepath.Abs(promRules)
	if err != nil {
		t.Fatal(err)
	}
	cfg["rule_files"] = []string{rules}
	jobs := cfg["scrape_configs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("%s: %d scrape jobs, want the gateway's", promConfig, len(jobs))
	}
	jobs[0].(map[string]any)["static_configs"] = []any{map[string]any{"targets": []string{target}}}
	dir := t.TempDir()
	b, err = yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: freePort(t, "tcp"), out: &lockedBuffer{}}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, p.out.String())
		default:
		}
		if res, err := http.Get("http://" + p.addr + "/-/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("prometheus never ready")
		}
	}
}

// api GETs path (with query) from Prometheus's HTTP API into data.
func (p *prometheus) api(t *testing.T, path string, query url.Values, data any) {
	t.Helper()
	res, err := http.Get("http://" + p.addr + path + "?" + query.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		t.Fatalf("%s %v: %s %s (%v)", path, query, r.Status, r.Error, err)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// value is the sample's value ("NaN" and "+Inf" included); NaN if unreadable.
func (s sample) value() float64 {
	v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// query evaluates expr now; a malformed expression fails the test.
func (p *prometheus) query(t *testing.T, expr string) []sample {
	t.Helper()
	var d struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &d)
	if d.ResultType != "vector" {
		t.Fatalf("%s: a %s, want a vector", expr, d.ResultType)
	}
	return d.Result
}

// waitFor polls expr until it returns a series (what names the wait).
func (p *prometheus) waitFor(t *testing.T, expr, what string, within time.Duration) {
	t.Helper()
	for start := time.Now(); len(p.query(t, expr)) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Since(start) > within {
			t.Fatalf("%s: %s returned nothing in %v", what, expr, within)
		}
	}
}

// metricNames are the metrics an expression reads (the gateway's, Go's,
// the process's and up); a histogram's series by their family's name.
var metricName = regexp.MustCompile(`\b(?:callscribe_[a-z_]+|go_[a-z_]+|process_[a-z_]+|up)\b`)

func metricNames(expr string) []string {
	var names []string
	for _, n := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if f, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(f, "_seconds") {
				n = f
			}
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// grouped are the labels an expression keeps: by (...) clauses and the
// legend's {{label}}.
var (
	byClause = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	legend   = regexp.MustCompile(`\{\{\s*([a-zA-Z_]+)\s*\}\}`)
)

func grouped(expr, legendFormat string) []string {
	var labels []string
	for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "le" {
				labels = append(labels, l)
			}
		}
	}
	for _, m := range legend.FindAllStringSubmatch(legendFormat, -1) {
		labels = append(labels, m[1])
	}
	return labels
}

// panelTarget is one query of one dashboard panel.
type panelTarget struct {
	panel, expr, legend string
}

// dashboardTargets reads every panel's queries and the dashboard's
// template variables' queries.
func dashboardTargets(t *testing.T) (targets []panelTarget, variables map[string]string) {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			targets = append(targets, panelTarget{p.Title, tg.Expr, tg.LegendFormat})
		}
	}
	variables = map[string]string{}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			variables[v.Name] = fmt.Sprint(q["query"])
		}
	}
	return targets, variables
}

// exported tells whether the gateway exports a metric family: its scrape
// or the golden file of its metrics names it.
func exported(t *testing.T, scrape, name string) bool {
	t.Helper()
	golden, err := os.ReadFile("../../gateway/testdata/metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(scrape, "# TYPE "+name+" ") || strings.Contains(string(golden), "# TYPE "+name+" ")
}

// missingMetrics are the names expr reads that Prometheus has no series
// of; the second pass's are left out (and logged) while the gateway does
// not export them.
func missingMetrics(t *testing.T, have []string, scrape, what, expr string) (missing []string) {
	t.Helper()
	for _, n := range metricNames(expr) {
		if slices.Contains(have, n) || slices.Contains(have, n+"_count") {
			continue
		}
		if slices.Contains(secondPassSeries, n) && !exported(t, scrape, n) {
			t.Logf("%s: %s not exported yet (the second pass has not landed)", what, n)
			continue
		}
		missing = append(missing, n)
	}
	return missing
}

// Debian's Prometheus, on the shipped configuration and rules, scrapes a
// gateway every second while calls go on: two SIP calls (one with
// redaction, so finals are held), a SIP INVITE refused 488 and a WHIP
// offer refused 400, so every labelled counter the dashboard reads has a
// child. Then, with a call ended and one still live, every query of every
// panel of deployments/grafana/callscribe.json returns data (numbers, not
// NaN, but for the second pass's time: it is off here), names only
// metrics the gateway exports and groups only by labels its series have;
// the template variables find the gateway; every alert rule loads, is
// evaluated without error and reads only metrics that exist; and
// up{job="callscribe"}, which the rules read, is the gateway.
func TestPrometheusDashboardAndRules(t *testing.T) {
	rd := transcripttest.Start(t)
	g := startGateway(t, rd.Addr)
	prom := startPrometheus(t, g.http)
	g.waitReady(t, 200)
	sel := fmt.Sprintf(`{job="callscribe", instance=%q}`, g.http)
	// Prometheus hands its first targets to the scrapers after 5 s: the
	// calls start once it has the counters as they were before them.
	prom.waitFor(t, `up`+sel+` == 1`, "the gateway scraped, with the rules' job", 20*time.Second)

	// Utterances 1.5 s apart, a final after each, for a minute: the call
	// is live until the gateway ends it below.
	var long []float32
	for _, u := range []string{"u01", "u03", "u05", "u07", "u09", "u01", "u03", "u05", "u07", "u09", "u01", "u03", "u05"} {
		a, err := media.ReadWAVFile("../../asr/testdata/parity/" + u + "-8k.wav")
		if err != nil {
			t.Fatal(err)
		}
		long = append(append(long, a.Samples...), make([]float32, 12000)...)
	}
	short, err := media.ReadWAVFile("../../asr/testdata/parity/u13-8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	type placed struct {
		res siptest.Talked
		err error
	}
	call := func(pt uint8, samples []float32, hdrs ...sipmsg.Header) <-chan placed {
		ph := siptest.NewPhone(t)
		ph.PT = pt
		done := make(chan placed, 1)
		go func() {
			res, err := ph.Call(g.sip, siptest.PCMU(samples), hdrs...)
			done <- placed{res, err}
		}()
		return done
	}
	longCall := call(0, long)
	defer func() {
		// SIGINT: the gateway ends the call at once (BYE) and exits.
		g.cmd.Process.Signal(os.Interrupt)
		select {
		case <-longCall:
		case <-time.After(30 * time.Second):
			t.Error("the long call did not end with the gateway")
		}
	}()
	shortCall := call(0, short.Samples, sipmsg.NewHeader("X-Callscribe-Redact", "pci"))
	// G.729 only: 488, refused for the codec.
	if r := <-call(18, short.Samples[:1600]); r.res.Code != 488 {
		t.Fatalf("G.729 INVITE: %d %v", r.res.Code, r.err)
	}
	if code, _ := g.request(t, http.MethodPost, "/whip", ""); code != http.StatusBadRequest {
		t.Fatalf("empty WHIP offer: %d", code)
	}
	if r := <-shortCall; r.err != nil || r.res.Code != 200 {
		t.Fatalf("short call: %d %v", r.res.Code, r.err)
	}
	// A rate needs two samples apart: each histogram the dashboard reads
	// has moved between two scrapes.
	prom.waitFor(t, `callscribe_calls_ended_total`+sel+` > 0`, "the short call ended", 30*time.Second)
	for _, moved := range []string{`callscribe_redaction_hold_seconds_count` + sel, `callscribe_result_latency_seconds_count{type="partial"}`,
		`callscribe_result_latency_seconds_count{type="final"}`} {
		prom.waitFor(t, `increase(`+moved+`[1m]) > 0`, "results", 15*time.Second)
	}
	prom.waitFor(t, `callscribe_calls_active`+sel+` > 0`, "the long call live", time.Second)

	scrape := metricsText(t, g.http)
	var names []string
	prom.api(t, "/api/v1/label/__name__/values", url.Values{"match[]": {sel}}, &names)
	targets, variables := dashboardTargets(t)
	// As Grafana puts them: a regular expression in a PromQL string.
	vars := strings.NewReplacer("$job", "callscribe", "$instance", strings.ReplaceAll(regexp.QuoteMeta(g.http), `\`, `\\`),
		"$__rate_interval", "1m")
	for _, tg := range targets {
		what := fmt.Sprintf("panel %q: %s", tg.panel, tg.expr)
		expr := vars.Replace(tg.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable the dashboard does not define", what)
			continue
		}
		if missing := missingMetrics(t, names, scrape, what, expr); len(missing) > 0 {
			t.Errorf("%s: no series of %v", what, missing)
			continue
		}
		res := prom.query(t, expr)
		if len(res) == 0 {
			if slices.ContainsFunc(metricNames(expr), func(n string) bool { return slices.Contains(secondPassSeries, n) }) && !slices.ContainsFunc(secondPassSeries, func(n string) bool { return exported(t, scrape, n) }) {
				continue // logged by missingMetrics
			}
			t.Errorf("%s: no data", what)
			continue
		}
		for _, s := range res {
			if math.IsNaN(s.value()) && strings.Contains(expr, "callscribe_second_pass_seconds_bucket") {
				// The second pass is off here (asr.final_model none): its
				// histogram is exported with nothing in it.
				t.Logf("%s: NaN, no second pass observed", what)
			} else if math.IsNaN(s.value()) {
				t.Errorf("%s: NaN for %v", what, s.Metric)
			}
			for _, l := range grouped(tg.expr, tg.legend) {
				if _, ok := s.Metric[l]; !ok {
					t.Errorf("%s: a series without the label %q: %v", what, l, s.Metric)
				}
			}
		}
	}
	if len(targets) < 40 {
		t.Errorf("%d panel queries", len(targets))
	}
	// The variables: label_values(metric, label), the gateway among them.
	want := map[string]string{"job": "callscribe", "instance": g.http}
	for name, q := range variables {
		m := regexp.MustCompile(`^label_values\((.+), (\w+)\)$`).FindStringSubmatch(vars.Replace(q))
		if m == nil || want[name] == "" {
			t.Errorf("variable %s: %q", name, q)
			continue
		}
		var values []string
		prom.api(t, "/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &values)
		if !slices.Contains(values, want[name]) {
			t.Errorf("variable %s (%s): %v, want %s among them", name, q, values, want[name])
		}
	}

	// The rules: every one evaluated at least once, without error, on
	// metrics that exist.
	type rule struct {
		Name           string    `json:"name"`
		Query          string    `json:"query"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
		Type           string    `json:"type"`
		State          string    `json:"state"`
	}
	var rules []rule
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		var d struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		prom.api(t, "/api/v1/rules", nil, &d)
		rules = rules[:0]
		for _, gr := range d.Groups {
			rules = append(rules, gr.Rules...)
		}
		if !slices.ContainsFunc(rules, func(r rule) bool { return r.LastEvaluation.IsZero() }) || time.Since(start) > 10*time.Second {
			break
		}
	}
	alerts := 0
	for _, r := range rules {
		what := fmt.Sprintf("rule %s: %s", r.Name, r.Query)
		if r.Health != "ok" || r.LastError != "" || r.LastEvaluation.IsZero() {
			t.Errorf("%s: health %q, error %q, evaluated %v", what, r.Health, r.LastError, r.LastEvaluation)
		}
		if missing := missingMetrics(t, names, scrape, what, r.Query); len(missing) > 0 {
			t.Errorf("%s: no series of %v", what, missing)
		}
		if r.Type == "alerting" {
			alerts++
			if r.State != "inactive" {
				t.Logf("%s: %s", what, r.State)
			}
		}
	}
	if alerts < 15 {
		t.Errorf("%d alerting rules loaded", alerts)
	}
}
