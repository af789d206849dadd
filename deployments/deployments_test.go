// Package deployments holds the container image, Compose file, Kubernetes
// manifests and SIP load-balancer configuration; its tests keep them in
// step with the gateway's configuration and with each other. (The
// balancer's behaviour is tested live in cmd/callscribe.)
package deployments

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
	"github.com/callscribe/callscribe/gateway"
)

func containerConfig(t *testing.T) gateway.Config {
	t.Helper()
	cfg, err := gateway.LoadConfig("callscribe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func port(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[i+1:]
}

// The container configuration is valid once the environment gives the
// media address, and says so when it does not.
func TestContainerConfig(t *testing.T) {
	cfg := containerConfig(t)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sip.media_ip") {
		t.Errorf("without CALLSCRIBE_MEDIA_IP: %v", err)
	}
	cfg.SIP.MediaIP = "10.1.2.3"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{cfg.SIP.UDP, cfg.SIP.TCP, cfg.HTTP.Addr} {
		if !strings.HasPrefix(a, "0.0.0.0:") {
			t.Errorf("%s: a container listens on every address", a)
		}
	}
	// The model directory is where the image's get-model puts its default.
	b, err := os.ReadFile("../scripts/get-model")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`name=\$\{1:-([^}]+)\}`).FindSubmatch(b)
	if m == nil || cfg.ASR.ModelFiles.Dir != "/models/"+string(m[1]) {
		t.Errorf("asr.model_dir %q, get-model default %q", cfg.ASR.ModelFiles.Dir, m)
	}
	if cfg.Drain <= 0 || cfg.Redis.SpoolFile == "" || !strings.HasPrefix(cfg.Redis.SpoolFile, "/var/lib/callscribe/") {
		t.Errorf("drain %v, spool file %q", cfg.Drain, cfg.Redis.SpoolFile)
	}
}

// dockerfile is the Dockerfile's instructions, continuation lines joined.
func dockerfile(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		out = append(out, strings.Fields(cur+line))
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	cfg := containerConfig(t)
	var copied = map[string]string{} // destination -> source, from the build context
	var exposed []string
	var entry string
	for _, ins := range dockerfile(t) {
		switch strings.ToUpper(ins[0]) {
		case "COPY":
			args := ins[1:]
			if strings.HasPrefix(args[0], "--from=") {
				copied[args[len(args)-1]] = args[0]
				continue
			}
			for _, src := range args[:len(args)-1] {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
				copied[args[len(args)-1]] = src
			}
		case "EXPOSE":
			exposed = append(exposed, ins[1:]...)
		case "ENTRYPOINT":
			entry = strings.Join(ins[1:], " ")
		}
	}
	if copied["/etc/callscribe/callscribe.yaml"] != "deployments/callscribe.yaml" || !strings.Contains(entry, `"-config", "/etc/callscribe/callscribe.yaml"`) {
		t.Errorf("entrypoint %s does not read the container config (copied: %v)", entry, copied)
	}
	if !strings.HasPrefix(copied[cfg.ASR.ORTLib], "--from=") {
		t.Errorf("asr.ort_lib %s is not put in the image", cfg.ASR.ORTLib)
	}
	want := []string{port(t, cfg.SIP.UDP) + "/udp", port(t, cfg.SIP.TCP) + "/tcp", port(t, cfg.HTTP.Addr) + "/tcp",
		cfg.SIP.RTPPorts.String() + "/udp", cfg.WebRTC.ICEPorts.String() + "/udp"}
	for _, w := range want {
		if !slices.Contains(exposed, w) {
			t.Errorf("EXPOSE lacks %s: %v", w, exposed)
		}
	}
	if ignore, err := os.ReadFile("../.dockerignore"); err != nil || !strings.Contains(string(ignore), ".cache") {
		t.Errorf(".dockerignore should keep .cache (models, libraries) out of the build context: %v", err)
	}
}

