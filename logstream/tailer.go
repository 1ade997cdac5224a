package logstream

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Bytes read per read(2); a tailer drains a file in chunks of this size,
// publishing events for each, so a burst reaches clients in pieces.
const readChunk = 64 << 10

// Most bytes one wake-up reads before yielding to the other tailers; the
// tailer wakes itself again right away.
const maxReadPerWake = 4 << 20

// chunkPool holds read buffers and the renderer's scratch space: only
// tailers busy reading hold one.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, readChunk); return &b }}

// tailer follows one file: one per file whatever the number of clients.
// Its goroutine alone reads the file; mu guards the rendered state, which
// snapshots read from other goroutines, and orders publishing.
type tailer struct {
	svc  *Service
	name string
	path string

	wake   chan struct{}
	stop   chan struct{} // closed when the file is no longer followed
	halt   sync.Once
	wrote  atomic.Int64 // unix nanos of the last data read (or the file's mtime)
	closed atomic.Bool

	// Owned by the tailer goroutine.
	f         *os.File
	ino       uint64
	off       int64
	skipFirst bool // started mid-file: drop the partial first line

	mu   sync.Mutex
	ring *ring
	rend *renderer
}

func newTailer(svc *Service, name string, fromEnd bool) *tailer {
	t := &tailer{
		svc:  svc,
		name: name,
		path: svc.dir + string(os.PathSeparator) + name,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		ring: newRing(svc.cfg.RingLines, svc.cfg.RingBytes, svc.addRingBytes),
		rend: newRenderer(svc.cfg.BlockLines, svc.cfg.MaxLineBytes),
	}
	t.wrote.Store(time.Now().UnixNano())
	t.skipFirst = fromEnd
	return t
}

func (t *tailer) lastWrite() time.Time { return time.Unix(0, t.wrote.Load()) }

// poke wakes the tailer without ever blocking the caller.
func (t *tailer) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// stopFollowing ends the tailer's goroutine: another file takes its place.
func (t *tailer) stopFollowing() { t.halt.Do(func() { close(t.stop) }) }

// run follows the file until done, stop, or the file is deleted. The
// safety poll catches what inotify cannot report (a file replaced on
// another mount, an overflowed event queue) and is the only driver
// without inotify.
func (t *tailer) run(done <-chan struct{}, poll time.Duration) {
	defer t.closeFile()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if t.step() {
			t.svc.forget(t)
			t.svc.refollow(t.name)
			return
		}
		select {
		case <-done:
			return
		case <-t.stop:
			t.unfollowed()
			return
		case <-t.wake:
		case <-tick.C:
		}
	}
}

// closeFile releases the descriptor and the ring's memory.
func (t *tailer) closeFile() {
	if t.closed.Swap(true) {
		return
	}
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
	t.mu.Lock()
	t.ring.reset()
	t.mu.Unlock()
}

func (t *tailer) unfollowed() {
	t.publish(func() []Event { return []Event{{Type: "unfollowed", File: t.name}} }, nil)
}

// step reads what is new and checks the path still names the open file.
// It reports true when the file is gone for good.
func (t *tailer) step() (gone bool) {
	if t.f == nil {
		if !t.open() {
			return true
		}
	}
	// The path first: a deleted file is closed at once, whatever is left
	// unread in it (a writer may still hold it open and fill it).
	pst, err := os.Stat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.publish(func() []Event { return []Event{{Type: "removed", File: t.name}} }, nil)
		return true
	}
	replaced := err == nil && inode(pst) != t.ino
	statSize := int64(-1)
	if st, err := t.f.Stat(); err == nil {
		statSize = st.Size()
		// "Most recently written" is the file's own clock, not when it was
		// read: all files are read at start.
		t.wrote.Store(st.ModTime().UnixNano())
		switch {
		case st.Size() < t.off:
			// Truncated in place (`: > app.log`, log-tee's size cap).
			t.restart(t.f, inode(st))
		case st.Size()-t.off > int64(t.svc.cfg.CatchUpBytes):
			t.skipTo(st.Size() - int64(t.svc.cfg.CatchUpBytes))
		}
	}
	if !replaced {
		more := t.drain()
		if statSize >= 0 && t.off > statSize {
			// Read past the size just stat'ed: written since, so now is
			// when it was last written (the mtime stored above is older).
			t.wrote.Store(time.Now().UnixNano())
		}
		if more {
			t.poke() // more than one wake's worth: come back at once
		}
		return false
	}
	// Replaced (rename + recreate): read what the old file still holds
	// (at most catch_up_bytes, skipped to above), then start on the new one.
	for t.drain() {
	}
	f, st, ok := t.openFile()
	if !ok {
		return false
	}
	_ = t.f.Close()
	t.restart(f, inode(st))
	if st.Size() > int64(t.svc.cfg.CatchUpBytes) {
		t.skipTo(st.Size() - int64(t.svc.cfg.CatchUpBytes))
	}
	if t.drain() {
		t.poke()
	}
	return false
}

// openFile opens the followed path without blocking, and reports false
// for what cannot be opened or is not servable.
func (t *tailer) openFile() (*os.File, fs.FileInfo, bool) {
	f, err := os.OpenFile(t.path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, nil, false
	}
	st, err := f.Stat()
	if err != nil || !servable(st) {
		_ = f.Close()
		return nil, nil, false
	}
	return f, st, true
}

