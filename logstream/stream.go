package logstream

import (
	"container/heap"
	"context"
	"errors"
	"time"
)

// ErrTooSlow ends a stream whose client keeps falling behind.
var ErrTooSlow = errors.New("client too slow: fell behind repeatedly")

// errServiceStopped ends streams when the Service closes.
var errServiceStopped = errors.New("log service stopped")

// MaxMessageBytes bounds one message to a client (a WebSocket message or
// one SSE flush): what a busy stream gathers in a flush interval, or a
// snapshot, goes out in pieces of at most this much (one event is never
// split).
const MaxMessageBytes = 64 << 10

// StreamOptions are one client's bounds.
type StreamOptions struct {
	// Tail is how many last lines of each file the snapshot offers.
	Tail int
	// QueueBytes bounds what may wait for the client (Config.QueueBytes).
	QueueBytes int
	// SnapshotBytes bounds the lines of one snapshot (Config.SnapshotBytes).
	SnapshotBytes int
	// Flush is the shortest time between two batches (Config.FlushInterval).
	Flush time.Duration
}

// Stream is one client's feed: a snapshot first, then live events.
type Stream struct {
	svc   *Service
	sub   *Subscription
	files []string // nil: all
	opts  StreamOptions
	seen  map[string]uint64
	lags  []time.Time
	last  time.Time // when the last batch was handed out
	timer *time.Timer
	taken []*message
	out   [][]byte
	// cut is the snapshot's capture taken by Open, which the first
	// Snapshot sends; nil once sent (a Resync captures anew).
	cut []*cursor
}

// Open subscribes a client to files (nil: all, now and future) and
// returns its stream. Files named explicitly are followed even past
// max_files (the least recently written file gives way). The caller sends
// Snapshot first, then what Next returns.
//
// The snapshot's cut is taken here, not when Snapshot sends it: a caller
// that opens the stream before it answers the client (the WebSocket's 101,
// the event stream's first flush) guarantees that every line written once
// the client holds that answer reaches it, live, whatever its tail (tail=0
// included: a line written between the answer and a later cut would have
// counted as history, and history of tail=0 is nothing).
func (s *Service) Open(files []string, opts StreamOptions) *Stream {
	s.start()
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = s.cfg.QueueBytes
	}
	if opts.SnapshotBytes <= 0 {
		opts.SnapshotBytes = s.cfg.SnapshotBytes
	}
	st := &Stream{svc: s, files: files, opts: opts, seen: map[string]uint64{}}
	// Subscribe before the snapshot's captures: nothing published after a
	// capture can be missed.
	st.sub = s.hub.subscribe(files, opts.QueueBytes)
	for _, f := range files {
		s.follow(f, byName)
	}
	st.cut = st.capture()
	return st
}

// Close unsubscribes.
func (st *Stream) Close() {
	st.svc.hub.unsubscribe(st.sub)
	if st.timer != nil {
		st.timer.Stop()
	}
}

// snapshotBlock is how many lines a snapshot copies from a ring at a time:
// the snapshot is assembled newest first across files, a block per file at
// a time, so a client over many files never holds their whole rings.
const snapshotBlock = 64

// cursor walks one file's kept lines from the newest backwards.
type cursor struct {
	index int // in the snapshot's list
	name  string
	t     *tailer
	capt  capture
	block []entry // lines [lo, lo+len(block))
	lo    uint64
	pos   int // next line to take: block[pos], going down
	left  int // lines still allowed by tail
	base  uint64
}

func (c *cursor) rev() uint64 { return c.block[c.pos].rev }

// refill loads the block before lo; false when the file has nothing older
// (or its numbering changed since the capture). The newest block comes
// with the capture itself, so a reopen after the capture (which drops
// fewer than snapshotBlock last lines) never touches the blocks read here.
func (c *cursor) refill() bool {
	if c.block == nil && len(c.capt.newest) > 0 {
		c.block, c.capt.newest = c.capt.newest, nil
		c.lo = c.capt.next - uint64(len(c.block))
		c.pos = len(c.block) - 1
		return c.left > 0
	}
	if c.left <= 0 || c.lo <= c.capt.first {
		return false
	}
	from := c.lo - min(c.lo-c.capt.first, snapshotBlock)
	block, ok := c.t.lines(c.capt.gen, from, c.lo, c.block[:0])
	if !ok || len(block) == 0 {
		return false
	}
	// Lines trimmed from the ring meanwhile: what is left starts later.
	c.lo = c.lo - uint64(len(block))
	c.block, c.pos = block, len(block)-1
	return true
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].rev() > h[j].rev() } // newest first
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

