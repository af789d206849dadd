package asr

// EndpointRule closes an utterance when its trailing silence and length
// reach the given values (seconds). Silence is decoded blank frames.
type EndpointRule struct {
	// MustContainNonSilence: the rule fires only after speech.
	MustContainNonSilence bool `yaml:"must_contain_nonsilence"`
	// MinTrailingSilence is the trailing silence the rule needs (seconds).
	MinTrailingSilence float64 `yaml:"min_trailing_silence"`
	// MinUtteranceLength is the utterance length the rule needs (seconds).
	MinUtteranceLength float64 `yaml:"min_utterance_length"`
}

// EndpointConfig holds sherpa-onnx's three endpoint rules; any one that
// fires ends the utterance.
type EndpointConfig struct {
	// Enabled turns endpointing on; when off an utterance lasts until the
	// stream finishes. Default on.
	Enabled bool `yaml:"enabled"`
	// Rule1: silence alone, default 2.4 s of trailing silence.
	Rule1 EndpointRule `yaml:"rule1"`
	// Rule2: silence after speech, default 1.2 s.
	Rule2 EndpointRule `yaml:"rule2"`
	// Rule3: maximum utterance length, default 20 s.
	Rule3 EndpointRule `yaml:"rule3"`
	// Mode is rules (the three rules, on the decoder's blanks) or vad:
	// Silero VAD (batched across streams) runs on every leg,
	// speech.start/speech.end events go out, and an utterance with words
	// ends once VAD has heard vad_min_silence seconds of silence after
	// speech (rule3 still bounds its length): finals about 0.7 s after the
	// last word instead of 1.6 s.
	Mode string `yaml:"mode"`
	// VADMinSilence is the silence after speech that ends an utterance in
	// mode vad, 0.05 to 5 seconds.
	VADMinSilence float64 `yaml:"vad_min_silence"`
}

// Endpoint modes.
const (
	EndpointRules = "rules"
	EndpointVAD   = "vad"
)

// DefaultVADMinSilence is the silence after speech that ends an utterance
// in VAD mode, seconds.
const DefaultVADMinSilence = 0.3

// DefaultEndpointConfig returns sherpa-onnx's defaults.
func DefaultEndpointConfig() EndpointConfig {
	return EndpointConfig{
		Enabled: true,
		Rule1:   EndpointRule{MustContainNonSilence: false, MinTrailingSilence: 2.4},
		Rule2:   EndpointRule{MustContainNonSilence: true, MinTrailingSilence: 1.2},
		Rule3:   EndpointRule{MinUtteranceLength: 20},
		Mode:    EndpointRules, VADMinSilence: DefaultVADMinSilence,
	}
}

func (r EndpointRule) fires(trailingSilence, utteranceLength float64) bool {
	containsSpeech := utteranceLength > trailingSilence
	return (containsSpeech || !r.MustContainNonSilence) &&
		trailingSilence >= r.MinTrailingSilence &&
		utteranceLength >= r.MinUtteranceLength
}

// IsEndpoint tells whether an utterance of frames feature frames (10 ms),
// the last silenceFrames of which are silence, is over.
func (c EndpointConfig) IsEndpoint(frames, silenceFrames int) bool {
	if !c.Enabled {
		return false
	}
	length := float64(frames) * 0.01
	silence := float64(silenceFrames) * 0.01
	return c.Rule1.fires(silence, length) || c.Rule2.fires(silence, length) || c.Rule3.fires(silence, length)
}
