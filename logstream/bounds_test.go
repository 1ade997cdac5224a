package logstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
)

// openFDs counts this process's descriptors that point into dir.
func openFDs(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// At most max_files files are followed, the most recently written; the
// rest are listed but not open. A file asked for by name takes the place
// of the least recently written one at once, a written file once that one
// has been quiet, and clients are told with "unfollowed" (issue 14, item 4).
func TestMaxFilesBound(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	const files, limit = 40, 8
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("f%02d.log", i))
		appendFile(t, p, fmt.Sprintf("file %d\n", i))
		at := now.Add(time.Duration(i-files) * time.Minute) // f39 newest
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	svc := NewService(Config{Dir: dir, MaxFiles: limit, PollInterval: confdecl.Duration(20 * time.Millisecond)}, nil)
	defer svc.Close()
	all := newClient(t, svc, nil)
	followed := svc.Followed()
	var want []string
	for i := files - limit; i < files; i++ {
		want = append(want, fmt.Sprintf("f%02d.log", i))
	}
	if !slices.Equal(followed, want) {
		t.Fatalf("followed %q, want the %d most recently written %q", followed, limit, want)
	}
	if n := openFDs(t, dir); n > limit {
		t.Fatalf("%d descriptors open for %d files, max_files %d", n, files, limit)
	}
	listed, _ := svc.Files()
	if len(listed) != files {
		t.Fatalf("listed %d files, want all %d", len(listed), files)
	}

	// Asked for by name: followed at once; the least recently written
	// (f32.log) gives way, and an all-files client hears of it.
	one := newClient(t, svc, []string{"f00.log"})
	if got := one.lines("f00.log"); !slices.Equal(got, []string{"file 0"}) {
		t.Fatalf("named file snapshot %q", got)
	}
	all.until("unfollowed", func() bool { return slices.Contains(all.kinds, "unfollowed") })
	if f := svc.Followed(); len(f) != limit || !slices.Contains(f, "f00.log") || slices.Contains(f, "f32.log") {
		t.Fatalf("after naming f00.log: %q", f)
	}

	// Written to: not followed while every followed file is busy...
	for _, name := range svc.Followed() {
		appendFile(t, filepath.Join(dir, name), "busy\n")
		all.until(name+" busy", func() bool { return slices.Contains(all.final[name], "busy") })
	}
	appendFile(t, filepath.Join(dir, "f01.log"), "more\n")
	time.Sleep(300 * time.Millisecond) // nothing to wait for: f01.log must NOT be followed (several rescans of the real directory pass)
	if slices.Contains(svc.Followed(), "f01.log") {
		t.Fatal("a written file displaced a file written within the quiet period")
	}
	// ...and followed once the least recently written one has been quiet.
	svc.mu.Lock()
	svc.quiet = 0
	svc.mu.Unlock()
	appendFile(t, filepath.Join(dir, "f01.log"), "again\n")
	all.until("f01.log followed", func() bool { return slices.Contains(all.final["f01.log"], "again") })
	if f := svc.Followed(); len(f) != limit {
		t.Fatalf("%d files followed, max_files %d", len(f), limit)
	}
	if n := openFDs(t, dir); n > limit+1 { // +1: a tailer being stopped
		t.Fatalf("%d descriptors open, max_files %d", n, limit)
	}
}

// The rings of all files together stay within total_ring_bytes; each ring
// keeps its newest lines (issue 14, item 4).
func TestRingBudgetAcrossFiles(t *testing.T) {
	const budget = 64 << 10
	svc, dir := newTestServiceCfg(t, Config{TotalRingBytes: budget, RingBytes: 1 << 20, PollInterval: confdecl.Duration(20 * time.Millisecond)})
	c := newClient(t, svc, nil)
	line := strings.Repeat("z", 200)
	for f := range 10 {
		name := fmt.Sprintf("r%d.log", f)
		var sb strings.Builder
		for i := range 300 { // 300 × ~230 bytes kept: about 68 KiB per file
			fmt.Fprintf(&sb, "%s %d\n", line, i)
		}
		appendFile(t, filepath.Join(dir, name), sb.String())
		c.until(name, func() bool { return len(c.final[name]) == 300 })
	}
	// Lines reach clients before the feed that carried them trims the
	// rings: wait (bounded) for that trim rather than racing it.
	testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return svc.RingBytes() <= budget })
	if got := svc.RingBytes(); got > budget {
		t.Fatalf("rings hold %d bytes, budget %d", got, budget)
	}
	// A late client still gets the newest lines of each file.
	late := newClient(t, svc, nil)
	for f := range 10 {
		lines := late.final[fmt.Sprintf("r%d.log", f)]
		if len(lines) == 0 || lines[len(lines)-1] != line+" 299" {
			t.Fatalf("r%d.log kept %d lines, last %q", f, len(lines), lines[max(0, len(lines)-1):])
		}
	}
}

