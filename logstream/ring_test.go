package logstream

import (
	"strings"
	"testing"
)

// One file's ring keeps at most ring_lines lines and ring_bytes bytes
// (lines plus lineOverhead each), numbers lines across drops, and reports
// every change of its size to the Service's total.
func TestRingBounds(t *testing.T) {
	total := 0
	r := newRing(100, 64<<10, func(d int) { total += d })
	for i := range 250 {
		r.push([]string{"line " + itoa(i)}, uint64(i+1))
	}
	lines, first := r.tail(1000)
	if len(lines) != 100 || first != 150 || lines[99] != "line 249" || r.next != 250 {
		t.Fatalf("line bound: %d lines from %d, last %q", len(lines), first, lines[len(lines)-1])
	}
	if total != r.bytes {
		t.Fatalf("reported %d bytes, ring holds %d", total, r.bytes)
	}
	if e := r.at(249); e.html != "line 249" || e.rev != 250 {
		t.Fatalf("at(249) = %+v", e)
	}

	big := strings.Repeat("b", 10<<10)
	for range 20 {
		r.push([]string{big}, 300)
	}
	if r.bytes > 64<<10 || r.n != 6 || total != r.bytes {
		t.Fatalf("byte bound: %d lines, %d bytes (reported %d)", r.n, r.bytes, total)
	}
	// One line larger than the bound is still kept (the last line always is).
	r.push([]string{strings.Repeat("h", 100<<10)}, 301)
	if r.n != 1 || total != r.bytes {
		t.Fatalf("huge line: %d lines, %d bytes", r.n, r.bytes)
	}

	// trimTo keeps the newest lines and shrinks the entries array with them.
	r2 := newRing(2000, 1<<30, nil)
	for i := range 2000 {
		r2.push([]string{"x"}, uint64(i))
	}
	r2.trimTo(10 * (1 + lineOverhead))
	if r2.n != 10 || len(r2.buf) > 20 || r2.next != 2000 || r2.first() != 1990 {
		t.Fatalf("trimTo: %d lines, array %d, first %d", r2.n, len(r2.buf), r2.first())
	}
	// dropLast reuses numbers; reset starts a new generation.
	r2.dropLast(3)
	if r2.next != 1997 || r2.n != 7 {
		t.Fatalf("dropLast: next %d, %d lines", r2.next, r2.n)
	}
	gen := r2.gen
	r2.reset()
	if r2.n != 0 || r2.next != 0 || r2.bytes != 0 || r2.gen == gen {
		t.Fatalf("reset: %+v", r2)
	}
}
