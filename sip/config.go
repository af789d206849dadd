package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/callscribe/callscribe/media"
)

// Config configures the SIP server. Zero fields take the defaults named.
type Config struct {
	// UDP, TCP and TLS are the listen addresses ("127.0.0.1:5060"); empty:
	// off. TLS needs TLSCertFile and TLSKeyFile (PEM).
	UDP, TCP, TLS           string
	TLSCertFile, TLSKeyFile string
	// TLSClient configures the TLS connections we open (a request in a
	// dialog whose inbound connection is gone): the CA bundle that verifies
	// the peer (default: the system's), verification off (never on a public
	// network), and the server name to verify (default: the host dialled).
	TLSClient TLSClient
	// MediaIP is the address RTP sockets bind to and SDP announces.
	MediaIP string
	// RTPPortLo and RTPPortHi bound the RTP ports; default 20000-30000.
	RTPPortLo, RTPPortHi int
	// Codecs in order of preference; default G722, opus, PCMU, PCMA.
	Codecs []string
	// SRTP is the SRTP policy (SDES, RFC 4568): SRTPOff, SRTPOffer (the
	// default) or SRTPRequired.
	SRTP string
	// MediaTimeout ends a call without RTP for this long while not on
	// hold; default 30 s.
	MediaTimeout time.Duration
	// KeepaliveInterval is how often the peer of a call without media (on
	// hold, answered inactive or to 0.0.0.0, or no RTP for this long) is
	// asked an OPTIONS in the dialog. A probe answered 481 or 408, or not
	// answered within the interval (at most 32 s, a transaction's timeout),
	// fails; two failures in a row end the call (reason keepalive) with our
	// BYE. Any other answer says the peer is there. 0: the default, 30 s;
	// negative: no probes (a held call whose caller vanished then lives
	// until a session timer or shutdown ends it).
	KeepaliveInterval time.Duration
	// AllowCIDRs, when set, is the only sources accepted (403 otherwise).
	AllowCIDRs []netip.Prefix
	// Users, when set, requires SIP digest authentication of INVITEs
	// (401 with a challenge otherwise); user name to password.
	Users map[string]string
	// Realm of the digest challenge; default "callscribe".
	Realm string
	// MinSE is the shortest session interval accepted (RFC 4028; 422 with
	// Min-SE below it); default 90 s.
	MinSE time.Duration
	// CarryHeaders names the headers kept on the call record; a name ending
	// in "*" is a prefix. Default: X-* and User-to-User.
	CarryHeaders []string
	// AnswerDelay holds the 200 OK back (ringing); default 0.
	AnswerDelay time.Duration
	// InviteRate limits the INVITEs one source address may send (a token
	// bucket per IP: rate a second, bursts of InviteBurst); beyond it 503
	// with Retry-After, before any work. 0: no limit (the default).
	InviteRate  float64
	InviteBurst int
	// MaxUnackedPerSource bounds the INVITEs from one address in progress
	// (not yet answered, or answered and not ACKed): beyond it 503 before
	// any work, so a stranger that never ACKs cannot hold every slot until
	// AckTimeout. 0: no bound (the default).
	MaxUnackedPerSource int
	// TCPIdleTimeout closes a TCP or TLS connection silent for this long
	// (the peer reconnects for its next request); default 10 min.
	// TCPMaxPerSource bounds the TCP and TLS connections from one address
	// (more are closed at once); default 100.
	TCPIdleTimeout  time.Duration
	TCPMaxPerSource int
	// AckTimeout is how long the ACK for our 200 is waited for; a call
	// without it is ended with BYE and its slot freed. Default 8 s: an ACK
	// lost four times still arrives (the 200 is resent at 0.5, 1, 2, 4 s);
	// RFC 3261 13.3.1.4 resends for 32 s, which lets a stranger that never
	// ACKs hold slots four times longer.
	AckTimeout time.Duration
	// AgentAORs are patterns of the agents' addresses of record (shell
	// globs without the scheme: "*@agents.example.com"). A SIPREC call whose
	// streams they tell apart names its legs agent and customer; otherwise
	// legs are caller and callee. Default: none.
	AgentAORs []string
	// LegNamesHeader names a header by which the caller says who speaks on
	// each stream ("X-Leg-Names: agent" or "customer, agent" in stream
	// order): names of letters, digits, - and _; it overrides the names
	// above. Default: none.
	LegNamesHeader string
	// HotwordsHeader and KeywordsHeader name the headers by which a caller
	// gives the call's own hotwords and keywords ("phrase[:score], ...");
	// empty: none read. The gateway defaults them to DefaultHotwordsHeader
	// and DefaultKeywordsHeader.
	HotwordsHeader, KeywordsHeader string
	// RedactHeader names the header by which a caller asks for redaction
	// ("pci,ssn"); empty: none read. Gateway default DefaultRedactHeader.
	RedactHeader string
	// RTPReadWorkers > 0 reads every call's RTP on that many epoll workers
	// (media.Poller); 0, the default, gives each leg a goroutine of its own.
	RTPReadWorkers int
	// Leg configures each leg's receive path.
	Leg media.LegOptions
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// TLSClient is how we verify peers we connect to over TLS.
type TLSClient struct {
	CAFile     string
	NoVerify   bool
	ServerName string
}

// config builds the client TLS configuration.
func (c TLSClient) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.NoVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sip: config: tls_client.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sip: config: tls_client.ca_file %s: no PEM certificate", c.CAFile)
		}
	}
	return cfg, nil
}

