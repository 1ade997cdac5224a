package download

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much a transfer writes before it asks the kernel
// to start writing that part to disk.
const writebackChunk = 16 << 20

// writeback starts the disk writes of a partial file as the download goes,
// so that the fsync before the rename waits for the last chunk only, not
// for the whole file: without it a 2 GiB model sat in the page cache until
// that fsync, which then took about a second on a local disk. It only
// starts writes (SYNC_FILE_RANGE_WRITE): the download does not wait for
// the disk, and the fsync still makes the file durable. Where it has no
// effect (a filesystem that does not support it), the fsync does all the
// work, as before.
type writeback struct {
	f       *os.File
	started int64 // bytes before this offset have been handed to the disk
}

// wrote records that the file now holds data up to end, and starts the
// writes of each full chunk since the last call that did.
func (w *writeback) wrote(end int64) {
	if end-w.started < writebackChunk {
		return
	}
	from, n := w.started, end-w.started
	if rc, err := w.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			// Advisory: an error (EINVAL, ESPIPE) leaves it to the fsync.
			_ = unix.SyncFileRange(int(fd), from, n, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
	w.started = end
}