type picked struct {
	file int // index into cursors
	html string
	rev  uint64
	seq  uint64
}

// capture takes the snapshot's cut: for each file, its newest lines and
// the revision up to which events are covered (st.seen), so that Next
// skips what the snapshot holds or left out as older than the tail.
func (st *Stream) capture() []*cursor {
	names := st.files
	if names == nil {
		names = st.svc.Followed()
	}
	cursors := []*cursor{} // not nil: nil means no cut taken
	for _, n := range names {
		t := st.svc.tailer(n)
		if t == nil {
			continue
		}
		c := &cursor{index: len(cursors), name: n, t: t, capt: t.capture(min(st.opts.Tail, snapshotBlock)), left: st.opts.Tail}
		c.lo, c.base = c.capt.next, c.capt.next
		st.seen[n] = c.capt.rev
		cursors = append(cursors, c)
	}
	return cursors
}

// Snapshot sends the stream's files as they stood at Open (at the call,
// for a second snapshot such as Resync's), through emit, in
// pieces of at most MaxMessageBytes (the events of a piece are valid only
// during the call). It is assembled lazily and stops when ctx ends or emit
// fails:
//
//  1. a "snapshot" event per file (forget it; seq numbers the next line),
//  2. the last Tail lines of every file as "append" events merged in
//     arrival order (rev), the newest SnapshotBytes of them at most,
//  3. an "update" per file with a live block.
//
// Live events that these cover are skipped by Next.
func (st *Stream) Snapshot(ctx context.Context, emit func([][]byte) error) error {
	cursors := st.cut
	if cursors == nil {
		cursors = st.capture()
	}
	st.cut = nil

	// Newest lines first, across files, within the budget.
	var picks []picked
	h := make(cursorHeap, 0, len(cursors))
	for _, c := range cursors {
		if c.refill() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	budget := st.opts.SnapshotBytes
	for h.Len() > 0 {
		if len(picks)%1024 == 1023 && ctx.Err() != nil {
			return ctx.Err()
		}
		c := h[0]
		e := c.block[c.pos]
		cost := len(e.html) + lineOverhead
		if cost > budget {
			break
		}
		budget -= cost
		seq := c.lo + uint64(c.pos)
		c.base = seq
		picks = append(picks, picked{file: c.index, html: e.html, rev: e.rev, seq: seq})
		c.left--
		c.pos--
		if c.left > 0 && (c.pos >= 0 || c.refill()) {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}

	w := snapshotWriter{emit: emit, ctx: ctx}
	for _, c := range cursors {
		seq := c.base
		w.add(Event{Type: "snapshot", File: c.name, Seq: &seq})
	}
	// Oldest first now; consecutive lines of one file make one append.
	for i := len(picks) - 1; i >= 0; {
		p := picks[i]
		lines := []string{p.html}
		rev := p.rev
		size := len(p.html)
		j := i - 1
		for ; j >= 0 && picks[j].file == p.file && picks[j].seq == p.seq+uint64(len(lines)) && size < MaxMessageBytes/2; j-- {
			lines = append(lines, picks[j].html)
			rev = picks[j].rev
			size += len(picks[j].html)
		}
		seq := p.seq
		w.add(Event{Type: "append", File: cursors[p.file].name, Seq: &seq, Rev: rev, Lines: lines})
		i = j
		if w.err != nil {
			return w.err
		}
	}
	for _, c := range cursors {
		if len(c.capt.live) > 0 {
			w.add(Event{Type: "update", File: c.name, Lines: c.capt.live})
		}
	}
	return w.flush()
}

// snapshotWriter gathers encoded events into pieces of at most
// MaxMessageBytes and emits each.
type snapshotWriter struct {
	emit func([][]byte) error
	ctx  context.Context
	buf  []byte
	ends []int
	err  error
}

func (w *snapshotWriter) add(e Event) {
	if w.err != nil {
		return
	}
	start := len(w.buf)
	w.buf = appendEvent(w.buf, &e)
	if len(w.buf) > MaxMessageBytes && len(w.ends) > 0 {
		// This event starts the next piece.
		ev := append([]byte(nil), w.buf[start:]...)
		w.buf = w.buf[:start]
		if w.flush() != nil {
			return
		}
		w.buf = append(w.buf[:0], ev...)
	}
	w.ends = append(w.ends, len(w.buf))
}

func (w *snapshotWriter) flush() error {
	if w.err != nil || len(w.ends) == 0 {
		return w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.err = err
		return err
	}
	evs := make([][]byte, len(w.ends))
	start := 0
	for i, end := range w.ends {
		evs[i] = w.buf[start:end]
		start = end
	}
	w.err = w.emit(evs)
	w.buf, w.ends = w.buf[:0], w.ends[:0]
	return w.err
}

// Batch is what Next hands the writer.
type Batch struct {
	// Events are encoded events, to be sent in order (shared bytes: never
	// modify them).
	Events [][]byte
	// Ping: nothing to send; send a keep-alive.
	Ping bool
	// Lagged: the client fell behind and its queue was dropped; send
	// Resync's events.
	Lagged bool
}

var pingEvent = encodeEvent(Event{Type: "ping"})

// Next blocks until there is something to send. After a quiet spell a
// new event goes out at once; while events keep coming, they are gathered
// for the flush interval since the last batch and go out together, so a
// client costs one write per interval however many lines arrive. It
// returns a ping when tick fires, Lagged after the client fell behind,
// ctx's error when ctx ends, and ErrTooSlow after three lags within 30 s.
func (st *Stream) Next(ctx context.Context, tick <-chan time.Time) (Batch, error) {
	if st.taken != nil {
		st.sub.give(st.taken)
		st.taken = nil
	}
	for {
		select {
		case <-ctx.Done():
			return Batch{}, ctx.Err()
		case <-st.svc.ctx.Done():
			return Batch{}, errServiceStopped
		case <-tick:
			return Batch{Ping: true, Events: [][]byte{pingEvent}}, nil
		case <-st.sub.wake:
		}
		if wait := st.opts.Flush - time.Since(st.last); wait > 0 {
			if err := st.sleep(ctx, wait); err != nil {
				return Batch{}, err
			}
		}
		msgs, lagged := st.sub.take()
		if lagged {
			return st.lagged()
		}
		out := st.out[:0]
		for _, m := range msgs {
			if m.rev > st.seen[m.file] {
				out = append(out, m.data)
			}
		}
		st.taken = msgs
		if len(out) > 0 {
			st.out = out
			st.last = time.Now()
			return Batch{Events: out}, nil
		}
		st.sub.give(msgs)
		st.taken = nil
	}
}

func (st *Stream) sleep(ctx context.Context, d time.Duration) error {
	if st.timer == nil {
		st.timer = time.NewTimer(d)
	} else {
		st.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		st.timer.Stop()
		return ctx.Err()
	case <-st.svc.ctx.Done():
		st.timer.Stop()
		return errServiceStopped
	case <-st.timer.C:
		return nil
	}
}

func (st *Stream) lagged() (Batch, error) {
	now := time.Now()
	st.lags = append(st.lags, now)
	for len(st.lags) > 0 && now.Sub(st.lags[0]) > 30*time.Second {
		st.lags = st.lags[1:]
	}
	if len(st.lags) >= 3 {
		return Batch{}, ErrTooSlow
	}
	return Batch{Lagged: true}, nil
}

var laggedEvent = encodeEvent(Event{Type: "lagged"})

// Resync follows a Lagged batch: it sends "lagged" and one fresh snapshot
// (through emit, as Snapshot does), with the queue filling again from
// before the snapshot's captures, so nothing is lost in between.
func (st *Stream) Resync(ctx context.Context, emit func([][]byte) error) error {
	st.sub.resume()
	if err := emit([][]byte{laggedEvent}); err != nil {
		return err
	}
	return st.Snapshot(ctx, emit)
}
