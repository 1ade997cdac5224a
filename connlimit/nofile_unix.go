//go:build unix

package connlimit

import "syscall"

// DescriptorLimit is the process's current (soft) limit on open file
// descriptors; 0 when it cannot be read. Go raises the soft limit to the
// hard one at start, so this is the most the process can open.
func DescriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