func (t *tailer) open() bool {
	f, st, ok := t.openFile()
	if !ok {
		return false
	}
	t.f, t.ino = f, inode(st)
	t.wrote.Store(st.ModTime().UnixNano())
	if initial := t.svc.initialBytes(); t.skipFirst && st.Size() > initial {
		t.off = st.Size() - initial
	} else {
		t.skipFirst = false
	}
	return true
}

// restart forgets the file's content and follows f from its start.
func (t *tailer) restart(f *os.File, ino uint64) {
	t.f, t.ino, t.off, t.skipFirst = f, ino, 0, false
	t.publish(func() []Event {
		t.rend.Reset()
		return []Event{{Type: "reset", File: t.name}}
	}, func(ev *Event, rev uint64) {
		t.ring.reset()
	})
}

// skipTo jumps over a burst the tailer fell behind on, to offset off: what
// was pending becomes final, a marker line says how much was skipped, and
// reading resumes at the next line boundary after off.
func (t *tailer) skipTo(off int64) {
	skipped := off - t.off
	t.off, t.skipFirst = off, true
	t.svc.logger().Debug("log tailer fell behind; skipping", zap.String("file", t.name), zap.Int64("bytes", skipped))
	t.publish(func() []Event {
		evs := t.events(t.rend.Finish())
		marker := escapeHTML([]byte(SkippedMarker(skipped)))
		t.rend.Reset()
		return append(evs, Event{Type: "append", File: t.name, Lines: []string{marker}})
	}, t.record)
}

// SkippedMarker is the line that stands for bytes a tailer skipped.
func SkippedMarker(n int64) string {
	var size string
	switch {
	case n >= 1e9:
		size = fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		size = fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		size = fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return "… skipped " + size + " written faster than the viewer reads (the file has every line) …"
}

// drain reads to EOF (or maxReadPerWake) and publishes. It reports whether
// it stopped early with data left.
func (t *tailer) drain() (more bool) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := (*bp)[:readChunk]
	total := 0
	for total < maxReadPerWake {
		n, err := t.f.ReadAt(buf, t.off)
		if n > 0 {
			t.off += int64(n)
			total += n
			chunk := buf[:n]
			if t.skipFirst {
				i := indexNL(chunk)
				if i < 0 {
					continue
				}
				chunk, t.skipFirst = chunk[i+1:], false
			}
			t.feed(chunk)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.svc.logger().Debug("reading log", zap.String("file", t.name), zap.Error(err))
			}
			return false
		}
	}
	return true
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// feed renders a chunk and publishes the resulting events.
func (t *tailer) feed(chunk []byte) {
	t.publish(func() []Event { return t.events(t.rend.Write(chunk)) }, t.record)
	t.svc.enforceRingBudget()
}

// events turns a render result into events (the ring is updated when they
// are published, by record, which knows their revs).
func (t *tailer) events(res renderResult) []Event {
	var evs []Event
	for _, c := range res.changes {
		if c.reopen > 0 || len(c.lines) == 0 {
			evs = append(evs, Event{Type: "update", File: t.name, Reopen: c.reopen})
			continue
		}
		evs = append(evs, Event{Type: "append", File: t.name, Lines: c.lines})
	}
	if res.liveChanged {
		evs = append(evs, Event{Type: "update", File: t.name, Lines: res.live})
	}
	return evs
}

// record applies a published event to the ring: appended lines are kept
// with the event's rev (their arrival order); a reopen drops lines.
func (t *tailer) record(ev *Event, rev uint64) {
	switch {
	case ev.Type == "append":
		seq := t.ring.next
		ev.Seq = &seq
		t.ring.push(ev.Lines, rev)
	case ev.Type == "update" && ev.Reopen > 0:
		t.ring.dropLast(ev.Reopen)
	}
}

// publish runs mutate under the lock and publishes the events it returns,
// in order, still under the lock, with record applying each to the ring
// as it gets its rev: a snapshot taken under the same lock therefore sees
// either none or all of them, and knows which by rev.
func (t *tailer) publish(mutate func() []Event, record func(ev *Event, rev uint64)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.svc.hub.publish(t.name, mutate(), record)
}

// capture is a snapshot's view of one file at one instant: what the ring
// numbers, its newest lines (up to newest of them), the live block, and
// the rev up to which the ring reflects every event of the file.
type capture struct {
	gen, first, next uint64
	newest           []entry
	live             []string
	rev              uint64
}

func (t *tailer) capture(newest int) capture {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := capture{gen: t.ring.gen, first: t.ring.first(), next: t.ring.next, live: t.rend.Live(), rev: t.svc.hub.rev.Load()}
	for seq := c.next - min(uint64(newest), c.next-c.first); seq < c.next; seq++ {
		c.newest = append(c.newest, t.ring.at(seq))
	}
	return c
}

// lines returns the kept lines numbered [from, to) that still exist (the
// oldest may have been trimmed: then fewer, ending at to), and false once
// the numbering has changed since the capture (gen).
func (t *tailer) lines(gen, from, to uint64, dst []entry) ([]entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ring.gen != gen {
		return dst, false
	}
	from = max(from, t.ring.first())
	to = min(to, t.ring.next)
	for seq := from; seq < to; seq++ {
		dst = append(dst, t.ring.at(seq))
	}
	return dst, true
}

// servable reports whether a log file may be followed or served: a regular
// file (no FIFO, device or symlink) with a single link. A hard link made
// inside the log directory to a file elsewhere (/etc/shadow on a shared
// file system, another user's file) is the same inode as the original,
// so its link count is the only sign of it; log writers make one link.
func servable(fi fs.FileInfo) bool {
	if !fi.Mode().IsRegular() {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return false
	}
	return true
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