// A snapshot carries at most snapshot_bytes of lines, the newest, merged
// across files in arrival order ("all files" interleaves lines as they
// came, issue 13), and lines arrive numbered without gaps.
func TestSnapshotBudgetAndArrivalOrder(t *testing.T) {
	svc, dir := newTestService(t, false)
	c := newClient(t, svc, nil)
	// a, b, a, b…: one event each, waited for, so the arrival order is known.
	var order []string
	for i := range 40 {
		name := []string{"a.log", "b.log"}[i%2]
		appendFile(t, filepath.Join(dir, name), fmt.Sprintf("%s %02d %s\n", name, i, strings.Repeat("p", 100)))
		c.until(fmt.Sprint(i), func() bool { return len(c.order) == i+1 })
		order = append(order, name)
	}
	if !slices.Equal(c.order, order) {
		t.Fatalf("live order %q", c.order)
	}

	late := newClient(t, svc, nil)
	if !slices.Equal(late.order, order) {
		t.Fatalf("snapshot order %q, want arrival order %q", late.order, order)
	}

	// A budget of ten lines' worth: the ten newest, still interleaved.
	const lineCost = 100 + 12 + lineOverhead
	small := newClientOpts(t, svc, nil, StreamOptions{Tail: MaxTail, SnapshotBytes: 10*lineCost + lineCost/2})
	if !slices.Equal(small.order, order[30:]) {
		t.Fatalf("budgeted snapshot order %q, want %q", small.order, order[30:])
	}
	if got := small.final["a.log"]; len(got) != 5 || !strings.HasPrefix(got[4], "a.log 38") {
		t.Fatalf("budgeted snapshot of a.log %q", got)
	}

	// tail counts per file.
	tail := newClientOpts(t, svc, nil, StreamOptions{Tail: 2})
	if !slices.Equal(tail.order, order[36:]) {
		t.Fatalf("tail=2 order %q", tail.order)
	}
}

// A snapshot is emitted piece by piece as the client takes it, and stops
// when the client goes (issue 14, item 5).
func TestSnapshotStopsWhenClientGoes(t *testing.T) {
	svc, dir := newTestService(t, true)
	var sb strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&sb, "%04d %s\n", i, strings.Repeat("q", 200))
	}
	for f := range 4 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("s%d.log", f)), sb.String())
	}
	st := svc.Open(nil, StreamOptions{Tail: MaxTail})
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pieces := 0
	err := st.Snapshot(ctx, func(evs [][]byte) error {
		pieces++
		size := 0
		for _, e := range evs {
			size += len(e)
		}
		if size > MaxMessageBytes+64<<10 {
			t.Errorf("piece of %d bytes", size)
		}
		cancel() // the client leaves after the first piece
		return nil
	})
	if !errors.Is(err, context.Canceled) || pieces != 1 {
		t.Fatalf("snapshot went on after the client left: %d pieces, %v", pieces, err)
	}
	// Uncancelled, the same snapshot takes many pieces.
	pieces = 0
	if err := st.Snapshot(context.Background(), func([][]byte) error { pieces++; return nil }); err != nil || pieces < 10 {
		t.Fatalf("full snapshot: %d pieces, %v", pieces, err)
	}
}

func stepTailer(t *testing.T, svc *Service, name string) *tailer {
	t.Helper()
	tl := newTailer(svc, name, true)
	if tl.step() {
		t.Fatal("file gone")
	}
	t.Cleanup(tl.closeFile)
	return tl
}

func ringLines(tl *tailer) []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	lines, _ := tl.ring.tail(tl.ring.n)
	return lines
}

