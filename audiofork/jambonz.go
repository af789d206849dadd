package audiofork

import (
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/callscribe/callscribe/ingest"
)

// transcription is jambonz's message of a result.
type transcription struct {
	Type         string        `json:"type"`
	IsFinal      bool          `json:"is_final"`
	Alternatives []alternative `json:"alternatives"`
	Channel      int           `json:"channel"`
	Language     string        `json:"language,omitempty"`
}

type alternative struct {
	Transcript string  `json:"transcript"`
	Confidence float64 `json:"confidence"`
}

// jambonz serves jambonz's speech-to-text API: start, audio, stop; the
// call's results go back as transcription messages as the gateway
// publishes them (partials only when interimResults asks), and once the
// call has ended after stop, its last finals sent, the server closes the
// socket (1000).
func (ss *session) jambonz() {
	typ, b, ok := ss.first()
	if !ok {
		return
	}
	bad := func(detail string) {
		ss.refused(&ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: detail}, false)
	}
	if typ != websocket.MessageText {
		bad("the first message must be start, not audio")
		return
	}
	f, err := ParseStart(b)
	if err != nil {
		bad(err.Error())
		return
	}
	none := make(chan Result)
	close(none)
	results, stopResults := (<-chan Result)(none), func() {}
	if ss.s.tr != nil {
		results, stopResults = ss.s.tr(f.CallID) // before call.start: nothing is missed
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		ss.sendResults(results, f)
	}()
	reason, _ := ss.serve(f, nil)
	if reason == "bye" || reason == "shutdown" { // the last finals follow the end
		select {
		case <-sent:
		case <-time.After(finalWait):
		case <-ss.s.ctx.Done():
		}
	}
	stopResults()
	<-sent
	ss.conn.Close(websocket.StatusNormalClosure, "")
}

// sendResults writes each result as a transcription message until the
// results end; a write that fails stops the writing, not the reading.
func (ss *session) sendResults(results <-chan Result, f Format) {
	legs := map[string]int{}
	for i, l := range f.Legs {
		legs[l] = i + 1
	}
	failed := false
	for r := range results {
		if failed || !r.Final && !f.Interim {
			continue
		}
		m := transcription{Type: "transcription", IsFinal: r.Final, Channel: legs[r.Leg], Language: f.Fields["language"],
			Alternatives: []alternative{{Transcript: r.Text, Confidence: r.Confidence}}}
		if err := ss.send(m); err != nil {
			failed = true
		}
	}
}
