package gateway

import (
	"crypto/tls"
	"fmt"

	"github.com/callscribe/callscribe/asr"
)

// Check is what a start needs beyond a valid configuration, without
// starting anything: ONNX Runtime loads (with the provider's build), the
// model's files are there and shaped as a streaming transducer, the VAD
// model is found when asr.endpoint.mode is vad or asr.skip_silence is on,
// and the TLS certificates and keys load. It binds no port and does not
// reach Redis. It returns a line naming what it found.
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
	if a.Endpoint.Mode == asr.EndpointVAD || a.SkipSilence {
		if _, err := asr.FindVADModel(a.VADModel); err != nil {
			return "", fmt.Errorf("asr.vad_model: %w", err)
		}
	}
	for _, kp := range []struct{ field, cert, key string }{
		{"sip.tls_cert_file", cfg.SIP.TLSCertFile, cfg.SIP.TLSKeyFile},
		{"http.tls_cert_file", cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile},
	} {
		if kp.cert == "" && kp.key == "" {
			continue
		}
		if _, err := tls.LoadX509KeyPair(kp.cert, kp.key); err != nil {
			return "", fmt.Errorf("%s: %w", kp.field, err)
		}
	}
	if _, err := cfg.SIP.TLSClient.TLSConfig(); err != nil {
		return "", fmt.Errorf("sip.%w", err)
	}
	return fmt.Sprintf("model %s (%d tokens, %d ms chunks), ONNX Runtime %s, provider %s",
		a.ModelFiles.Dir, len(info.Tokens), info.ChunkShift*10, asr.RuntimePath(), a.Engine.Provider), nil
}
