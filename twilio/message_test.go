package twilio

import (
	"errors"
	"slices"
	"testing"
)

// Messages as the platforms' documentation shows them.
var messageSeeds = []string{
	// Twilio
	`{"event":"connected","protocol":"Call","version":"1.0.0"}`,
	`{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC123","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","callSid":"CA123","tracks":["inbound","outbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"FirstName":"Jane","LastName":"Doe"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}`,
	`{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"1","timestamp":"5","payload":"no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhILBgYIDRg1qZSLh4aIjJevLBUMBwYHDBUsr5eMiIaHi5SpNRgNCAYGChIm"},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}`,
	`{"event":"dtmf","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}`,
	`{"event":"mark","sequenceNumber":"4","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","mark":{"name":"my label"}}`,
	`{"event":"stop","sequenceNumber":"5","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","stop":{"accountSid":"AC123","callSid":"CA123"}}`,
	// Telnyx
	`{"event":"start","sequence_number":"1","stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC","start":{"user_id":"3E6F995F","call_control_id":"v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ","from":"+13122010094","to":"+13122123456","custom_parameters":{"customer_id":"customer_123"},"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}`,
	`{"event":"media","sequence_number":"4","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"//8="},"stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC"}`,
	// Plivo: numbers as numbers, streamId and callId
	`{"event":"start","sequenceNumber":1,"start":{"callId":"12345678-1234-1234-1234-123456789abc","streamId":"87654321-4321-4321-4321-cba987654321","accountId":"MAXXX","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}},"extra_headers":"userId=12345"}`,
	// Exotel
	`{"event":"start","sequence_number":1,"stream_sid":"107c3e3e","start":{"stream_sid":"107c3e3e","call_sid":"0f7b","account_sid":"ex","from":"0801","to":"0802","media_format":{"encoding":"audio/x-mulaw;rate=8000","sample_rate":"8000"}}}`,
	// refused
	`{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-l16","sampleRate":16000}}}`,
	`{"event":"media","media":{"track":"inbound","payload":"not base64!"}}`,
	`{"event":"start","start":{"streamSid":"MZ{1}"}}`,
	`{"event":"dtmf","dtmf":{"digit":"12"}}`,
	`{"event":"media","media":{"track":"sideways","payload":""}}`,
	`not json`, ``, `{}`, `[]`, `{"event":5}`,
}

func TestParse(t *testing.T) {
	var m Message
	for _, c := range []struct {
		i     int
		check func() bool
	}{
		{0, func() bool { return m.Event == EventConnected && m.Seq == -1 }},
		{1, func() bool {
			s := m.Start
			return m.Seq == 1 && s.StreamSid == "MZ18ad3ab5a668481ce02b83e7395059f0" && s.CallSid == "CA123" && s.AccountSid == "AC123" &&
				slices.Equal(s.Tracks, []string{"inbound", "outbound"}) && s.Codec == "PCMU" && s.Params["FirstName"] == "Jane"
		}},
		{2, func() bool {
			return m.Media.Track == "outbound" && m.Media.Chunk == 1 && m.Media.Timestamp == 5 && len(m.Media.Payload) == 72
		}},
		{3, func() bool { return m.DTMF.Track == "inbound" && m.DTMF.Digit == '1' && m.Seq == 5 }},
		{4, func() bool { return m.Mark == "my label" }},
		{5, func() bool { return m.Event == EventStop && m.StreamSid == "MZ18ad3ab5a668481ce02b83e7395059f0" }},
		{6, func() bool {
			s := m.Start
			return s.StreamSid == "32DE0DEA-53CB-4B21-89A4-9E1819C043BC" && s.CallSid[:3] == "v2:" && s.From == "+13122010094" &&
				s.Params["customer_id"] == "customer_123" && s.Codec == "PCMU" && len(s.Tracks) == 0
		}},
		{7, func() bool { return m.Seq == 4 && m.Media.Timestamp == 20 && len(m.Media.Payload) == 2 }},
		{8, func() bool {
			return m.Seq == 1 && m.Start.StreamSid == "87654321-4321-4321-4321-cba987654321" && m.Start.CallSid[:8] == "12345678"
		}},
		{9, func() bool {
			return m.Start.StreamSid == "107c3e3e" && m.Start.CallSid == "0f7b" && m.Start.Codec == "PCMU"
		}},
	} {
		if err := Parse([]byte(messageSeeds[c.i]), &m); err != nil || !c.check() {
			t.Errorf("%s: %v %+v", messageSeeds[c.i], err, m)
		}
	}
	for _, c := range []struct {
		msg  string
		want error
	}{
		{messageSeeds[10], ErrCodec},
		{`{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":16000}}}`, ErrCodec},
		{`{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","channels":2}}}`, ErrCodec},
		{messageSeeds[11], ErrBadMessage},
		{messageSeeds[12], ErrBadMessage},
		{messageSeeds[13], ErrBadMessage},
		{messageSeeds[14], ErrBadMessage},
		{`{"event":"start"}`, ErrBadMessage},
		{`{"event":"start","start":{"streamSid":""}}`, ErrBadMessage},
		{`{"event":"start","start":{"streamSid":"MZ1","tracks":["inbound","outbound","inbound"]}}`, ErrBadMessage},
		{`{"event":"media","sequenceNumber":"-3","media":{"payload":""}}`, ErrBadMessage},
		{`{"event":"media","media":{"timestamp":"1.5","payload":""}}`, ErrBadMessage},
		{`{"event":"media","media":{"timestamp":"99999999999999999999","payload":""}}`, ErrBadMessage},
		{`{"event":"media"}`, ErrBadMessage},
		{`{"event":"dtmf"}`, ErrBadMessage},
		{`not json`, ErrBadMessage},
		{``, ErrBadMessage},
		{`{}`, ErrBadMessage},
		{`{"event":5}`, ErrBadMessage},
	} {
		if err := Parse([]byte(c.msg), &m); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.msg, err, c.want)
		}
	}
	// A platform's own event is read, for the caller to pass over.
	if err := Parse([]byte(`{"event":"playedStream","name":"x"}`), &m); err != nil || m.Event != "playedStream" {
		t.Errorf("%v %+v", err, m)
	}
}
