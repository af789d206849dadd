package twilio

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The vectors of twilio-go's client/request_validator_test.go: auth token
// 12345, a URL and a webhook's POST parameters.
var sdkParams = map[string]string{
	"Digits": "1234", "CallSid": "CA1234567890ABCDE", "To": "+18005551212", "Caller": "+14158675309",
	"From": "+14158675309", "ReasonConferenceEnded": "test", "Reason": "Participant",
}

const sdkURL = "https://mycompany.com/myapp.php?foo=1&bar=2"

func TestSignatureOfTheSDKVectors(t *testing.T) {
	if got := Signature("12345", sdkURL, sdkParams); got != "vOEb5UThFn24KEfnOFLQY2AE5FY=" {
		t.Fatalf("signature %s", got)
	}
	for _, c := range []struct {
		url, sig string
		ok       bool
	}{
		{sdkURL, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{sdkURL, "WRONG SIGNATURE", false},
		{strings.Replace(sdkURL, ".com", ".com:1234", 1), "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{strings.Replace(sdkURL, "https", "http", 1), "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{strings.Replace(strings.Replace(sdkURL, "https", "http", 1), ".com", ".com:1234", 1), "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{sdkURL, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", false}, // parameters sorted wrongly
		{sdkURL, "", false},
	} {
		if got := ValidSignature("12345", c.url, sdkParams, c.sig); got != c.ok {
			t.Errorf("%s %s: %v, want %v", c.url, c.sig, got, c.ok)
		}
	}
}

// A WebSocket GET is signed over its URL with the query and no
// parameters; the URL is the one Twilio dialled: wss, the Host header, or
// public_url.
func TestSignedURLs(t *testing.T) {
	r := httptest.NewRequest("GET", "http://gw.example.com/twilio?a=1", nil)
	if got := signedURLs("", r); got[0] != "wss://gw.example.com/twilio?a=1" || got[1] != "ws://gw.example.com/twilio?a=1" {
		t.Fatalf("%q", got)
	}
	if got := signedURLs("wss://public.example.com/x/twilio", r); len(got) != 1 || got[0] != "wss://public.example.com/x/twilio?a=1" {
		t.Fatalf("%q", got)
	}
	sig := Signature("tok", "wss://gw.example.com/twilio?a=1", nil)
	if !ValidSignature("tok", "wss://gw.example.com:443/twilio?a=1", nil, sig) || ValidSignature("tok", "wss://gw.example.com/twilio?a=2", nil, sig) {
		t.Fatal("port spellings or query")
	}
}
