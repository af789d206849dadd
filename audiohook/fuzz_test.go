package audiohook

import "testing"

// FuzzClientMessage: whatever a client writes, the parser answers a
// message or an error, never a panic; what it takes has its parameters.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"version":"2","id":"e160e428-53e2-487c-977d-96989bf5c99d","type":"open","seq":1,"serverseq":0,"position":"PT0S","parameters":{"organizationId":"d7934305-0972-4844-938e-9060eef73d05","conversationId":"090eaa2f-72fa-480a-83e0-8667ff89c0ec","participant":{"id":"883efee8-3d6c-4537-b500-6d7ca4b92fa0","ani":"+1-555-555-1234","aniName":"John Doe","dnis":"+1-800-555-6789"},"media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000}],"language":"en-US","customConfig":{}}}`,
		`{"version":"2","id":"e160e428-53e2-487c-977d-96989bf5c99d","type":"ping","seq":2,"serverseq":1,"position":"PT1.2S","parameters":{"rtt":"PT0.05S"}}`,
		`{"version":"2","id":"e160e428-53e2-487c-977d-96989bf5c99d","type":"resumed","seq":3,"serverseq":1,"position":"PT3S","parameters":{"start":"PT3S","discarded":"PT0S"}}`,
		`{"version":"2","id":"e160e428-53e2-487c-977d-96989bf5c99d","type":"close","seq":4,"serverseq":1,"position":"PT3S","parameters":{"reason":"end"}}`,
		`{"version":"2","type":"dtmf","parameters":{"digit":"5"}}`, `[]`, `{"parameters":[]}`, `PT1e9S`,
	} {
		f.Add([]byte(s), "sig1=(\"@request-target\" \"x-api-key\");keyid=\"k\";nonce=\"abc\";created=1")
	}
	f.Fuzz(func(t *testing.T, b []byte, field string) {
		m, err := ParseClientMessage(b)
		if err == nil {
			if m.Type == TypeOpen && m.Open == nil {
				t.Fatal("open without its parameters")
			}
			if m.Seq < 1 || m.Version != "2" {
				t.Fatalf("envelope not checked: %+v", m)
			}
		}
		if d, err := parseDictionary(field); err == nil {
			for _, m := range d {
				if m.value.list != nil {
					_ = m.value.serialize()
				}
			}
		}
		ParseDuration(field)
	})
}