// The default headers of a call's phrase lists.
const (
	DefaultHotwordsHeader = "X-Callscribe-Hotwords"
	DefaultKeywordsHeader = "X-Callscribe-Keywords"
	DefaultRedactHeader   = "X-Callscribe-Redact"
)

// Defaults of Config, the one place they are written (the gateway's
// configuration uses these).
const (
	DefaultRTPPortLo    = 20000
	DefaultRTPPortHi    = 30000
	DefaultMediaTimeout = 30 * time.Second
	// DefaultKeepaliveInterval is Config.KeepaliveInterval's default.
	DefaultKeepaliveInterval = 30 * time.Second
	DefaultAckTimeout        = 8 * time.Second
	DefaultMinSE             = 90 * time.Second
	DefaultRealm             = "callscribe"
	// TCP and TLS connections.
	DefaultTCPIdleTimeout  = 10 * time.Minute
	DefaultTCPMaxPerSource = 100
)

// DefaultCodecs is the default codec preference.
// Wideband first: when the caller offers G.722 or Opus the model hears 16
// kHz speech instead of telephone band.
func DefaultCodecs() []string { return []string{"G722", "opus", "PCMU", "PCMA"} }

// DefaultCarryHeaders are the headers kept by default.
func DefaultCarryHeaders() []string { return []string{"X-*", "User-to-User"} }

func (c *Config) defaults() error {
	if c.UDP == "" && c.TCP == "" && c.TLS == "" {
		return errors.New("sip: config: no listen address (udp, tcp or tls)")
	}
	if c.TLS != "" && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		return errors.New("sip: config: tls needs tls_cert_file and tls_key_file")
	}
	if c.MediaIP == "" {
		c.MediaIP = "127.0.0.1"
	}
	if _, err := netip.ParseAddr(c.MediaIP); err != nil {
		return fmt.Errorf("sip: config: media_ip %q: %w", c.MediaIP, err)
	}
	if c.RTPPortLo == 0 && c.RTPPortHi == 0 {
		c.RTPPortLo, c.RTPPortHi = DefaultRTPPortLo, DefaultRTPPortHi
	}
	if len(c.Codecs) == 0 {
		c.Codecs = DefaultCodecs()
	}
	for _, name := range c.Codecs {
		if _, err := media.LookupCodec(name); err != nil {
			return fmt.Errorf("sip: config: codecs: %q: %w", name, err)
		}
	}
	switch c.SRTP {
	case "":
		c.SRTP = SRTPOffer
	case SRTPOff, SRTPOffer, SRTPRequired:
	default:
		return fmt.Errorf("sip: config: srtp %q: want off, offer or required", c.SRTP)
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = DefaultMediaTimeout
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.TCPMaxPerSource <= 0 {
		c.TCPMaxPerSource = DefaultTCPMaxPerSource
	}
	if c.MinSE <= 0 {
		c.MinSE = DefaultMinSE
	}
	if c.MinSE < time.Second {
		return fmt.Errorf("sip: config: min_se %v is under a second", c.MinSE)
	}
	if len(c.CarryHeaders) == 0 {
		c.CarryHeaders = DefaultCarryHeaders()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
