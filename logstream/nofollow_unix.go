//go:build unix

package logstream

import "syscall"

// nofollow makes opening a name that is a symlink fail, even one whose
// target stays inside the directory: the archive holds regular files only.
const nofollow = syscall.O_NOFOLLOW

// nonblock makes opening a FIFO (or a device) return at once instead of
// waiting for a writer: the type is checked after the open, and a blocked
// open once kept the log service, and so caddy's stop, waiting forever
// (issue 20). On a regular file it changes nothing.
const nonblock = syscall.O_NONBLOCK