// imageFiles runs the RUN of the Dockerfile's stage `from` (scripts/setup
// and the gathering of what the last stage copies) in a temporary directory
// standing for its WORKDIR, on this checkout's .cache: scripts/setup finds
// every file there, checks their sums and fetches nothing. It returns where
// each destination of the last stage's COPY --from=<from> lies here.
func imageFiles(t *testing.T, from string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	var stage, workdir string
	var run []string
	copies := map[string]string{} // destination in the image -> source in stage from
	for _, ins := range dockerfile(t) {
		switch strings.ToUpper(ins[0]) {
		case "FROM":
			stage = ""
			if len(ins) == 4 && strings.EqualFold(ins[2], "AS") {
				stage = ins[3]
			}
		case "WORKDIR":
			if stage == from {
				workdir = ins[1]
			}
		case "RUN":
			if stage == from {
				run = append(run, strings.Join(ins[1:], " "))
			}
		case "COPY":
			if ins[1] == "--from="+from {
				copies[ins[len(ins)-1]] = ins[2]
			}
		}
	}
	if workdir == "" || len(run) == 0 || len(copies) == 0 {
		t.Fatalf("stage %s: WORKDIR %q, RUN %q, copied from %v", from, workdir, run, copies)
	}
	src := filepath.Join(dir, workdir)
	if err := os.MkdirAll(filepath.Join(src, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	setup, err := os.ReadFile("../scripts/setup")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "scripts", "setup"), setup, 0o755); err != nil {
		t.Fatal(err)
	}
	// The checkout's versioned directories (onnxruntime-1.30.0, ...);
	// scripts/setup makes the links to them in this copy's cache only.
	cache, err := filepath.Abs("../.cache")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatalf("%v (run scripts/setup)", err)
	}
	if err := os.Mkdir(filepath.Join(src, ".cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := os.Symlink(filepath.Join(cache, e.Name()), filepath.Join(src, ".cache", e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALLSCRIBE_CACHE=") {
			env = append(env, kv)
		}
	}
	for _, r := range run {
		cmd := exec.Command("sh", "-c", r)
		cmd.Dir, cmd.Env = src, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", r, err, out)
		}
	}
	local := map[string]string{}
	for dst, from := range copies {
		if !filepath.IsAbs(from) {
			from = filepath.Join(workdir, from)
		}
		local[dst] = filepath.Join(dir, from)
	}
	return local
}

// inImage returns where the image's path p lies in files (imageFiles).
func inImage(t *testing.T, files map[string]string, p string) string {
	t.Helper()
	for dst, local := range files {
		if rest, ok := strings.CutPrefix(p, dst); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			return local + rest
		}
	}
	t.Errorf("%s is not copied into the image (copied: %v)", p, files)
	return filepath.Join(os.DevNull, "absent")
}

// regular checks that path and everything under it are plain files and
// directories: a link would be copied as a link, into nothing.
func regular(t *testing.T, path string) {
	t.Helper()
	err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a plain file (%v)", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// The image carries what the container configuration names: ONNX
// Runtime, the VAD that asr.skip_silence runs and the second pass's
// Moonshine tiny and base, each model with its licence; the paths come
// from the Dockerfile's own build stage, run here.
func TestImageCarriesModels(t *testing.T) {
	cfg := containerConfig(t)
	files := imageFiles(t, "ort")

	lib := inImage(t, files, cfg.ASR.ORTLib)
	regular(t, lib)
	if st, err := os.Stat(lib); err != nil || st.Size() < 1<<20 {
		t.Errorf("asr.ort_lib %s: %v", cfg.ASR.ORTLib, err)
	}

	vad := inImage(t, files, cfg.ASR.VADModel)
	if _, err := asr.FindVADModel(vad); err != nil {
		t.Errorf("asr.vad_model %s: %v", cfg.ASR.VADModel, err)
	}
	regular(t, filepath.Dir(vad))
	if _, err := os.Stat(filepath.Join(filepath.Dir(vad), "LICENSE.txt")); err != nil {
		t.Errorf("the VAD's licence: %v", err)
	}

	// The image's copy of the model the defaults run, by its path: the
	// executable is in /usr/local/bin, so FindModel would not find it by
	// name.
	if d := gateway.Defaults().ASR.FinalModel; d != "none" && cfg.ASR.FinalModel != "none" &&
		"moonshine-"+filepath.Base(cfg.ASR.FinalModel) != d {
		t.Errorf("asr.final_model %s, defaults %s", cfg.ASR.FinalModel, d)
	}
	if !filepath.IsAbs(cfg.ASR.FinalModel) {
		t.Fatalf("asr.final_model %q: want the image's directory", cfg.ASR.FinalModel)
	}
	final := inImage(t, files, cfg.ASR.FinalModel)
	if dir, err := moonshine.FindModel(final); err != nil || dir != final {
		t.Errorf("asr.final_model %s: %q %v", cfg.ASR.FinalModel, dir, err)
	}
	for _, size := range []string{"tiny", "base"} {
		dir := filepath.Join(filepath.Dir(final), size)
		regular(t, dir)
		f, err := moonshine.Files{Dir: dir}.Resolve()
		if err != nil {
			t.Errorf("moonshine %s: %v", size, err)
			continue
		}
		if v, err := moonshine.ReadVocab(f.Tokens); err != nil || v.Len() != 32000 {
			t.Errorf("moonshine %s tokens: %v", size, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "LICENSE.txt")); err != nil || !strings.Contains(string(b), "MIT License") {
			t.Errorf("moonshine %s licence: %v", size, err)
		}
	}
}

func readYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, os.ErrClosed) || err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// get walks a YAML tree: keys for maps, "kind=Name" picks from a list of
// documents... kept simple: keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// Every CALLSCRIBE_* variable the deployment files set is one the gateway
// (the table of gateway.Settings) or the model fetcher (scripts/get-model)
// reads, and containers log JSON.
func TestEnvironmentNames(t *testing.T) {
	known := map[string]bool{}
	for _, s := range gateway.Settings() {
		if s.Env != "" {
			known[s.Env] = true
		}
	}
	getModel, err := os.ReadFile("../scripts/get-model")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range regexp.MustCompile(`\$\{(CALLSCRIBE_[A-Z_]+)`).FindAllSubmatch(getModel, -1) {
		known[string(q[1])] = true
	}
	for _, f := range []string{"compose.yaml", "kubernetes/gateway.yaml", "callscribe.yaml", "README.md", "Dockerfile", "systemd/callscribe.service"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`CALLSCRIBE_[A-Z_]+`).FindAll(b, -1) {
			if !known[string(name)] {
				t.Errorf("%s: %s is not read by callscribe serve", f, name)
			}
		}
	}
	if f := containerConfig(t).Log.Format; f != "json" {
		t.Errorf("container log.format %q, want json", f)
	}
}

