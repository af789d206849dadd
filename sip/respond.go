package sip

import (
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/callscribe/callscribe/ingest"
)

// respond answers req with a response of ours, headers appended.
func respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, code int, reason string, hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	tx.Respond(res)
}

// respondRefusal answers a refusal: its status and phrase, Retry-After and
// a Warning with its detail.
func respondRefusal(tx sipmsg.ServerTransaction, req *sipmsg.Request, r *ingest.Refusal) {
	var hdrs []sipmsg.Header
	if r.RetryAfter > 0 {
		hdrs = append(hdrs, sipmsg.NewHeader("Retry-After", strconv.Itoa(int(r.RetryAfter.Seconds()))))
	}
	if r.Detail != "" {
		hdrs = append(hdrs, warning(sanitize(r.Detail)))
	}
	phrase := reasonPhrase(r.SIP)
	if r.SIP == 400 && r.Detail != "" { // say what is wrong where every phone shows it
		phrase += ": " + sanitize(r.Detail)
		if len(phrase) > 160 {
			phrase = phrase[:160]
		}
	}
	respond(tx, req, r.SIP, phrase, hdrs...)
}

// reasonPhrase is RFC 3261's phrase for the statuses we refuse with.
func reasonPhrase(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 420:
		return "Bad Extension"
	case 422:
		return "Session Interval Too Small"
	case 482:
		return "Loop Detected"
	case 483:
		return "Too Many Hops"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 505:
		return "Version Not Supported"
	}
	return "Refused"
}

// warning is a Warning header of ours (code 399, miscellaneous) with text,
// which must hold no quote or line break (see sanitize).
func warning(text string) sipmsg.Header {
	return sipmsg.NewHeader("Warning", `399 callscribe "`+text+`"`)
}

// sanitize makes s fit a quoted header value.
func sanitize(s string) string {
	return strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(s)
}

// respondOutOfOrder answers a request in a dialog whose CSeq is older than
// the peer's last (RFC 3261 12.2.2).
func respondOutOfOrder(tx sipmsg.ServerTransaction, req *sipmsg.Request) {
	respond(tx, req, 500, "Server Internal Error", warning("CSeq out of order"))
}
