package media

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A leg's arrival clock (see arrivalClock) must read when each packet came
// off the network, not when the receiver got to read it: a process starved
// of CPU for over a second (a burst of calls being set up) leaves packets
// queued on the socket, and their read times would tell a sender that
// paused while it did not, jumping the timeline ahead of the audio. So the
// kernel stamps every datagram as it receives it (SO_TIMESTAMPNS, on the
// same wall clock as time.Now) and the receivers read the stamp with the
// datagram; the read time stands in only where the kernel gives none.
// (Linux turns stamping on with deferred work when the first socket asks
// for it; a datagram that comes before is stamped when it is read, as
// before.)

// oobSize is room for a datagram's control messages: one SCM_TIMESTAMPNS
// (a timespec, 32 bytes with its header).
const oobSize = 64

// stampArrivals asks the kernel to stamp the datagrams conn receives with
// their arrival (SO_TIMESTAMPNS, else SO_TIMESTAMP). Where it cannot, the
// datagrams come without a stamp and receivers fall back on read times.
func stampArrivals(conn *net.UDPConn) {
	if conn == nil {
		return
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMP, 1)
		}
	})
}

// kernelArrival is the arrival stamp (unix nanoseconds) among a datagram's
// control messages oob, if the kernel gave one. It copies what it reads
// out of oob, so it takes a buffer of any alignment, and allocates nothing.
func kernelArrival(oob []byte) (int64, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), oob)
		n := int(h.Len)
		if n < unix.CmsgLen(0) || n > len(oob) {
			return 0, false // truncated (MSG_CTRUNC) or not a control message
		}
		data := oob[unix.CmsgLen(0):n]
		if h.Level == unix.SOL_SOCKET {
			var at int64
			switch h.Type {
			case unix.SCM_TIMESTAMPNS:
				var ts unix.Timespec
				if copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)), data) == int(unsafe.Sizeof(ts)) {
					at = ts.Nano()
				}
			case unix.SCM_TIMESTAMP:
				var tv unix.Timeval
				if copy(unsafe.Slice((*byte)(unsafe.Pointer(&tv)), unsafe.Sizeof(tv)), data) == int(unsafe.Sizeof(tv)) {
					at = tv.Nano()
				}
			}
			if at > 0 {
				return at, true
			}
		}
		oob = oob[min(unix.CmsgSpace(n-unix.CmsgLen(0)), len(oob)):]
	}
	return 0, false
}

// arrival is when a datagram with control messages oob arrived: the
// kernel's stamp, or now where there is none.
func arrival(oob []byte) int64 {
	if at, ok := kernelArrival(oob); ok {
		return at
	}
	return time.Now().UnixNano()
}
