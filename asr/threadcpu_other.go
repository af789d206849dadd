//go:build !linux

package asr

// threadCPU is 0 where the thread's CPU clock is not read: steps are then
// costed by their wall time.
func threadCPU() int64 { return 0 }
