package logstream

// ring keeps the last final lines of one file (rendered HTML) for clients
// that join late. It is bounded twice: by line count and by bytes, since a
// few thousand capped 64 KiB lines would otherwise hold hundreds of MB.
// Lines are numbered: next is the sequence number the next pushed line gets.
type ring struct {
	buf      []string
	start, n int
	bytes    int
	maxBytes int
	next     uint64
}

func newRing(maxLines, maxBytes int) *ring {
	return &ring{buf: make([]string, maxLines), maxBytes: maxBytes}
}

func (r *ring) push(lines []string) {
	for _, l := range lines {
		if r.n == len(r.buf) {
			r.dropFirst()
		}
		r.buf[(r.start+r.n)%len(r.buf)] = l
		r.n++
		r.bytes += len(l)
		r.next++
	}
	for r.bytes > r.maxBytes && r.n > 1 {
		r.dropFirst()
	}
}

func (r *ring) dropFirst() {
	r.bytes -= len(r.buf[r.start])
	r.buf[r.start] = ""
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// dropLast removes the last k lines (a reopen): their numbers are reused.
func (r *ring) dropLast(k int) {
	k = int(min(uint64(k), r.next))
	r.next -= uint64(k)
	for ; k > 0 && r.n > 0; k-- {
		i := (r.start + r.n - 1) % len(r.buf)
		r.bytes -= len(r.buf[i])
		r.buf[i] = ""
		r.n--
	}
}

// tail returns up to n last lines and the sequence number of the first.
func (r *ring) tail(n int) ([]string, uint64) {
	n = min(n, r.n)
	out := make([]string, n)
	for i := range n {
		out[i] = r.buf[(r.start+r.n-n+i)%len(r.buf)]
	}
	return out, r.next - uint64(n)
}

func (r *ring) reset() {
	clear(r.buf)
	r.start, r.n, r.bytes, r.next = 0, 0, 0, 0
}
