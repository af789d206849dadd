package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/asr/moonshine"
)

// Check is what a start needs beyond a valid configuration, without
// starting anything: ONNX Runtime loads (with the provider's build), the
// model's files are there and shaped as a streaming transducer, and
// checkFiles passes (the VAD model, the second pass's model, the TLS
// certificates and keys in use). It binds no port and does not reach
// Redis. It returns a line naming what it found.
func Check(cfg Config) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	a := cfg.ASR
	if err := asr.InitRuntime(a.ORTLib, a.Engine.Provider); err != nil {
		return "", err
	}
	info, err := asr.LoadModelInfo(a.ModelFiles)
	if err != nil {
		return "", err
	}
	if err := checkFiles(cfg); err != nil {
		return "", err
	}
	return fmt.Sprintf("model %s (%d tokens, %d ms chunks), ONNX Runtime %s, provider %s",
		a.ModelFiles.Dir, len(info.Tokens), info.ChunkShift*10, asr.RuntimePath(), a.Engine.Provider), nil
}

// checkFiles checks the files a start reads besides the first pass's
// model: the VAD model when it is used, the second pass's model, the TLS
// certificates and keys, and the SIP client's TLS settings.
func checkFiles(cfg Config) error {
	a := cfg.ASR
	if a.Endpoint.Mode == asr.EndpointVAD || a.SkipSilence {
		if _, err := asr.FindVADModel(a.VADModel); err != nil {
			return fmt.Errorf("asr.vad_model: %w", err)
		}
	}
	if a.FinalModel != "none" {
		dir, err := moonshine.FindModel(a.FinalModel)
		if err == nil {
			_, err = moonshine.Files{Dir: dir}.Resolve()
		}
		if err != nil {
			return fmt.Errorf("asr.final_model: %w", err)
		}
	}
	for _, kp := range []struct {
		field, cert, key string
		used             bool
	}{
		{"sip.tls_cert_file", cfg.SIP.TLSCertFile, cfg.SIP.TLSKeyFile, cfg.SIP.TLS != ""},
		{"http.tls_cert_file", cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile, true},
	} {
		if !kp.used || kp.cert == "" && kp.key == "" {
			continue
		}
		if _, err := tls.LoadX509KeyPair(kp.cert, kp.key); err != nil {
			return fmt.Errorf("%s: %w", kp.field, err)
		}
	}
	if _, err := cfg.SIP.TLSClient.TLSConfig(); err != nil {
		return fmt.Errorf("sip.%w", err)
	}
	return nil
}

// checkPorts binds each listen address that names its port and lets it go
// at once, so that a port in use fails a start before the models load
// (seconds on the CPU, more on a GPU) rather than after. Another process
// may take a port in between: the real bind then says so, later.
func checkPorts(cfg Config) error {
	type listen struct{ key, network, addr string }
	ls := []listen{{"sip.udp", "udp", cfg.SIP.UDP}, {"sip.tcp", "tcp", cfg.SIP.TCP},
		{"sip.tls", "tcp", cfg.SIP.TLS}, {"http.addr", "tcp", cfg.HTTP.Addr}}
	if cfg.AudioSocket.Enabled {
		ls = append(ls, listen{"audiosocket.listen", "tcp", cfg.AudioSocket.Listen})
	}
	for _, l := range ls {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "0" {
			continue // none, or any free port
		}
		var c io.Closer
		var err error
		if l.network == "udp" {
			c, err = net.ListenPacket(l.network, l.addr)
		} else {
			c, err = net.Listen(l.network, l.addr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", l.key, err) // "listen udp ADDR: bind: ..."
		}
		c.Close()
	}
	return nil
}
