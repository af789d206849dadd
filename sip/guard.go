package sip

import (
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

	mu   sync.Mutex
	open map[netip.Addr]int
}

func guard(l net.Listener, idle time.Duration, perIP int) net.Listener {
	if idle <= 0 && perIP <= 0 {
		return l
	}
	return &guardedListener{Listener: l, idle: idle, perIP: perIP, open: map[netip.Addr]int{}}
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
		return &guardedConn{Conn: c, l: l, ip: ip}, nil
	}
}

// guardedConn renews its read deadline before each read.
type guardedConn struct {
	net.Conn
	l    *guardedListener
	ip   netip.Addr
	once sync.Once
}

func (c *guardedConn) Read(b []byte) (int, error) {
	if c.l.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.l.idle))
	}
	return c.Conn.Read(b)
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
