package deployments

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// What these tests read: the alert rules and their promtool tests
// (promtool itself runs them in `make test`), the dashboard, and how
// Compose and Kubernetes wire Prometheus and Grafana to the gateway. The
// queries themselves run against a real Prometheus and gateway in
// cmd/callscribe (TestPrometheusDashboardAndRules).

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	decode(t, "prometheus/callscribe-rules.yml", &f)
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// decode reads a YAML file into v.
func decode(t *testing.T, path string, v any) {
	t.Helper()
	docs := readYAML(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents", path, len(docs))
	}
	b, err := json.Marshal(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// anchors are the GitHub anchors of a Markdown file's headings.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// Every alert has a severity, a summary, a description and a runbook in
// docs/operations.md, and its promtool tests make it fire and keep it
// quiet.
func TestAlertRules(t *testing.T) {
	rules := alertRules(t)
	ops := anchors(t, "../docs/operations.md")
	const runbooks = "https://github.com/callscribe/callscribe/blob/main/docs/operations.md#"
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, path := range []string{"prometheus/callscribe-rules.test.yml", "prometheus/callscribe-rules-calendar.test.yml"} {
		var f struct {
			RuleFiles []string `json:"rule_files"`
			Tests     []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		decode(t, path, &f)
		if !slices.Equal(f.RuleFiles, []string{"callscribe-rules.yml"}) {
			t.Errorf("%s tests %v", path, f.RuleFiles)
		}
		for _, tc := range f.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	alerts := 0
	for _, r := range rules {
		if r.Record != "" {
			continue
		}
		alerts++
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: summary %q, description %q", r.Alert, r.Annotations["summary"], r.Annotations["description"])
		}
		if anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbooks); !ok || !ops[anchor] {
			t.Errorf("%s: runbook_url %q is not a heading of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: promtool tests that fire it: %v, that keep it quiet: %v", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
	if alerts < 15 {
		t.Errorf("%d alerts", alerts)
	}
}

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Descr      string `json:"description"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// The dashboard imports anywhere: no database id, its data source a
// variable that every panel and query uses, every query filtered by the
// job and gateway variables; panels do not overlap; and it shows what
// issue 26 asks operators to see.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/callscribe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID         *int   `json:"id"`
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
			} `json:"list"`
		} `json:"templating"`
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != nil || d.UID == "" || d.Title == "" {
		t.Errorf("id %v, uid %q, title %q", d.ID, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type + " " + fmt.Sprint(v.Query)
	}
	if vars["datasource"] != "datasource prometheus" || !strings.HasPrefix(vars["job"], "query ") || !strings.HasPrefix(vars["instance"], "query ") {
		t.Errorf("variables %v", vars)
	}
	ids := map[int]bool{}
	var exprs []string
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the dashboard", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || p.Descr == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q, description %q, %d queries", p.Title, p.Datasource.UID, p.Descr, len(p.Targets))
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" || !strings.Contains(tg.Expr, `job=~"$job",instance=~"$instance"`) {
				t.Errorf("panel %q: data source %q, query %s", p.Title, tg.Datasource.UID, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"callscribe_calls_started_total", "callscribe_calls_rejected_total", "callscribe_asr_streams_active",
		"callscribe_asr_capacity_streams", "callscribe_asr_talking_ratio", "callscribe_asr_max_streams", "callscribe_asr_lag_seconds", "callscribe_asr_step_seconds_total",
		`callscribe_result_latency_seconds_bucket{job=~"$job",instance=~"$instance",type="partial"}`,
		`callscribe_result_latency_seconds_bucket{job=~"$job",instance=~"$instance",type="final"}`,
		"callscribe_second_pass_fallbacks_total", "callscribe_second_pass_seconds_bucket",
		"callscribe_redis_published_total", "callscribe_redis_errors_total", "callscribe_redis_spool_bytes",
		"callscribe_rtp_lost_total", "callscribe_rtp_ignored_total", "callscribe_srtp_unauthenticated_total",
		`callscribe_calls_rejected_total{job=~"$job",instance=~"$instance",source="sip"}`,
		"process_resident_memory_bytes", "go_goroutines",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel reads %s", want)
		}
	}
}

// Compose runs Prometheus on the shipped configuration and rules, scraping
// the gateway's HTTP port, and Grafana with that Prometheus as its data
// source and the dashboard where its provider looks.
func TestComposeMonitoring(t *testing.T) {
	httpPort := port(t, containerConfig(t).HTTP.Addr)
	svc := get(readYAML(t, "compose.yaml")[0], "services").(map[string]any)
	prom, graf := svc["prometheus"], svc["grafana"]
	if get(prom, "network_mode") != "host" || get(graf, "network_mode") != "host" {
		t.Error("Prometheus and Grafana on the host's network, beside the gateway")
	}
	vols := fmt.Sprint(get(prom, "volumes"))
	if !strings.Contains(vols, "./prometheus:/etc/prometheus") || !strings.Contains(fmt.Sprint(get(prom, "command")), "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: volumes %s, command %v", vols, get(prom, "command"))
	}
	listen := regexp.MustCompile(`--web.listen-address=([^\s\]]+)`).FindStringSubmatch(fmt.Sprint(get(prom, "command")))
	if listen == nil || fmt.Sprint(get(graf, "environment", "PROMETHEUS_URL")) != "http://"+listen[1] {
		t.Errorf("grafana's PROMETHEUS_URL %v, prometheus listens on %v", get(graf, "environment", "PROMETHEUS_URL"), listen)
	}
	checkScrapeJob(t, "prometheus/prometheus.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	decode(t, "prometheus/prometheus.yml", &cfg)
	if sc := cfg.ScrapeConfigs; len(sc) != 1 || len(sc[0].StaticConfigs) != 1 || !slices.Equal(sc[0].StaticConfigs[0].Targets, []string{"127.0.0.1:" + httpPort}) {
		t.Errorf("prometheus.yml targets %+v, the gateway is on 127.0.0.1:%s", cfg.ScrapeConfigs, httpPort)
	}
	provider := dashboardProvider(t)
	mounts := fmt.Sprint(get(graf, "volumes"))
	if !strings.Contains(mounts, "./grafana/callscribe.json:"+provider+"/callscribe.json") || !strings.Contains(mounts, "./grafana/provisioning:/etc/grafana/provisioning") {
		t.Errorf("grafana volumes %s, the provider reads %s", mounts, provider)
	}
}

// checkScrapeJob: one job, named as the rules' up{job="callscribe"}
// expects, reading the rules beside it.
func checkScrapeJob(t *testing.T, path string) {
	t.Helper()
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `json:"job_name"`
		} `json:"scrape_configs"`
	}
	decode(t, path, &cfg)
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "callscribe" || !slices.Equal(cfg.RuleFiles, []string{"callscribe-rules.yml"}) {
		t.Errorf("%s: jobs %+v, rules %v", path, cfg.ScrapeConfigs, cfg.RuleFiles)
	}
	for _, r := range alertRules(t) {
		if strings.Contains(r.Expr, "job=") && !strings.Contains(r.Expr, `job="callscribe"`) {
			t.Errorf("%s reads job %s", r.Alert, r.Expr)
		}
	}
}

// dashboardProvider is the folder Grafana's provisioning reads dashboards from.
func dashboardProvider(t *testing.T) string {
	t.Helper()
	var p struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	decode(t, "grafana/provisioning/dashboards/callscribe.yml", &p)
	if len(p.Providers) != 1 || p.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard providers %+v", p.Providers)
	}
	return p.Providers[0].Options.Path
}

// Kubernetes: the kustomization brings Prometheus and Grafana; Prometheus
// keeps the gateway's pods by their label and annotation, on the port
// they annotate; Grafana reads the prometheus Service and finds the
// dashboard where its provider looks.
func TestKubernetesMonitoring(t *testing.T) {
	kust := fmt.Sprint(get(readYAML(t, "kubernetes/kustomization.yaml")[0], "resources"))
	if !strings.Contains(kust, "../prometheus") || !strings.Contains(kust, "../grafana") {
		t.Errorf("kubernetes/kustomization.yaml resources %s", kust)
	}
	byKind := func(path string) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, d := range readYAML(t, path) {
			m[d["kind"].(string)+"/"+get(d, "metadata", "name").(string)] = d
		}
		return m
	}
	for _, dir := range []string{"prometheus", "grafana"} {
		k := readYAML(t, dir+"/kustomization.yaml")[0]
		for _, g := range get(k, "configMapGenerator").([]any) {
			for _, f := range get(g, "files").([]any) {
				src := f.(string)
				if _, after, ok := strings.Cut(src, "="); ok {
					src = after
				}
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("%s/kustomization.yaml: %v", dir, err)
				}
			}
		}
	}
	gw := byKind("kubernetes/gateway.yaml")["Deployment/callscribe"]
	tmpl := get(gw, "spec", "template", "metadata")
	ann := get(tmpl, "annotations").(map[string]any)
	if get(tmpl, "labels", "app") != "callscribe" || ann["prometheus.io/scrape"] != "true" ||
		ann["prometheus.io/port"] != port(t, containerConfig(t).HTTP.Addr) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("gateway pods: labels %v, annotations %v", get(tmpl, "labels"), ann)
	}
	checkScrapeJob(t, "prometheus/prometheus-kubernetes.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			Relabel []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	decode(t, "prometheus/prometheus-kubernetes.yml", &cfg)
	keep := cfg.ScrapeConfigs[0].Relabel[0]
	if keep.Action != "keep" || keep.Regex != "callscribe;true" ||
		!slices.Equal(keep.SourceLabels, []string{"__meta_kubernetes_pod_label_app", "__meta_kubernetes_pod_annotation_prometheus_io_scrape"}) {
		t.Errorf("the first relabelling keeps %+v", keep)
	}
	prom := byKind("prometheus/kubernetes.yaml")
	svcPort := fmt.Sprint(get(prom["Service/prometheus"], "spec", "ports", 0, "port"))
	graf := byKind("grafana/kubernetes.yaml")["Deployment/grafana"]
	c := get(graf, "spec", "template", "spec", "containers", 0)
	if env := fmt.Sprint(get(c, "env")); !strings.Contains(env, "PROMETHEUS_URL value:http://prometheus:"+svcPort) {
		t.Errorf("grafana env %s, the prometheus Service's port %s", env, svcPort)
	}
	if mounts := fmt.Sprint(get(c, "volumeMounts")); !strings.Contains(mounts, "mountPath:"+dashboardProvider(t)+" ") {
		t.Errorf("grafana mounts %s, the provider reads %s", mounts, dashboardProvider(t))
	}
}
