//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller reads the RTP sockets of many legs on a few goroutines: each
// worker waits on its own epoll set and drains every ready socket, so a
// packet costs one recvfrom and no goroutine wake-up of its own.
type Poller struct {
	workers []*pollWorker
	next    atomic.Uint32
	once    sync.Once
}

type pollWorker struct {
	epfd int
	wake [2]int // eventfd-like pipe to stop epoll_wait
	mu   sync.Mutex
	legs map[int32]polled
	done chan struct{}
}

// polled is a socket of a receiver: its RTP or its RTCP one.
type polled struct {
	r    *Receiver
	rtcp bool
}

// NewPoller starts n workers (at least 1).
func NewPoller(n int) (*Poller, error) {
	p := &Poller{}
	for range max(n, 1) {
		w, err := newPollWorker()
		if err != nil {
			p.Close()
			return nil, err
		}
		p.workers = append(p.workers, w)
		go w.run()
	}
	return p, nil
}

func newPollWorker() (*pollWorker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	w := &pollWorker{epfd: epfd, legs: map[int32]polled{}, done: make(chan struct{})}
	if err := unix.Pipe2(w.wake[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("media: pipe: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.wake[0])}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, w.wake[0], &ev); err != nil {
		return nil, fmt.Errorf("media: epoll add: %w", err)
	}
	return w, nil
}

// Add starts reading the pair's sockets into leg; the returned Receiver's
// Close stops it. Both sockets go to one worker, which serves one at a time.
func (p *Poller) Add(pair Pair, leg *Leg, ports *Ports) (*Receiver, error) {
	r := newReceiver(pair, leg, ports)
	w := p.workers[int(p.next.Add(1))%len(p.workers)]
	r.poller = w
	var err error
	if r.fd, err = w.add(pair.RTP, polled{r: r}); err != nil {
		return nil, err
	}
	if pair.RTCP != nil {
		if r.rtcpFD, err = w.add(pair.RTCP, polled{r: r, rtcp: true}); err != nil {
			w.remove(r)
			return nil, err
		}
	}
	return r, nil
}

// add starts polling conn for p.
func (w *pollWorker) add(conn *net.UDPConn, p polled) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	w.mu.Lock()
	w.legs[int32(fd)] = p
	w.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.mu.Lock()
		delete(w.legs, int32(fd))
		w.mu.Unlock()
		return -1, fmt.Errorf("media: epoll add: %w", err)
	}
	return fd, nil
}

// remove stops polling r's sockets; after it returns the worker no longer
// touches r.
func (w *pollWorker) remove(r *Receiver) {
	for _, fd := range []int{r.fd, r.rtcpFD} {
		if fd < 0 {
			continue
		}
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		w.mu.Lock() // the worker holds mu while it serves a socket
		delete(w.legs, int32(fd))
		w.mu.Unlock()
	}
}

func (w *pollWorker) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 1500)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		now := time.Now().UnixNano() // unstamped datagrams: one clock read per wake-up, not per packet
		for _, ev := range events[:n] {
			if ev.Fd == int32(w.wake[0]) {
				return
			}
			w.mu.Lock()
			if p, ok := w.legs[ev.Fd]; ok {
				p.r.drain(int(ev.Fd), p.rtcp, buf, now)
			}
			w.mu.Unlock()
		}
	}
}

// pollBudget is the most datagrams read from one socket per wake-up: a
// flooded port yields to the others on its worker (epoll is level
// triggered, so what is left is reported again at once).
const pollBudget = 32

// drain reads the datagrams waiting on socket fd (r's RTP one, or its RTCP
// one), at most pollBudget, each taken at its arrival: the kernel's stamp
// (see stampArrivals), or now, the wake-up's time, where there is none. It
// calls recvmsg directly: x/sys/unix.Recvmsg allocates the source address
// and asks the socket its protocol on every call. It returns how many it
// read.
func (r *Receiver) drain(fd int, rtcp bool, buf []byte, now int64) int {
	var (
		sa  unix.RawSockaddrAny
		oob [oobSize]byte
		iov unix.Iovec
		msg unix.Msghdr
	)
	iov.Base = &buf[0]
	iov.SetLen(len(buf))
	msg.Iov = &iov
	msg.SetIovlen(1)
	msg.Name = (*byte)(unsafe.Pointer(&sa))
	msg.Control = &oob[0]
	for i := range pollBudget {
		msg.Namelen = unix.SizeofSockaddrAny
		msg.SetControllen(len(oob))
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
		if errno != 0 {
			return i // EAGAIN: empty
		}
		var ap netip.AddrPort
		switch sa.Addr.Family {
		case unix.AF_INET:
			in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
			ap = netip.AddrPortFrom(netip.AddrFrom4(in.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&in.Port))[:]))
		case unix.AF_INET6:
			in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
			ap = netip.AddrPortFrom(netip.AddrFrom16(in.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&in.Port))[:]))
		}
		at, ok := kernelArrival(oob[:msg.Controllen])
		if !ok {
			at = now
		}
		if rtcp {
			r.acceptRTCPSafe(buf[:n], ap, at)
		} else {
			r.acceptAt(buf[:n], ap, at)
		}
	}
	return pollBudget
}

// Close stops the workers. Receivers still added stop receiving. Idempotent.
func (p *Poller) Close() error {
	p.once.Do(func() {
		for _, w := range p.workers {
			unix.Write(w.wake[1], []byte{1})
			<-w.done
			unix.Close(w.epfd)
			unix.Close(w.wake[0])
			unix.Close(w.wake[1])
		}
	})
	return nil
}
