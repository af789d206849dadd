package transcript

import (
	"encoding/json"
	"hash/fnv"
	"strconv"

	"github.com/callscribe/callscribe/word"
)

// Event types (docs/wire-format.md).
const (
	CallStart   = "call.start"
	Partial     = "partial"
	Final       = "final"
	DTMF        = "dtmf"
	Keyword     = "keyword"
	Pause       = "pause"
	Resume      = "resume"
	SpeechStart = "speech.start"
	SpeechEnd   = "speech.end"
	CallEnd     = "call.end"
)

// SchemaVersion is the "v" field of every entry.
const SchemaVersion = "1"

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "stt"

// Keys is the Redis key scheme: one stream per call, a sharded firehose of
// every call's events, and a hash of each instance's open calls. The zero
// value uses DefaultPrefix and one shard.
type Keys struct {
	Prefix string
	Shards int
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// Call is the stream of one call's events, <prefix>:call:{<call_id>} (the
// braces keep a call's keys on one Redis Cluster slot).
func (k Keys) Call(callID string) string { return k.prefix() + ":call:{" + callID + "}" }

// Shard is the firehose shard a call's events go to.
func (k Keys) Shard(callID string) int {
	h := fnv.New32a()
	h.Write([]byte(callID))
	return int(h.Sum32() % uint32(max(k.Shards, 1)))
}

// Firehose is the stream of shard i, <prefix>:events:<i>.
func (k Keys) Firehose(i int) string { return k.prefix() + ":events:" + strconv.Itoa(i) }

// FirehoseOf is the firehose shard stream callID's events go to.
func (k Keys) FirehoseOf(callID string) string { return k.Firehose(k.Shard(callID)) }

// Firehoses lists every shard's stream.
func (k Keys) Firehoses() []string {
	out := make([]string, max(k.Shards, 1))
	for i := range out {
		out[i] = k.Firehose(i)
	}
	return out
}

// Instance is the hash of the calls an instance has open (call id to the
// call.start time), <prefix>:instance:{<instance>}:calls: a restarted
// instance ends what its previous run left open.
func (k Keys) Instance(instance string) string {
	return k.prefix() + ":instance:{" + instance + "}:calls"
}

// Mix is the hash of the mix of speech and silence a fleet's gateways
// measured lately on their calls, <prefix>:mix (see Publisher.ShareMix).
func (k Keys) Mix() string { return k.prefix() + ":mix" }

// Seen is a consumer group's record of a call's delivered events, for
// dedupe across readers and restarts.
func (k Keys) Seen(group, callID string) string {
	return k.prefix() + ":seen:" + group + ":{" + callID + "}"
}

// Utterance is the payload of partial and final events.
type Utterance struct {
	Leg     string
	Utt     int
	Text    string
	StartMs int64
	EndMs   int64
	// Finals only.
	Words []word.Word // "words": a JSON list of {word, start_ms, end_ms, conf}
	Conf  float32
	// Display is the text formatted for people (numbers, money, times,
	// sentence case), DisplayWords its tokens with the times of the words
	// they stand for ("display_words": a JSON list of {word, start_ms,
	// end_ms}); finals only. With DisplayWords nil, a final has neither.
	Display      string
	DisplayWords []word.Token
	GapMs        int64 // audio of the utterance dropped undecoded (0: none)
	// Redacted lists the kinds of content replaced by markers ("pci,ssn").
	Redacted string
	// SecondPass, on finals of a gateway with a second pass: the model
	// whose words these are ("moonshine-tiny"), or why they are the first
	// pass's ("fallback:timeout", "skipped": nothing to hear again).
	SecondPass string
}

func (u Utterance) fields() map[string]string {
	f := map[string]string{"leg": u.Leg, "utt": strconv.Itoa(u.Utt), "text": u.Text,
		"start_ms": strconv.FormatInt(u.StartMs, 10), "end_ms": strconv.FormatInt(u.EndMs, 10)}
	if u.Redacted != "" {
		f["redacted"] = u.Redacted
	}
	return f
}

// NewCallStart is a call's first event; fields are the call's description
// (source, legs, from, to, codec, ...; see the wire format).
func NewCallStart(callID string, fields map[string]string) Event {
	return Event{Type: CallStart, CallID: callID, Fields: fields}
}

// NewPartial is the current text of an open utterance.
func NewPartial(callID string, u Utterance) Event {
	f := u.fields()
	if u.GapMs > 0 {
		f["gap_ms"] = strconv.FormatInt(u.GapMs, 10)
	}
	return Event{Type: Partial, CallID: callID, Fields: f}
}

// NewFinal closes an utterance, with its words and confidence.
func NewFinal(callID string, u Utterance) Event {
	f := u.fields()
	words, err := json.Marshal(u.Words)
	if err != nil || string(words) == "null" {
		words = []byte("[]")
	}
	f["words"] = string(words)
	f["conf"] = strconv.FormatFloat(float64(u.Conf), 'f', 3, 32)
	if u.DisplayWords != nil {
		f["display"] = u.Display
		if b, err := json.Marshal(u.DisplayWords); err == nil {
			f["display_words"] = string(b)
		}
	}
	if u.GapMs > 0 {
		f["gap_ms"] = strconv.FormatInt(u.GapMs, 10)
	}
	if u.SecondPass != "" {
		f["second_pass"] = u.SecondPass
	}
	return Event{Type: Final, CallID: callID, Fields: f}
}

// NewDTMF is a digit pressed on a leg.
func NewDTMF(callID, leg string, digit byte, startMs, durationMs int64) Event {
	return Event{Type: DTMF, CallID: callID, Fields: map[string]string{"leg": leg, "digit": string(digit),
		"start_ms": strconv.FormatInt(startMs, 10), "duration_ms": strconv.FormatInt(durationMs, 10)}}
}

// KeywordHit is a configured phrase heard on a leg.
type KeywordHit struct {
	Leg     string
	Utt     int
	Phrase  string // as configured
	Text    string // as recognized
	StartMs int64
	EndMs   int64
	Conf    float32
}

// NewKeyword says a keyword phrase was heard (once per occurrence, from
// the first partial that holds it).
func NewKeyword(callID string, k KeywordHit) Event {
	return Event{Type: Keyword, CallID: callID, Fields: map[string]string{"leg": k.Leg, "utt": strconv.Itoa(k.Utt),
		"phrase": k.Phrase, "text": k.Text, "start_ms": strconv.FormatInt(k.StartMs, 10), "end_ms": strconv.FormatInt(k.EndMs, 10),
		"conf": strconv.FormatFloat(float64(k.Conf), 'f', 3, 32)}}
}

// NewMaskedDTMF is a digit pressed on a leg while redaction is on: when,
// not which.
func NewMaskedDTMF(callID, leg string, startMs, durationMs int64) Event {
	return Event{Type: DTMF, CallID: callID, Fields: map[string]string{"leg": leg, "redacted": "dtmf",
		"start_ms": strconv.FormatInt(startMs, 10), "duration_ms": strconv.FormatInt(durationMs, 10)}}
}

// NewSpeech says VAD heard speech start (start true) or end on a leg, at
// atMs of the leg's timeline.
func NewSpeech(callID, leg string, start bool, atMs int64) Event {
	t := SpeechEnd
	if start {
		t = SpeechStart
	}
	return Event{Type: t, CallID: callID, Fields: map[string]string{"leg": leg, "at_ms": strconv.FormatInt(atMs, 10)}}
}

// NewPause says the call's transcription stopped (by: sip, http) at
// atMs of the call; NewResume that it started again.
func NewPause(callID, by string, atMs int64) Event {
	return Event{Type: Pause, CallID: callID, Fields: map[string]string{"by": by, "at_ms": strconv.FormatInt(atMs, 10)}}
}

// NewResume: see NewPause.
func NewResume(callID, by string, atMs int64) Event {
	return Event{Type: Resume, CallID: callID, Fields: map[string]string{"by": by, "at_ms": strconv.FormatInt(atMs, 10)}}
}

// NewCallEnd is a call's last event: why it ended, how long it lasted and
// per-leg counters (marshalled to JSON; nil for none).
func NewCallEnd(callID, reason string, durationMs int64, stats any) Event {
	f := map[string]string{"reason": reason, "duration_ms": strconv.FormatInt(durationMs, 10)}
	if stats != nil {
		if b, err := json.Marshal(stats); err == nil {
			f["stats"] = string(b)
		}
	}
	return Event{Type: CallEnd, CallID: callID, Fields: f}
}
