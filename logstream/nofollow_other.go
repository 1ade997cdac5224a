//go:build !unix

package logstream

// nofollow: without O_NOFOLLOW the Lstat check before opening is the guard.
const nofollow = 0

// nonblock: no O_NONBLOCK here; the Lstat check before opening is the guard.
const nonblock = 0