// The systemd unit checks the configuration before it starts, reloads
// with SIGHUP, stops with SIGTERM and waits longer than the default drain
// and the delivery of the last events.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/callscribe.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			unit[k] = v
		}
	}
	const start = "/usr/local/bin/callscribe serve -config /etc/callscribe/callscribe.yaml"
	if unit["ExecStart"] != start || unit["ExecStartPre"] != strings.Replace(start, "serve", "serve -check", 1) {
		t.Errorf("ExecStart %q, ExecStartPre %q", unit["ExecStart"], unit["ExecStartPre"])
	}
	if !strings.Contains(unit["ExecReload"], "-HUP $MAINPID") || unit["KillSignal"] != "SIGTERM" {
		t.Errorf("ExecReload %q, KillSignal %q", unit["ExecReload"], unit["KillSignal"])
	}
	defaults, err := gateway.LoadConfig("../configs/callscribe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(unit["TimeoutStopSec"] + "s")
	if err != nil || stop <= defaults.Drain+10*time.Second {
		t.Errorf("TimeoutStopSec %q must exceed drain %v and 10 s of delivery", unit["TimeoutStopSec"], defaults.Drain)
	}

	// The install steps put the models where the edits they ask for (the
	// image's paths) name them: run here, into a directory for /usr/local/share.
	const share = "/usr/local/share/callscribe"
	tmp := t.TempDir()
	steps := 0
	for _, line := range strings.Split(string(b), "\n") {
		step, ok := strings.CutPrefix(line, "#   ")
		if !ok || !strings.Contains(step, share) || !strings.HasPrefix(step, "cp ") && !strings.HasPrefix(step, "install ") {
			continue
		}
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(step, share, tmp))
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, out)
		}
		steps++
	}
	cfg := containerConfig(t)
	for _, p := range []string{cfg.ASR.ORTLib, cfg.ASR.FinalModel, cfg.ASR.VADModel} {
		if !strings.Contains(string(b), p) {
			t.Errorf("the install steps do not name %s", p)
		}
	}
	if _, err := (moonshine.Files{Dir: strings.Replace(cfg.ASR.FinalModel, share, tmp, 1)}).Resolve(); err != nil || steps == 0 {
		t.Errorf("after %d install steps, asr.final_model: %v", steps, err)
	}
	if _, err := asr.FindVADModel(strings.Replace(cfg.ASR.VADModel, share, tmp, 1)); err != nil {
		t.Errorf("after the install steps, asr.vad_model: %v", err)
	}
}