// A tailer far behind skips to the last catch_up_bytes with a marker line
// instead of rendering everything (issue 14, item 12).
func TestTailerFarBehindSkips(t *testing.T) {
	svc, dir := newTestServiceCfg(t, Config{CatchUpBytes: 4096, ForcePolling: true})
	p := filepath.Join(dir, "burst.log")
	appendFile(t, p, "before\n")
	tl := stepTailer(t, svc, "burst.log")
	var sb strings.Builder
	for i := range 20000 { // about 300 kB at once
		fmt.Fprintf(&sb, "burst line %05d\n", i)
	}
	appendFile(t, p, sb.String())
	if tl.step() {
		t.Fatal("file gone")
	}
	lines := ringLines(tl)
	marker := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "… skipped ") })
	if marker != 1 || lines[0] != "before" || lines[len(lines)-1] != "burst line 19999" {
		t.Fatalf("after a burst: %d lines, marker at %d, first %q last %q", len(lines), marker, lines[:min(2, len(lines))], lines[len(lines)-1])
	}
	if !strings.Contains(lines[marker], "skipped 336 kB") || len(lines)-2 > 4096/17+1 {
		t.Fatalf("marker %q, %d lines read after it", lines[marker], len(lines)-2)
	}
	// The lines after the marker are whole lines, in order.
	for i, l := range lines[marker+1:] {
		if i > 0 && l <= lines[marker+i] {
			t.Fatalf("out of order after the skip: %q then %q", lines[marker+i], l)
		}
	}
}

// A deleted file is closed at once: what was written but not read yet is
// dropped, not rendered first (issue 14, item 12).
func TestTailerClosesDeletedFileAtOnce(t *testing.T) {
	svc, dir := newTestServiceCfg(t, Config{ForcePolling: true})
	p := filepath.Join(dir, "gone.log")
	appendFile(t, p, "kept\n")
	// The Service is not started: the tailer below is the only one.
	sub := svc.hub.subscribe(nil, 1<<20)
	tl := stepTailer(t, svc, "gone.log")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // a writer still holds it: the inode lives on
	if n := openFDs(t, dir); n != 2 {
		t.Fatalf("%d descriptors on the file, want the tailer's and the writer's", n)
	}
	if _, err := w.WriteString(strings.Repeat("unread line\n", 1000)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if !tl.step() {
		t.Fatal("deleted file not reported gone")
	}
	tl.closeFile()
	if n := openFDs(t, dir); n != 1 {
		t.Fatalf("%d descriptors still open on the deleted file, want only the writer's", n)
	}
	msgs, _ := sub.take()
	var kinds []string
	for _, m := range msgs {
		var e Event
		_ = json.Unmarshal(m.data, &e)
		kinds = append(kinds, e.Type)
		if slices.Contains(e.Lines, "unread line") {
			t.Fatal("the deleted file's unread lines were rendered before closing it")
		}
	}
	if !slices.Equal(kinds, []string{"append", "removed"}) { // "kept", then gone
		t.Fatalf("events: %q, want the first line's append, then removed", kinds)
	}
}

// A fixed client load keeps the heap under a stated bound (issue 14,
// item 5): 300 files of 256 KiB each, max_files 256, the default ring
// budget (32 MiB), and ten clients asking for tail=5000 of every file at
// once, each taking its snapshot slowly. The bound is on the Go heap in
// use, not the RSS (the test shares its process); docs/logstream.md gives
// the process RSS of the same load through the real binary.
func TestHeapBoundUnderSnapshotLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 75 MB")
	}
	dir := t.TempDir()
	chunk := strings.Repeat(strings.Repeat("m", 120)+"\n", 2100) // 256 KiB
	for i := range 300 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("h%03d.log", i)), chunk)
	}
	svc := NewService(Config{Dir: dir, ForcePolling: true}, nil)
	defer svc.Close()
	svc.start()
	if n := len(svc.Followed()); n != 256 {
		t.Fatalf("%d files followed", n)
	}
	runtime.GC()
	var peak uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	sample()
	ringsOnly := peak
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := svc.Open(nil, StreamOptions{Tail: MaxTail})
			defer st.Close()
			_ = st.Snapshot(context.Background(), func([][]byte) error {
				time.Sleep(time.Millisecond) // the slowness under test: a client that takes its time over each batch
				return nil
			})
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(20 * time.Millisecond):
			sample()
		}
	}
	const bound = 128 << 20
	t.Logf("heap in use: %.1f MiB with the rings (ring bytes %.1f MiB), peak %.1f MiB with 10 snapshots",
		float64(ringsOnly)/(1<<20), float64(svc.RingBytes())/(1<<20), float64(peak)/(1<<20))
	if svc.RingBytes() > 32<<20 {
		t.Fatalf("rings hold %d bytes, over the 32 MiB budget", svc.RingBytes())
	}
	if peak > bound {
		t.Fatalf("heap in use peaked at %.1f MiB, bound %d MiB", float64(peak)/(1<<20), bound>>20)
	}
	// Nothing stays behind once the clients have gone.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > ringsOnly+8<<20 {
		t.Fatalf("heap in use %.1f MiB after the clients left, %.1f MiB before they came", float64(ms.HeapInuse)/(1<<20), float64(ringsOnly)/(1<<20))
	}
}
