package sip

// The transports: listening on UDP, TCP and TLS, what strangers may hold
// over TCP and TLS, and the Contact we give for each transport.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// guardedListener bounds what strangers can hold over TCP and TLS: the
// connections from one address (more are closed at once) and how long a
// connection may stay silent (it is closed, and the peer reconnects for its
// next request).
type guardedListener struct {
	net.Listener
	idle  time.Duration // 0: no idle timeout
	perIP int           // 0: no bound
	frame bool          // plain SIP on the stream: answer 513 to oversized messages

	mu   sync.Mutex
	open map[netip.Addr]int
}

// guardConns bounds what l accepts as guardedListener says; frame follows
// plain SIP on the stream (not TLS, whose bytes are encrypted here).
func guardConns(l net.Listener, idle time.Duration, perIP int, frame bool) net.Listener {
	return &guardedListener{Listener: l, idle: idle, perIP: perIP, frame: frame, open: map[netip.Addr]int{}}
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		ip := ap.Addr().Unmap()
		l.mu.Lock()
		if l.perIP > 0 && l.open[ip] >= l.perIP {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		gc := &guardedConn{Conn: c, l: l, ip: ip}
		if l.frame {
			gc.f = &framer{}
		}
		return gc, nil
	}
}

// guardedConn renews its read deadline before each read.
type guardedConn struct {
	net.Conn
	l    *guardedListener
	ip   netip.Addr
	f    *framer // nil: not followed (TLS below the encryption)
	once sync.Once
}

func (c *guardedConn) Read(b []byte) (int, error) {
	if c.l.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.l.idle))
	}
	n, err := c.Conn.Read(b)
	if c.f != nil && n > 0 && !c.f.feed(b[:n]) {
		// Answer the oversized message, then end the stream: there is no
		// boundary to resynchronise on.
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write(tooLarge(c.f.hdr))
		c.Conn.Close()
		return 0, io.EOF
	}
	return n, err
}

func (c *guardedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.ip]--; c.l.open[c.ip] <= 0 {
			delete(c.l.open, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// listenUDP binds Config.UDP and returns what serves it; nil when it is off.
func (s *Server) listenUDP() (func(), error) {
	if s.cfg.UDP == "" {
		return nil, nil
	}
	pc, err := net.ListenPacket("udp", s.cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("sip: listen udp %s: %w", s.cfg.UDP, err)
	}
	s.addrs = append(s.addrs, pc.LocalAddr())
	s.closers = append(s.closers, pc)
	return func() { s.srv.ServeUDP(pc) }, nil
}

// listenTCP binds Config.TCP and returns what serves it; nil when it is off.
func (s *Server) listenTCP() (func(), error) {
	if s.cfg.TCP == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", s.cfg.TCP)
	if err != nil {
		return nil, fmt.Errorf("sip: listen tcp %s: %w", s.cfg.TCP, err)
	}
	s.addrs = append(s.addrs, l.Addr())
	s.closers = append(s.closers, l)
	gl := guardConns(l, s.cfg.TCPIdleTimeout, s.cfg.TCPMaxPerSource, true)
	return func() { s.srv.ServeTCP(gl) }, nil
}

// listenTLS binds Config.TLS and returns what serves it; nil when it is off.
func (s *Server) listenTLS() (func(), error) {
	if s.cfg.TLS == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("sip: tls certificate %s: %w", s.cfg.TLSCertFile, err)
	}
	raw, err := net.Listen("tcp", s.cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("sip: listen tls %s: %w", s.cfg.TLS, err)
	}
	l := tls.NewListener(guardConns(raw, s.cfg.TCPIdleTimeout, s.cfg.TCPMaxPerSource, false),
		&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s.addrs = append(s.addrs, tlsAddr{l.Addr()})
	s.closers = append(s.closers, l)
	return func() { s.srv.ServeTLS(l) }, nil
}

// setContact makes the Contact of our answers the first bound address.
func (s *Server) setContact() {
	host, port := s.cfg.MediaIP, 5060
	if len(s.addrs) > 0 {
		if ap, err := netip.ParseAddrPort(s.addrs[0].String()); err == nil {
			host, port = ap.Addr().String(), int(ap.Port())
		}
	}
	s.dlgs = sipgo.NewDialogServerCache(s.cli, sipmsg.ContactHeader{
		Address: sipmsg.Uri{User: "callscribe", Host: host, Port: port}})
}

// contactFor is our Contact for requests that came over transport (the
// peer sends ACK and BYE there); nil keeps the default.
func (s *Server) contactFor(transport string) *sipmsg.ContactHeader {
	want := strings.ToLower(transport)
	if want != "tcp" && want != "tls" {
		want = "udp"
	}
	for _, a := range s.addrs {
		if a.Network() != want {
			continue
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return nil
		}
		h := &sipmsg.ContactHeader{Address: sipmsg.Uri{User: "callscribe", Host: ap.Addr().String(), Port: int(ap.Port())}}
		if want != "udp" {
			h.Address.UriParams = sipmsg.NewParams()
			h.Address.UriParams.Add("transport", want)
		}
		return h
	}
	return nil
}

// tlsAddr marks a TLS listener's address (its Network is "tls").
type tlsAddr struct{ net.Addr }

func (tlsAddr) Network() string { return "tls" }
