package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/gateway"
)

func serveMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration (see configs/callscribe.yaml); default: built-in defaults")
	// The flags and the environment variables are gateway.Settings'; the
	// tokens have no flags (a command line is visible to every user of the
	// host): a Kubernetes Secret or a Compose variable sets them.
	for _, st := range gateway.Settings() {
		if st.Flag != "" {
			fs.String(st.Flag, "", st.Help+" ("+strings.Join(st.Keys, ", ")+")")
		}
	}
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
		set := func(st gateway.Setting, from, v string) error {
			for _, key := range st.Keys {
				if err := cfg.Set(key, v); err != nil {
					return fmt.Errorf("config: %s: %w", from, err)
				}
			}
			return nil
		}
		// The environment over the file, the flags over both.
		for _, st := range gateway.Settings() {
			if v := os.Getenv(st.Env); st.Env != "" && v != "" {
				if err := set(st, st.Env, v); err != nil {
					return cfg, err
				}
			}
		}
		var err error
		fs.Visit(func(f *flag.Flag) {
			for _, st := range gateway.Settings() {
				if st.Flag == f.Name && err == nil {
					err = set(st, "-"+f.Name, f.Value.String())
				}
			}
		})
		if err != nil {
			return cfg, err
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
	log.Info("callscribe: configuration reloaded", "applied", gateway.Reloadable(), "need_restart", restart)
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
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	log.Info("callscribe: serving", "version", version, "sip", svc.SIPAddrs(), "http", svc.HTTPAddr().String(), "redis", cfg.Redis.Addr,
		"model", cfg.ASR.ModelFiles.Dir, "provider", svc.Provider(), "onnxruntime", svc.RuntimePath(), "instance", cfg.InstanceName())
	// Rewriting the models left hundreds of megabytes of garbage: give it
	// back now rather than over the next minutes.
	debug.FreeOSMemory()
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
