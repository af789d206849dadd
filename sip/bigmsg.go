package sip

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// Messages over UDP whatever their size. sipgo refuses to write a UDP
// message over sip.UDPMTUSize-200 bytes (1,300), so a 200 OK that grew on
// its way through a trunk's proxies (their Via and Record-Route) was never
// sent. A response goes back the way its request came whatever its size
// (RFC 3261 18.2.2: IP fragments it); a request of ours over 1,300 bytes
// should take a congestion-controlled transport (18.1.1): TCP where the next
// hop takes it, else UDP all the same.

// maxUDPRequest is RFC 3261 18.1.1's bound on a request over UDP when the
// path MTU is unknown.
const maxUDPRequest = 1300

// maxUDPPayload is the most a UDP datagram over IPv4 carries.
const maxUDPPayload = 65535 - 20 - 8

// tcpDialTimeout bounds the connection a large request tries before it
// falls back to UDP (a hop that drops SYNs must not cost a BYE its time).
const tcpDialTimeout = time.Second

// liftUDPLimit raises sipgo's UDPMTUSize so that it writes any message a
// datagram holds: the library's own knob for this (its maintainers' answer
// in emiago/sipgo#206 and #208). The variable is the library's and the
// whole process's: it is written once, before the first server's
// transports exist, and only read after.
var liftUDPLimit = sync.OnceFunc(func() { sipmsg.UDPMTUSize = maxUDPPayload + 200 })

// requester sends our requests in a dialog (BYE, UPDATE, OPTIONS) as
// sipgo's Client.TxRequester: what the transaction layer would do, except
// that a request over maxUDPRequest bytes bound for UDP goes over TCP to
// the same next hop, when that hop's URI does not ask for another transport
// and a connection can be made (RFC 3261 18: every SIP element takes TCP;
// RFC 3263: on the same port when the URI names one), and over UDP when not.
type requester struct {
	ua  *sipgo.UserAgent
	log *slog.Logger
}

// Request starts req's client transaction.
func (r requester) Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error) {
	if req.IsAck() { // sipgo's Client.WriteRequest comes here too: no transaction
		return nil, r.ua.TransportLayer().WriteMsg(req)
	}
	if size := len(req.String()); size > maxUDPRequest && strings.EqualFold(req.Transport(), "UDP") && tcpAllowed(nextHop(req)) {
		tx, err := r.overTCP(ctx, req)
		if err == nil {
			return tx, nil
		}
		r.log.Info("sip: large request sent over UDP: no TCP to the next hop", "method", req.Method, "bytes", size, "err", err)
	}
	tx, err := r.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// overTCP starts req's transaction over TCP; on failure req is left as it
// was, to go over UDP.
func (r requester) overTCP(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error) {
	via := req.Via()
	was := *via
	req.SetTransport("TCP")
	via.Transport = "TCP"
	dial, cancel := context.WithTimeout(ctx, tcpDialTimeout) // only the connection uses it
	defer cancel()
	tx, err := r.ua.TransactionLayer().Request(dial, req)
	if err != nil {
		req.SetTransport(was.Transport)
		via.Transport, via.Host, via.Port = was.Transport, was.Host, was.Port
		return nil, err
	}
	return tx, nil
}

// nextHop is where req goes first: its first Route, else its Request-URI.
func nextHop(req *sipmsg.Request) sipmsg.Uri {
	if h := req.Route(); h != nil {
		return h.Address
	}
	return req.Recipient
}

// tcpAllowed tells whether a request may go over TCP to uri: unless its
// transport parameter names another transport.
func tcpAllowed(uri sipmsg.Uri) bool {
	if uri.UriParams == nil {
		return true
	}
	tp, ok := uri.UriParams.Get("transport")
	return !ok || tp == "" || strings.EqualFold(tp, "tcp")
}
