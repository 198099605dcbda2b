//go:build unix

package status

import (
	"syscall"
	"time"
)

// cpuTime is the CPU this process has used, every thread (the GC's too).
// Benchmarks report it next to wall time, which a loaded machine inflates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
