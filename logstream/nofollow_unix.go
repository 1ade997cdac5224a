//go:build unix

package logstream

import "syscall"

// nofollow makes opening a name that is a symlink fail, even one whose
// target stays inside the directory: the archive holds regular files only.
const nofollow = syscall.O_NOFOLLOW
