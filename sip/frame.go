package sip

import (
	"bytes"
	"strconv"
	"strings"
)

// maxMessage is the largest SIP message taken over TCP (sipgo's parser
// limit); a larger one is answered 513 and its connection closed.
const maxMessage = 65535

// framer follows message boundaries on a SIP TCP stream (headers up to the
// blank line, then Content-Length bytes of body) to tell when a message
// grows past maxMessage, before the parser refuses it without an answer.
type framer struct {
	hdr    []byte // the current message's header bytes so far
	body   int    // body bytes still to come
	tooBig bool
}

// feed follows data; it returns false once a message is too large.
func (f *framer) feed(data []byte) bool {
	for len(data) > 0 && !f.tooBig {
		if f.body > 0 {
			k := min(f.body, len(data))
			f.body -= k
			data = data[k:]
			continue
		}
		if len(f.hdr) == 0 { // keep-alive CRLFs between messages
			data = bytes.TrimLeft(data, "\r\n")
			if len(data) == 0 {
				break
			}
		}
		from := max(0, len(f.hdr)-3)
		f.hdr = append(f.hdr, data...)
		end := bytes.Index(f.hdr[from:], []byte("\r\n\r\n"))
		if end < 0 {
			f.tooBig = len(f.hdr) > maxMessage
			break
		}
		end += from + 4
		data = f.hdr[end:] // what follows the headers, re-fed as body or the next message
		n := contentLength(f.hdr[:end])
		if end+n > maxMessage {
			f.tooBig = true
			f.hdr = f.hdr[:end]
			break
		}
		rest := append([]byte(nil), data...)
		f.hdr = f.hdr[:0]
		f.body = n
		data = rest
	}
	return !f.tooBig
}

// contentLength reads Content-Length (or l) from a header block; 0 if absent
// or unreadable (the parser says what is wrong with it).
func contentLength(hdr []byte) int {
	for _, line := range strings.Split(string(hdr), "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "l") {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				return n
			}
			return 0
		}
	}
	return 0
}

// tooLarge is a 513 answer to the message whose headers are hdr (as much
// of them as came), with the headers RFC 3261 copies into a response.
func tooLarge(hdr []byte) []byte {
	var b strings.Builder
	b.WriteString("SIP/2.0 513 Message Too Large\r\n")
	for _, line := range strings.Split(string(hdr), "\r\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq":
			if len(line) <= 1024 {
				b.WriteString(line + "\r\n")
			}
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}
