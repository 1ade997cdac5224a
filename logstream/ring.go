package logstream

// lineOverhead is what one kept line costs besides its HTML (the entry and
// the string header), counted in ring bytes so that a file of empty lines
// is bounded like one of long lines.
const lineOverhead = 32

// entry is one final line and the rev of the event that made it final (its
// arrival order across all files, for the merged snapshot).
type entry struct {
	html string
	rev  uint64
}

// ring keeps the last final lines of one file (rendered HTML) for clients
// that join late. It is bounded by line count and by bytes, since a few
// thousand capped 64 KiB lines would otherwise hold hundreds of MB; the
// Service also trims it to a share of a budget across all files. Lines are
// numbered: next is the sequence number the next pushed line gets, and
// gen changes whenever the numbering restarts (reset), so that a reader
// holding numbers can tell they no longer apply. The buffer grows on
// demand: 256 quiet files do not each reserve room for maxLines entries.
type ring struct {
	buf      []entry
	start, n int
	bytes    int
	maxLines int
	maxBytes int
	next     uint64
	gen      uint64
	// onBytes reports every change of bytes (the Service's total).
	onBytes func(delta int)
}

func newRing(maxLines, maxBytes int, onBytes func(int)) *ring {
	if onBytes == nil {
		onBytes = func(int) {}
	}
	return &ring{maxLines: maxLines, maxBytes: maxBytes, onBytes: onBytes}
}

func (r *ring) push(lines []string, rev uint64) {
	before := r.bytes
	for _, l := range lines {
		if r.n == len(r.buf) {
			if len(r.buf) < r.maxLines {
				r.grow()
			} else {
				r.dropFirst()
			}
		}
		r.buf[(r.start+r.n)%len(r.buf)] = entry{l, rev}
		r.n++
		r.bytes += len(l) + lineOverhead
		r.next++
	}
	for r.bytes > r.maxBytes && r.n > 1 {
		r.dropFirst()
	}
	r.onBytes(r.bytes - before)
}

func (r *ring) grow() {
	size := min(max(2*len(r.buf), 16), r.maxLines)
	nb := make([]entry, size)
	for i := range r.n {
		nb[i] = r.buf[(r.start+i)%len(r.buf)]
	}
	r.buf, r.start = nb, 0
}

func (r *ring) dropFirst() {
	e := &r.buf[r.start]
	r.bytes -= len(e.html) + lineOverhead
	*e = entry{}
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// trimTo drops the oldest lines until at most limit bytes remain (keeping
// the last line whatever its size).
func (r *ring) trimTo(limit int) {
	before := r.bytes
	for r.bytes > limit && r.n > 1 {
		r.dropFirst()
	}
	if want := max(16, r.n+r.n/4); len(r.buf) > want+want/4 {
		// The entries array is memory too (counted in lineOverhead):
		// shrink it with the lines.
		nb := make([]entry, want)
		for i := range r.n {
			nb[i] = r.buf[(r.start+i)%len(r.buf)]
		}
		r.buf, r.start = nb, 0
	}
	r.onBytes(r.bytes - before)
}

// dropLast removes the last k lines (a reopen): their numbers are reused.
func (r *ring) dropLast(k int) {
	before := r.bytes
	k = int(min(uint64(k), r.next))
	r.next -= uint64(k)
	for ; k > 0 && r.n > 0; k-- {
		e := &r.buf[(r.start+r.n-1)%len(r.buf)]
		r.bytes -= len(e.html) + lineOverhead
		*e = entry{}
		r.n--
	}
	r.onBytes(r.bytes - before)
}

// first is the sequence number of the oldest line kept.
func (r *ring) first() uint64 { return r.next - uint64(r.n) }

// at returns line number seq, which must be in [first(), next).
func (r *ring) at(seq uint64) entry {
	return r.buf[(r.start+int(seq-r.first()))%len(r.buf)]
}

// tail returns up to n last lines and the sequence number of the first.
func (r *ring) tail(n int) ([]string, uint64) {
	n = min(n, r.n)
	out := make([]string, n)
	for i := range n {
		out[i] = r.buf[(r.start+r.n-n+i)%len(r.buf)].html
	}
	return out, r.next - uint64(n)
}

// reset forgets every line and restarts the numbering (new gen).
func (r *ring) reset() {
	r.onBytes(-r.bytes)
	r.buf = nil
	r.start, r.n, r.bytes, r.next = 0, 0, 0, 0
	r.gen++
}
