package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/gateway"
)

// envOverrides are the CALLSCRIBE_* variables serve reads, over the config
// file and under the flags. The tokens have no flags (a command line is
// visible to every user of the host): a Kubernetes Secret or a Compose
// variable sets them.
var envOverrides = []string{"SIP", "HTTP", "REDIS", "MODEL", "RTP_PORTS", "MEDIA_IP", "PROVIDER", "MAX_STREAMS", "MAX_LAG", "LOG_FORMAT", "LOG_LEVEL",
	"WEBRTC_TOKEN", "METRICS_TOKEN"}

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
		{"max-streams", "recognition streams admitted: auto or a number (asr.max_streams)"},
		{"max-lag", "no call is admitted while decoding lags more than this (asr.max_lag)"},
		{"log-format", "log lines as text or json (log.format)"},
		{"log-level", "least severity logged: debug, info, warn, error (log.level)"},
	} {
		set[f.name] = fs.String(f.name, "", f.usage)
	}
	drain := fs.Duration("drain", 0, "on SIGTERM, how long calls may go on before they are ended (drain)")
	check := fs.Bool("check", false, "check the configuration, ONNX Runtime, the model and TLS files, then exit (0: ok); binds nothing, reaches no Redis")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// resolve reads the configuration as a start does: the file (or the
	// defaults), the environment, the flags; SIGHUP reads it again.
	resolve := func() (gateway.Config, error) {
		cfg := gateway.Defaults()
		if *configFile != "" {
			var err error
			if cfg, err = gateway.LoadConfig(*configFile); err != nil {
				return cfg, err
			}
		}
		var bad error // a value that does not parse; Validate names the others
		apply := func(name, v string) {
			switch name {
			case "SIP", "sip":
				cfg.SIP.UDP, cfg.SIP.TCP = v, v
			case "HTTP", "http":
				cfg.HTTP.Addr = v
			case "REDIS", "redis":
				cfg.Redis.Addr = v
			case "MODEL", "model":
				cfg.ASR.ModelFiles.Dir = v
			case "RTP_PORTS", "rtp-ports":
				if err := cfg.SIP.RTPPorts.UnmarshalText([]byte(v)); err != nil && bad == nil {
					bad = fmt.Errorf("sip.rtp_ports: %w", err)
				}
			case "MEDIA_IP", "media-ip":
				cfg.SIP.MediaIP = v
			case "PROVIDER", "provider":
				cfg.ASR.Engine.Provider = v
			case "MAX_STREAMS", "max-streams":
				cfg.ASR.MaxStreams = v
			case "WEBRTC_TOKEN":
				cfg.WebRTC.Token = v
			case "METRICS_TOKEN":
				cfg.HTTP.MetricsToken = v
			case "LOG_FORMAT", "log-format":
				cfg.Log.Format = v
			case "LOG_LEVEL", "log-level":
				cfg.Log.Level = v
			case "MAX_LAG", "max-lag":
				if d, err := time.ParseDuration(v); err == nil {
					cfg.ASR.MaxLag = d
				} else {
					cfg.ASR.MaxLag = -1 // Validate names the field
				}
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
		if bad != nil {
			return cfg, fmt.Errorf("config: %w", bad)
		}
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		cfg.ASR.ModelFiles.Dir = modelDir(cfg.ASR.ModelFiles.Dir)
		return cfg, nil
	}
	cfg, err := resolve()
	if err != nil {
		fmt.Fprintf(stderr, "callscribe serve: %v\n", err)
		return 1
	}
	if *check {
		found, err := gateway.Check(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "callscribe serve: check: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "callscribe serve: configuration ok: %s\n", found)
		return 0
	}
	level := new(slog.LevelVar)
	lv, _ := cfg.Log.Severity() // checked by Validate
	level.Set(lv)
	log, _ := cfg.Log.Logger(stderr, level)
	slog.SetDefault(log)           // sipgo logs to the default
	redis.SetLogger(redisLog{log}) // go-redis's own messages: dial failures, pool trouble
	if err := serve(cfg, log, level, resolve); err != nil {
		fmt.Fprintf(stderr, "callscribe serve: %v\n", err)
		return 1
	}
	return 0
}

// reload reads the configuration again and applies what it can; started
// is the configuration the gateway started with (the log format stays).
func reload(svc *gateway.Service, started gateway.Config, log *slog.Logger, level *slog.LevelVar, resolve func() (gateway.Config, error)) {
	next, restart, err := svc.Reload(resolve)
	if err != nil {
		log.Error("callscribe: configuration not reloaded", "err", err)
		return
	}
	if next.Log.Format != started.Log.Format {
		restart = append(restart, "log.format")
	}
	log.Info("callscribe: configuration reloaded", "applied", append(gateway.Reloadable(), "log.level"), "need_restart", restart)
	lv, _ := next.Log.Severity() // checked by resolve
	level.Set(lv)
}

// redisLog writes go-redis's messages to the gateway's log, in its format.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if !strings.HasPrefix(msg, "redis: ") {
		msg = "redis: " + msg
	}
	r.log.WarnContext(ctx, msg)
}

// serve runs the gateway until a signal: SIGTERM drains (no new calls, the
// ones in progress go on until done or cfg.Drain), SIGINT or a second
// signal stops at once; either way the calls left are ended with BYE and
// their last events delivered. SIGHUP reads the configuration again
// (resolve) and applies what a running gateway can change (Service.Reload,
// and the log level); a configuration that does not validate changes
// nothing.
func serve(cfg gateway.Config, log *slog.Logger, level *slog.LevelVar, resolve func() (gateway.Config, error)) error {
	svc, err := gateway.NewService(cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	log.Info("callscribe: serving", "version", version, "sip", svc.SIPAddrs(), "http", svc.HTTPAddr().String(), "redis", cfg.Redis.Addr,
		"model", cfg.ASR.ModelFiles.Dir, "provider", svc.Provider(), "onnxruntime", svc.RuntimePath(), "instance", cfg.InstanceName())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	for stop := false; !stop; {
		select {
		case err := <-svc.Err():
			return err
		case <-hups:
			reload(svc, cfg, log, level, resolve)
		case sig := <-sigs:
			stop = true
			if sig == syscall.SIGTERM {
				log.Info("callscribe: draining", "deadline", cfg.Drain)
				ctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
				go func() { // a second signal stops now
					select {
					case <-sigs:
						cancel()
					case <-ctx.Done():
					}
				}()
				svc.Drain(ctx)
				cancel()
			}
		}
	}
	svc.Close()
	log.Info("callscribe: stopped")
	return nil
}
