package sip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/callscribe/callscribe/internal/capool"
	"github.com/callscribe/callscribe/media"
)

// Config configures the SIP server; it is the sip section of the gateway's
// configuration file (the gateway adds its admission limits beside it).
// DefaultConfig holds the file's defaults. A Config built by hand takes
// the default a field's comment names when the field is zero, unless the
// comment gives zero a meaning of its own ("0: no limit", "empty: none").
type Config struct {
	// UDP is the address SIP listens on over UDP (IP:PORT); empty: not
	// over UDP. At least one of udp, tcp and tls is set.
	UDP string `yaml:"udp"`
	// TCP is the address SIP listens on over TCP (IP:PORT); empty: not
	// over TCP.
	TCP string `yaml:"tcp"`
	// TLS is the address SIP listens on over TLS (IP:PORT); empty: not
	// over TLS. It needs tls_cert_file and tls_key_file.
	TLS string `yaml:"tls"`
	// TLSCertFile is the certificate (PEM) SIP over TLS presents.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the private key (PEM) of tls_cert_file.
	TLSKeyFile string `yaml:"tls_key_file"`
	// TLSClient is how the TLS connections the gateway opens itself are
	// verified (a BYE or session refresh whose caller's TLS connection is
	// gone; requests in a dialog reuse the caller's connection while it is
	// up). A failure is logged and counted (callscribe_sip_bye_failed_total,
	// callscribe_sip_refresh_failed_total).
	TLSClient TLSClient `yaml:"tls_client"`
	// MediaIP is the address RTP sockets bind to and SDP answers announce;
	// default 127.0.0.1.
	MediaIP string `yaml:"media_ip"`
	// RTPPorts are the RTP ports (LO-HI), a pair per call leg (RTP on the
	// even port, RTCP on the next); default 20000-30000.
	RTPPorts media.PortRange `yaml:"rtp_ports"`
	// Codecs are the codecs answered, in order of preference (PCMU, PCMA,
	// G722, opus): wideband first, so that a caller offering G.722 or Opus
	// is heard at 16 kHz. Default G722, opus, PCMU, PCMA.
	Codecs []string `yaml:"codecs"`
	// SRTP is the SRTP policy, with SDES keys (RTP/SAVP and a=crypto, RFC
	// 4568; the keys travel in the SDP, so use it with sip.tls). off: plain
	// RTP only. offer (the default): SRTP when the caller offers it,
	// plain RTP otherwise; a delayed-offer call gets a plain offer.
	// required: SRTP only, plain RTP is refused with 488 and our own offers
	// are RTP/SAVP. Suites: AEAD_AES_128_GCM, AEAD_AES_256_GCM,
	// AES_CM_128_HMAC_SHA1_80/_32, AES_256_CM_HMAC_SHA1_80/_32.
	SRTP string `yaml:"srtp"`
	// MediaTimeout ends with BYE a call without RTP for this long while it
	// is not on hold; default 30 s.
	MediaTimeout time.Duration `yaml:"media_timeout"`
	// KeepaliveInterval is how often the peer of a call without media (on
	// hold, answered inactive or to 0.0.0.0, or no RTP for this long) is
	// asked an OPTIONS in the dialog. A probe answered 481 or 408, or not
	// answered within the interval (32 s at most, a transaction's timeout),
	// fails; keepalive_misses failures in a row end the call (reason
	// keepalive) with our BYE. Any other answer says the peer is there.
	// Without it a held call whose caller vanished holds its slot until a
	// session timer the caller asked for, or shutdown, ends it. 0: the
	// default, 30 s; negative (-1s): no probes.
	KeepaliveInterval time.Duration `yaml:"keepalive_interval"`
	// KeepaliveMisses is how many keepalive probes in a row must fail
	// before the call ends: more ride out a peer that drops a datagram now
	// and then, fewer free the slot of a vanished caller sooner (about
	// keepalive_interval × (keepalive_misses + 1) after its media stopped).
	// At least 1, default 2: one lost datagram must not end a call.
	KeepaliveMisses int `yaml:"keepalive_misses"`
	// AllowCIDRs are the only sources accepted (CIDRs; others get 403);
	// empty: any.
	AllowCIDRs []netip.Prefix `yaml:"allow_cidrs"`
	// Users, when set, requires SIP digest authentication of INVITEs: user
	// name to password. Unauthorized INVITEs get 401 with a challenge in
	// realm. Empty: no authentication.
	Users map[string]string `yaml:"users"`
	// Realm is the realm of the digest challenge; default callscribe.
	Realm string `yaml:"realm"`
	// MinSE is the shortest session-timer interval accepted (RFC 4028;
	// below it 422 with Min-SE); at least 1 s, default 90 s.
	MinSE time.Duration `yaml:"min_se"`
	// AckTimeout is how long the ACK of our 200 is waited for; a call
	// without it ends (reason timeout, BYE) and frees its slot, which it
	// holds until then. 8 s lets an ACK lost four times arrive (the 200 is
	// resent at 0.5, 1, 2, 4 s); RFC 3261's 32 s would let a stranger that
	// never ACKs hold slots four times longer. Default 8 s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// InviteRate limits the INVITEs one source address may send: a token
	// bucket per address of this many a second, bursts of invite_burst;
	// beyond it 503 with Retry-After before any work (an SBC sends every
	// call from one address: size it to its calls per second). 0: no limit.
	InviteRate float64 `yaml:"invite_rate"`
	// InviteBurst is the size of invite_rate's bucket: the INVITEs one
	// address may send at once.
	InviteBurst int `yaml:"invite_burst"`
	// MaxUnackedPerSource bounds the INVITEs from one address in progress
	// (not answered yet, or answered and not ACKed); beyond it 503 before
	// any work, so a stranger that never ACKs holds at most this many
	// slots until ack_timeout. 0: no bound. On a public address, set it
	// (and allow_cidrs for the trunks, a shorter ack_timeout).
	MaxUnackedPerSource int `yaml:"max_unacked_per_source"`
	// TCPIdleTimeout closes a TCP or TLS connection silent this long (the
	// peer opens a new one for its next request); default 10 min.
	TCPIdleTimeout time.Duration `yaml:"tcp_idle_timeout"`
	// TCPMaxPerSource bounds the TCP and TLS connections from one address
	// (more are closed at once); default 100.
	TCPMaxPerSource int `yaml:"tcp_max_per_source"`
	// CarryHeaders are the SIP headers kept on the call and published in
	// call.start as hdr:<Name>; a name ending in * is a prefix. Default
	// X-* and User-to-User.
	CarryHeaders []string `yaml:"carry_headers"`
	// RTPReadWorkers is how every call's RTP is read: 0, a goroutine per
	// leg; N, N epoll workers (media.Poller) read them all.
	RTPReadWorkers int `yaml:"rtp_read_workers"`
	// AgentAORs are the agents' addresses of record, as globs without the
	// scheme ("*@agents.example.com"). A SIPREC recording session (RFC
	// 7866) from an SBC brings a stream per participant, each a leg; those
	// of an agent are named agent and the others customer. Without a match
	// legs are caller and callee. Empty: none.
	AgentAORs []string `yaml:"agent_aors"`
	// LegNamesHeader names a header by which the caller names the legs
	// itself, one name per audio stream in order ("X-Leg-Names: agent" or
	// "customer, agent"; letters, digits, - and _); it overrides the names
	// above. Empty: not read.
	LegNamesHeader string `yaml:"leg_names_header"`
	// HotwordsHeader names the header by which a caller gives the call's
	// own hotwords ("phrase[:score], ..."; see asr.hotwords). Empty: not
	// read.
	HotwordsHeader string `yaml:"hotwords_header"`
	// KeywordsHeader names the header by which a caller gives the call's
	// own keywords (see asr.keywords). Empty: not read.
	KeywordsHeader string `yaml:"keywords_header"`
	// RedactHeader names the header by which a call asks for redaction
	// ("pci,ssn"; see redact). Empty: not read.
	RedactHeader string `yaml:"redact_header"`
	// Leg configures each leg's receive path; the file sets its reorder_ms.
	Leg media.LegOptions `yaml:",inline"`
	// AnswerDelay holds the 200 OK back (ringing); default 0. Tests only.
	AnswerDelay time.Duration `yaml:"-"`
	// Logger; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// TLSClient is how we verify peers we connect to over TLS.
type TLSClient struct {
	// CAFile is the CA bundle (PEM) that verifies the peer; empty: the
	// system's CAs.
	CAFile string `yaml:"ca_file"`
	// Verify checks the peer's certificate against ca_file and
	// server_name; false only on a private network. Default (nil) true.
	Verify *bool `yaml:"verify"`
	// ServerName is the name the peer's certificate must carry; empty: the
	// host dialled.
	ServerName string `yaml:"server_name"`
}

// TLSConfig is the client TLS configuration: the CA file read.
func (c TLSClient) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.Verify != nil && !*c.Verify}
	if c.CAFile != "" {
		pool, err := capool.Load(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_client.ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// The default headers of a call's phrase lists.
const (
	DefaultHotwordsHeader = "X-Callscribe-Hotwords"
	DefaultKeywordsHeader = "X-Callscribe-Keywords"
	DefaultRedactHeader   = "X-Callscribe-Redact"
)

// Defaults of Config, the one place they are written.
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
	// DefaultKeepaliveMisses is Config.KeepaliveMisses's default.
	DefaultKeepaliveMisses = 2
)

// DefaultCodecs is the default codec preference.
// Wideband first: when the caller offers G.722 or Opus the model hears 16
// kHz speech instead of telephone band.
func DefaultCodecs() []string { return []string{"G722", "opus", "PCMU", "PCMA"} }

// DefaultCarryHeaders are the headers kept by default.
func DefaultCarryHeaders() []string { return []string{"X-*", "User-to-User"} }

// DefaultConfig is the configuration a gateway starts with when its file
// says nothing: SIP on 127.0.0.1:5060 over UDP and TCP, the per-call
// headers read, INVITEs rate-limited per source.
func DefaultConfig() Config {
	return Config{
		UDP: "127.0.0.1:5060", TCP: "127.0.0.1:5060", MediaIP: "127.0.0.1",
		RTPPorts: media.PortRange{Lo: DefaultRTPPortLo, Hi: DefaultRTPPortHi}, Codecs: DefaultCodecs(), SRTP: SRTPOffer,
		TLSClient: TLSClient{Verify: new(true)}, MediaTimeout: DefaultMediaTimeout, KeepaliveInterval: DefaultKeepaliveInterval, KeepaliveMisses: DefaultKeepaliveMisses,
		AllowCIDRs: []netip.Prefix{}, Users: map[string]string{}, Realm: DefaultRealm, MinSE: DefaultMinSE,
		AckTimeout: DefaultAckTimeout, InviteRate: 100, InviteBurst: 400,
		TCPIdleTimeout: DefaultTCPIdleTimeout, TCPMaxPerSource: DefaultTCPMaxPerSource, CarryHeaders: DefaultCarryHeaders(),
		AgentAORs: []string{}, HotwordsHeader: DefaultHotwordsHeader, KeywordsHeader: DefaultKeywordsHeader,
		RedactHeader: DefaultRedactHeader, Leg: media.LegOptions{ReorderMs: media.DefaultReorderMs},
	}
}

// defaults fills the zero fields that have a default (NewServer).
func (c *Config) defaults() {
	if c.MediaIP == "" {
		c.MediaIP = "127.0.0.1"
	}
	if c.RTPPorts.IsZero() {
		c.RTPPorts = media.PortRange{Lo: DefaultRTPPortLo, Hi: DefaultRTPPortHi}
	}
	if len(c.Codecs) == 0 {
		c.Codecs = DefaultCodecs()
	}
	if c.SRTP == "" {
		c.SRTP = SRTPOffer
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = DefaultMediaTimeout
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.KeepaliveMisses <= 0 {
		c.KeepaliveMisses = DefaultKeepaliveMisses
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
	if len(c.CarryHeaders) == 0 {
		c.CarryHeaders = DefaultCarryHeaders()
	}
	if c.Leg.ReorderMs <= 0 {
		c.Leg.ReorderMs = media.DefaultReorderMs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field as written (a zero that has a default is an
// error here: the file says what it means); an error names the first bad
// field by its key in the sip section ("rtp_ports: ...").
func (c *Config) Validate() error {
	for _, a := range []struct{ key, addr string }{{"udp", c.UDP}, {"tcp", c.TCP}, {"tls", c.TLS}} {
		if _, err := netip.ParseAddrPort(a.addr); a.addr != "" && err != nil {
			return fmt.Errorf("%s: %q: want IP:PORT", a.key, a.addr)
		}
	}
	switch {
	case c.UDP == "" && c.TCP == "" && c.TLS == "":
		return errors.New("udp, tcp, tls: set at least one")
	case c.TLS != "" && (c.TLSCertFile == "" || c.TLSKeyFile == ""):
		return errors.New("tls_cert_file, tls_key_file: required with tls")
	}
	if _, err := netip.ParseAddr(c.MediaIP); err != nil {
		return fmt.Errorf("media_ip: %q: want an IP address", c.MediaIP)
	}
	if err := c.RTPPorts.Validate(); err != nil || c.RTPPorts.Hi <= c.RTPPorts.Lo {
		return fmt.Errorf("rtp_ports: %q: want LO-HI with LO < HI, e.g. 20000-30000", c.RTPPorts)
	}
	if len(c.Codecs) == 0 {
		return errors.New("codecs: empty")
	}
	for _, name := range c.Codecs {
		if _, err := media.LookupCodec(name); err != nil {
			return fmt.Errorf("codecs: %q: want PCMU, PCMA, G722 or opus", name)
		}
	}
	switch c.SRTP {
	case SRTPOff, SRTPOffer, SRTPRequired:
	default:
		return fmt.Errorf("srtp: %q: want off, offer or required", c.SRTP)
	}
	for _, p := range c.AllowCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("allow_cidrs: %v: want a CIDR", p)
		}
	}
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"media_timeout", c.MediaTimeout > 0}, {"keepalive_misses", c.KeepaliveMisses >= 1},
		{"min_se", c.MinSE >= time.Second}, {"ack_timeout", c.AckTimeout > 0},
		{"invite_rate", c.InviteRate >= 0}, {"invite_burst", c.InviteBurst >= 0}, {"max_unacked_per_source", c.MaxUnackedPerSource >= 0},
		{"tcp_idle_timeout", c.TCPIdleTimeout > 0}, {"tcp_max_per_source", c.TCPMaxPerSource > 0},
		{"rtp_read_workers", c.RTPReadWorkers >= 0}, {"reorder_ms", c.Leg.ReorderMs > 0},
	} {
		if !r.ok {
			return fmt.Errorf("%s: out of range", r.key)
		}
	}
	for _, p := range c.AgentAORs {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("agent_aors: %q: want a glob like *@agents.example.com", p)
		}
	}
	for _, h := range []struct{ key, name string }{{"leg_names_header", c.LegNamesHeader},
		{"hotwords_header", c.HotwordsHeader}, {"keywords_header", c.KeywordsHeader}, {"redact_header", c.RedactHeader}} {
		if strings.IndexFunc(h.name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
		}) >= 0 {
			return fmt.Errorf("%s: %q: want a header name like X-Leg-Names", h.key, h.name)
		}
	}
	return nil
}
