package gateway

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the tests start is gone when they end (the HTTP client's
// idle keep-alive connections are closed first: they are the client's).
func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		// sipgo's reader of a UDP connection it opened to send a request
		// (a BYE) sometimes outlives the UserAgent's Close: the library's,
		// not ours to stop.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left:", err)
			code = 1
		}
	}
	os.Exit(code)
}
