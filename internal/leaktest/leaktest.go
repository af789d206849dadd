// Package leaktest runs a package's tests and then checks that every
// goroutine they started is gone (go.uber.org/goleak). It holds no test of
// its own.
package leaktest

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main is a package's TestMain: the tests, then the check. The HTTP
// client's idle keep-alive connections are closed first (they are the
// client's, not the code's under test).
func Main(m *testing.M, ignore ...goleak.Option) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(ignore...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// SipgoClientReader ignores sipgo's reader of a UDP connection it opened
// to send a request (a BYE): it may outlive the UserAgent's Close; the
// library's, not ours to stop.
func SipgoClientReader() goleak.Option {
	return goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection")
}
