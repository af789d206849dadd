package sip

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
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