func TestCompose(t *testing.T) {
	docs := readYAML(t, "compose.yaml")
	svc := get(docs[0], "services").(map[string]any)
	gw := svc["callscribe"]
	if get(gw, "network_mode") != "host" {
		t.Error("the gateway needs the host's network for SIP and RTP")
	}
	if env := fmt.Sprint(get(gw, "environment")); !strings.Contains(env, "CALLSCRIBE_MEDIA_IP") || !strings.Contains(env, "CALLSCRIBE_REDIS") {
		t.Errorf("environment %s", env)
	}
	grace, err := time.ParseDuration(fmt.Sprint(get(gw, "stop_grace_period")))
	if err != nil || grace <= containerConfig(t).Drain {
		t.Errorf("stop_grace_period %v must exceed drain %v", grace, containerConfig(t).Drain)
	}
	if vols := fmt.Sprint(get(gw, "volumes")); !strings.Contains(vols, "models:/models") || !strings.Contains(vols, ":/var/lib/callscribe") {
		t.Errorf("volumes %s", vols)
	}
	if get(svc["model"], "build", "dockerfile") != "deployments/Dockerfile" || get(svc["model"], "entrypoint", 0) != "callscribe-get-model" {
		t.Errorf("model service %v", svc["model"])
	}
}

func TestKubernetes(t *testing.T) {
	cfg := containerConfig(t)
	kust := readYAML(t, "kubernetes/kustomization.yaml")[0]
	for _, r := range get(kust, "resources").([]any) {
		if _, err := os.Stat(filepath.Join("kubernetes", r.(string))); err != nil {
			t.Errorf("kustomization: %v", err)
		}
	}
	byKind := map[string]map[string]any{}
	for _, d := range readYAML(t, "kubernetes/gateway.yaml") {
		byKind[d["kind"].(string)+"/"+get(d, "metadata", "name").(string)] = d
	}
	dep := byKind["Deployment/callscribe"]
	spec := get(dep, "spec", "template", "spec")
	if get(spec, "hostNetwork") != true {
		t.Error("hostNetwork: the SDP answers announce the node's address")
	}
	if g, _ := get(spec, "terminationGracePeriodSeconds").(int); time.Duration(g)*time.Second <= cfg.Drain {
		t.Errorf("terminationGracePeriodSeconds %d must exceed drain %v", g, cfg.Drain)
	}
	c := get(spec, "containers", 0)
	ports := map[string]string{}
	for _, p := range get(c, "ports").([]any) {
		ports[get(p, "name").(string)] = fmt.Sprint(get(p, "containerPort"))
	}
	if ports["sip-udp"] != port(t, cfg.SIP.UDP) || ports["sip-tcp"] != port(t, cfg.SIP.TCP) || ports["http"] != port(t, cfg.HTTP.Addr) {
		t.Errorf("container ports %v, config %s %s %s", ports, cfg.SIP.UDP, cfg.SIP.TCP, cfg.HTTP.Addr)
	}
	if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Error("probes: readiness /readyz, liveness /healthz")
	}
	env := fmt.Sprint(get(c, "env"))
	if !strings.Contains(env, "CALLSCRIBE_MEDIA_IP") || !strings.Contains(env, "status.podIP") {
		t.Errorf("env %s: the media address comes from the pod (the node, with hostNetwork)", env)
	}
	for _, e := range get(c, "env").([]any) {
		if name := get(e, "name").(string); strings.HasSuffix(name, "_TOKEN") {
			if ref := get(e, "valueFrom", "secretKeyRef"); ref == nil || get(ref, "optional") != true {
				t.Errorf("%s: from an optional Secret, got %v", name, e)
			}
		}
	}
	mounts := fmt.Sprint(get(c, "volumeMounts"))
	if !strings.Contains(mounts, "/models") || !strings.Contains(mounts, filepath.Dir(cfg.Redis.SpoolFile)) {
		t.Errorf("mounts %s", mounts)
	}
	if get(spec, "initContainers", 0, "command", 0) != "callscribe-get-model" {
		t.Error("the init container fetches the model")
	}
	if get(byKind["Service/callscribe"], "spec", "sessionAffinity") != "ClientIP" {
		t.Error("WHIP sessions need a sticky Service")
	}
}

func TestKamailioList(t *testing.T) {
	cfg := containerConfig(t)
	b, err := os.ReadFile("kamailio/dispatcher.list")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n++
		if f[0] != "1" || !strings.HasSuffix(f[1], ":"+port(t, cfg.SIP.UDP)) {
			t.Errorf("dispatcher entry %q: set 1, the gateways' SIP port", line)
		}
	}
	if n < 2 {
		t.Errorf("%d gateways listed", n)
	}
	cfgText, _ := os.ReadFile("kamailio/kamailio.cfg")
	for _, s := range []string{`ds_select_dst("1"`, `"ds_ping_method", "OPTIONS"`, `t_check_status("503")`, "record_route()"} {
		if !strings.Contains(string(cfgText), s) {
			t.Errorf("kamailio.cfg lacks %s", s)
		}
	}
}
