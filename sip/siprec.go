package sip

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"path"
	"strconv"
	"strings"
)

// A SIPREC recording session (RFC 7866) arrives as an INVITE whose body
// is multipart/mixed: the SDP, one audio stream per participant (each with
// an a=label), and the recording metadata (RFC 7865, application/
// rs-metadata+xml) saying which participant sends which stream.

// Participant is a party of a recorded call, from the SIPREC metadata.
type Participant struct {
	AOR  string `json:"aor"`            // e.g. sip:alice@example.com
	Name string `json:"name,omitempty"` // display name, if given
}

// splitBody returns the SDP and, for a multipart body, the recording
// metadata (nil when there is none).
func splitBody(contentType string, body []byte) (sdpBody, meta []byte, err error) {
	mt, params, perr := mime.ParseMediaType(contentType)
	if perr != nil || !strings.HasPrefix(mt, "multipart/") {
		return body, nil, nil // a plain SDP body (or none said: taken as SDP)
	}
	if params["boundary"] == "" {
		return nil, nil, fmt.Errorf("%w: multipart body without a boundary", ErrBadSDP)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: multipart body: %v", ErrBadSDP, err)
		}
		b, err := io.ReadAll(io.LimitReader(p, 256<<10))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: multipart body: %v", ErrBadSDP, err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "application/sdp":
			sdpBody = b
		case "application/rs-metadata+xml", "application/rs-metadata":
			meta = b
		}
	}
	if sdpBody == nil {
		return nil, nil, fmt.Errorf("%w: multipart body without application/sdp", ErrBadSDP)
	}
	return sdpBody, meta, nil
}

// recording is the part of RFC 7865 metadata we read. Participants name
// the streams they send either in a participantstreamassoc or (older
// drafts) inside the participant element.
type recording struct {
	Participants []struct {
		ID     string `xml:"participant_id,attr"`
		IDOld  string `xml:"id,attr"`
		NameID struct {
			AOR  string `xml:"aor,attr"`
			Name string `xml:"name"`
		} `xml:"nameID"`
		AOR  string   `xml:"aor"` // older drafts
		Name string   `xml:"name"`
		Send []string `xml:"send"`
	} `xml:"participant"`
	Streams []struct {
		ID    string `xml:"stream_id,attr"`
		IDOld string `xml:"id,attr"`
		Label string `xml:"label"`
	} `xml:"stream"`
	Assocs []struct {
		Participant string   `xml:"participant_id,attr"`
		Send        []string `xml:"send"`
	} `xml:"participantstreamassoc"`
}

// streamSenders reads the metadata: for each stream label, the participant
// who sends it.
func streamSenders(meta []byte) (map[string]Participant, error) {
	var rec recording
	if err := xml.Unmarshal(meta, &rec); err != nil {
		return nil, fmt.Errorf("sip: recording metadata: %w", err)
	}
	labels := map[string]string{} // stream id -> label
	for _, s := range rec.Streams {
		labels[cmp(s.ID, s.IDOld)] = strings.TrimSpace(s.Label)
	}
	parts := map[string]Participant{}
	sends := map[string][]string{} // participant id -> stream ids
	for _, p := range rec.Participants {
		id := cmp(p.ID, p.IDOld)
		parts[id] = Participant{AOR: strings.TrimSpace(cmp(p.NameID.AOR, p.AOR)), Name: strings.TrimSpace(cmp(p.NameID.Name, p.Name))}
		sends[id] = append(sends[id], p.Send...)
	}
	for _, a := range rec.Assocs {
		sends[a.Participant] = append(sends[a.Participant], a.Send...)
	}
	out := map[string]Participant{}
	for id, streams := range sends {
		for _, s := range streams {
			if l, ok := labels[strings.TrimSpace(s)]; ok && l != "" {
				out[l] = parts[id]
			}
		}
	}
	return out, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// legNames names a call's streams in order: caller, callee (then leg3,
// ...); or, when agents are configured and the senders tell them apart,
// agent for a stream sent by an agent and customer for the others.
func legNames(senders []Participant, agents []string) []string {
	names := make([]string, len(senders))
	isAgent := make([]bool, len(senders))
	nAgents := 0
	for i, p := range senders {
		isAgent[i] = matchAOR(p.AOR, agents)
		if isAgent[i] {
			nAgents++
		}
	}
	if nAgents > 0 && nAgents < len(senders) {
		count := map[string]int{}
		for i := range senders {
			role := "customer"
			if isAgent[i] {
				role = "agent"
			}
			count[role]++
			names[i] = role
			if count[role] > 1 {
				names[i] = role + strconv.Itoa(count[role])
			}
		}
		return names
	}
	for i := range names {
		switch i {
		case 0:
			names[i] = "caller"
		case 1:
			names[i] = "callee"
		default:
			names[i] = "leg" + strconv.Itoa(i+1)
		}
	}
	return names
}

// matchAOR tells whether an address of record matches one of the patterns
// (shell globs, case-insensitive, without the sip: scheme: "*@agents.example.com").
func matchAOR(aor string, patterns []string) bool {
	a := strings.ToLower(aor)
	for _, scheme := range []string{"sip:", "sips:", "tel:"} {
		a = strings.TrimPrefix(a, scheme)
	}
	if a == "" {
		return false
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), a); ok {
			return true
		}
	}
	return false
}

// parseLegNames reads a leg names header: one name per stream, distinct,
// each of letters, digits, - and _ (at most 32).
func parseLegNames(v string, streams int) ([]string, bool) {
	parts := strings.Split(v, ",")
	if len(parts) != streams {
		return nil, false
	}
	seen := map[string]bool{}
	for i, p := range parts {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || len(p) > 32 || seen[p] || strings.IndexFunc(p, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			return nil, false
		}
		seen[p] = true
		parts[i] = p
	}
	return parts, true
}
