package logstream

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
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

// tailer follows one file: one per file whatever the number of clients.
// Its goroutine alone reads the file; mu guards the rendered state, which
// snapshots read from other goroutines, and orders publishing.
type tailer struct {
	svc  *Service
	name string
	path string

	wake chan struct{}

	// Owned by the tailer goroutine.
	f         *os.File
	ino       uint64
	off       int64
	skipFirst bool // started mid-file: drop the partial first line
	buf       []byte

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
		ring: newRing(svc.opts.RingLines, svc.opts.RingBytes),
		rend: newRenderer(svc.opts.BlockLines, svc.opts.MaxLineBytes),
	}
	t.skipFirst = fromEnd
	return t
}

// poke wakes the tailer without ever blocking the caller.
func (t *tailer) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run follows the file until ctx ends or the file is deleted. The safety
// poll catches what inotify cannot report (a file replaced on another
// mount, an overflowed event queue) and is the only driver without inotify.
func (t *tailer) run(done <-chan struct{}, poll time.Duration) {
	defer func() {
		if t.f != nil {
			_ = t.f.Close()
		}
	}()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		gone := t.step()
		if gone {
			t.svc.forget(t)
			return
		}
		select {
		case <-done:
			return
		case <-t.wake:
		case <-tick.C:
		}
	}
}

// step reads what is new and checks the path still names the open file.
// It reports true when the file is gone for good.
func (t *tailer) step() (gone bool) {
	if t.f == nil {
		if !t.open() {
			return true
		}
	}
	if st, err := t.f.Stat(); err == nil && st.Size() < t.off {
		// Truncated in place (`: > app.log`, log-tee's size cap).
		t.restart(t.f, inode(st))
	}
	if t.drain() {
		t.poke() // more than one wake's worth: come back at once
		return false
	}
	st, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		t.publishLocked(func() []Event { return []Event{{Type: "removed", File: t.name}} })
		return true
	case err != nil:
		return false
	case inode(st) != t.ino:
		// Replaced (rename + recreate): what the old file held is read
		// above; start again on the new one.
		f, err := os.Open(t.path)
		if err != nil {
			return false
		}
		_ = t.f.Close()
		t.restart(f, inode(st))
		t.drain()
	}
	return false
}

func (t *tailer) open() bool {
	f, err := os.Open(t.path)
	if err != nil {
		return false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return false
	}
	t.f, t.ino = f, inode(st)
	if t.skipFirst && st.Size() > t.svc.opts.InitialBytes {
		t.off = st.Size() - t.svc.opts.InitialBytes
	} else {
		t.skipFirst = false
	}
	return true
}

// restart forgets the file's content and follows f from its start.
func (t *tailer) restart(f *os.File, ino uint64) {
	t.f, t.ino, t.off, t.skipFirst = f, ino, 0, false
	t.publishLocked(func() []Event {
		t.ring.reset()
		t.rend.Reset()
		return []Event{{Type: "reset", File: t.name}}
	})
}

// drain reads to EOF (or maxReadPerWake) and publishes. It reports whether
// it stopped early with data left.
func (t *tailer) drain() (more bool) {
	if t.buf == nil {
		t.buf = make([]byte, readChunk)
	}
	total := 0
	for total < maxReadPerWake {
		n, err := t.f.ReadAt(t.buf, t.off)
		if n > 0 {
			t.off += int64(n)
			total += n
			chunk := t.buf[:n]
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
				t.svc.log.Debug("reading log", zap.String("file", t.name), zap.Error(err))
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
	t.publishLocked(func() []Event {
		res := t.rend.Write(chunk)
		var evs []Event
		for _, c := range res.changes {
			if c.reopen > 0 || len(c.lines) == 0 {
				t.ring.dropLast(c.reopen)
				evs = append(evs, Event{Type: "update", File: t.name, Reopen: c.reopen})
				continue
			}
			seq := t.ring.next
			t.ring.push(c.lines)
			evs = append(evs, Event{Type: "append", File: t.name, Seq: &seq, Lines: c.lines})
		}
		if res.liveChanged {
			evs = append(evs, Event{Type: "update", File: t.name, Lines: res.live})
		}
		return evs
	})
}

// publishLocked runs mutate under the lock and publishes the events it
// returns, in order, still under the lock: a snapshot taken under the same
// lock therefore sees either none or all of them, and knows which by rev.
func (t *tailer) publishLocked(mutate func() []Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range mutate() {
		t.svc.hub.publish(message{file: t.name, rev: t.svc.rev.Add(1), data: encodeEvent(e)})
	}
}

// snapshot returns the last n lines, the live block and the rev it covers.
func (t *tailer) snapshot(n int) (Event, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines, seq := t.ring.tail(n)
	return Event{Type: "snapshot", File: t.name, Seq: &seq, Lines: lines, Live: t.rend.Live()}, t.svc.rev.Load()
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
