package asr

import "golang.org/x/sys/unix"

// threadCPU is the CPU time the calling OS thread has used, in ns; its
// goroutine must be locked to the thread for a difference to mean anything.
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}
