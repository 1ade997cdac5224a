package logstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/tartest"
)

// client consumes a Stream like the dashboard does and keeps each file's
// final lines and live block; it checks that appends number their lines
// without gaps, and records the order of files across appends.
type client struct {
	t      *testing.T
	st     *Stream
	base   map[string]uint64
	final  map[string][]string
	live   map[string][]string
	kinds  []string
	order  []string // file of each appended line, in arrival order
	revs   []uint64 // rev of each live append, in arrival order
	inSnap bool
}

func newClient(t *testing.T, svc *Service, files []string) *client {
	return newClientOpts(t, svc, files, StreamOptions{Tail: MaxTail})
}

func newClientOpts(t *testing.T, svc *Service, files []string, opts StreamOptions) *client {
	c := &client{t: t, st: svc.Open(files, opts), base: map[string]uint64{}, final: map[string][]string{}, live: map[string][]string{}}
	t.Cleanup(c.st.Close)
	c.snapshot(func(ctx context.Context, emit func([][]byte) error) error { return c.st.Snapshot(ctx, emit) })
	return c
}

func (c *client) snapshot(run func(context.Context, func([][]byte) error) error) {
	c.t.Helper()
	c.inSnap = true
	defer func() { c.inSnap = false }()
	err := run(context.Background(), func(evs [][]byte) error {
		for _, b := range evs {
			c.apply(b)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("snapshot: %v", err)
	}
}

func (c *client) apply(b []byte) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		c.t.Fatalf("bad event %s: %v", b, err)
	}
	c.kinds = append(c.kinds, e.Type)
	switch e.Type {
	case "snapshot":
		c.final[e.File], c.live[e.File] = nil, nil
		c.base[e.File] = *e.Seq
	case "append":
		if want := c.base[e.File] + uint64(len(c.final[e.File])); *e.Seq != want {
			c.t.Fatalf("%s: append seq %d, have lines up to %d", e.File, *e.Seq, want)
		}
		c.final[e.File] = append(c.final[e.File], e.Lines...)
		c.live[e.File] = nil
		for range e.Lines {
			c.order = append(c.order, e.File)
		}
		if !c.inSnap {
			if n := len(c.revs); n > 0 && e.Rev <= c.revs[n-1] {
				c.t.Fatalf("rev %d after %d", e.Rev, c.revs[n-1])
			}
			c.revs = append(c.revs, e.Rev)
		}
	case "update":
		f := c.final[e.File]
		c.final[e.File] = f[:len(f)-e.Reopen]
		c.live[e.File] = e.Lines
	case "reset", "removed":
		c.final[e.File], c.live[e.File] = nil, nil
		c.base[e.File] = 0
	}
}

// next applies one batch (resyncing after a lag).
func (c *client) next(ctx context.Context) error {
	b, err := c.st.Next(ctx, nil)
	if err != nil {
		return err
	}
	if b.Lagged {
		c.snapshot(func(ctx context.Context, emit func([][]byte) error) error { return c.st.Resync(ctx, emit) })
		return nil
	}
	for _, e := range b.Events {
		c.apply(e)
	}
	return nil
}

// until applies events until cond holds or 5 s pass.
func (c *client) until(what string, cond func() bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !cond() {
		if err := c.next(ctx); err != nil {
			c.t.Fatalf("waiting for %s: %v; final=%q live=%q", what, err, c.final, c.live)
		}
	}
}

func (c *client) lines(f string) []string { return append(slices.Clone(c.final[f]), c.live[f]...) }

func newTestService(t *testing.T, polling bool) (*Service, string) {
	return newTestServiceCfg(t, Config{ForcePolling: polling, PollInterval: confdecl.Duration(20 * time.Millisecond)})
}

func newTestServiceCfg(t *testing.T, cfg Config) (*Service, string) {
	dir := t.TempDir()
	cfg.Dir = dir
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	svc := NewService(cfg, nil)
	t.Cleanup(func() { _ = svc.Close() })
	return svc, dir
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
}

func TestTailerEdgeCases(t *testing.T) {
	for _, polling := range []bool{false, true} {
		name := "inotify"
		if polling {
			name = "polling"
		}
		t.Run(name, func(t *testing.T) {
			svc, dir := newTestService(t, polling)
			p := filepath.Join(dir, "app.log")
			appendFile(t, p, "old 1\nold 2\n")
			c := newClient(t, svc, nil)
			if got := c.lines("app.log"); !slices.Equal(got, []string{"old 1", "old 2"}) {
				t.Fatalf("snapshot %q", got)
			}

			// Partial line: live first, final once its newline comes.
			appendFile(t, p, "partial")
			c.until("partial live", func() bool { return slices.Equal(c.live["app.log"], []string{"partial"}) })
			appendFile(t, p, " done\n")
			c.until("partial final", func() bool { return slices.Contains(c.final["app.log"], "partial done") })

			// Binary garbage is shown as replacement characters, no markup.
			appendFile(t, p, "bin \x00\xff\xfe<\x1b]1338;url=/x\x07>\n")
			c.until("garbage", func() bool { return slices.Contains(c.final["app.log"], "bin \uFFFD\uFFFD&lt;&gt;") })

			// A 2 MB line is capped with a marker; the next line is intact.
			appendFile(t, p, strings.Repeat("y", 2<<20)+"\nafter long\n")
			c.until("long line", func() bool { return slices.Contains(c.final["app.log"], "after long") })
			for _, l := range c.final["app.log"] {
				if len(l) > DefaultMaxLineBytes+len(TruncatedMarker) {
					t.Fatalf("line of %d bytes passed", len(l))
				}
			}

			// Truncated in place: reset, then the new content.
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p, "fresh\n")
			c.until("truncate", func() bool { return slices.Equal(c.final["app.log"], []string{"fresh"}) })

			// Replaced (rename away + recreate).
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p, "new file\n")
			c.until("replace", func() bool { return slices.Equal(c.final["app.log"], []string{"new file"}) })

			// A file created later is picked up by an all-files client.
			appendFile(t, filepath.Join(dir, "later.log"), "hello\n")
			c.until("new file", func() bool { return slices.Equal(c.final["later.log"], []string{"hello"}) })

			// Deleted.
			if err := os.Remove(filepath.Join(dir, "later.log")); err != nil {
				t.Fatal(err)
			}
			c.until("removed", func() bool { return slices.Contains(c.kinds, "removed") })
		})
	}
}

// A client that never reads cannot slow the tailer or another client; it
// is told it lagged and gets one snapshot, and is dropped if it keeps
// lagging.
func TestHubStalledClient(t *testing.T) {
	svc, dir := newTestService(t, false)
	p := filepath.Join(dir, "fast.log")
	appendFile(t, p, "start\n")
	fast := newClient(t, svc, []string{"fast.log"})
	stalled := newClientOpts(t, svc, []string{"fast.log"}, StreamOptions{Tail: 10, QueueBytes: 2048}) // never reads until the end

	const n = 5000
	var sb strings.Builder
	for i := range n {
		sb.WriteString("line ")
		sb.WriteString(itoa(i))
		sb.WriteString("\n")
		if i%50 == 49 {
			appendFile(t, p, sb.String())
			sb.Reset()
			// One event per write: the stalled queue must overflow.
			fast.until("batch", func() bool { return len(fast.final["fast.log"]) == i+2 })
		}
	}
	fast.until("all lines", func() bool { return len(fast.final["fast.log"]) == n+1 })
	for i, l := range fast.final["fast.log"][1:] {
		if l != "line "+itoa(i) {
			t.Fatalf("fast client line %d = %q", i, l)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := stalled.st.Next(ctx, nil)
	if err != nil || !b.Lagged {
		t.Fatalf("stalled client: err=%v, batch %+v", err, b)
	}
	// One resync: "lagged", then one snapshot of the last 10 lines.
	var got []string
	var kinds []string
	err = stalled.st.Resync(ctx, func(evs [][]byte) error {
		for _, raw := range evs {
			var e Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, e.Type)
			got = append(got, e.Lines...)
		}
		return nil
	})
	if err != nil || kinds[0] != "lagged" || kinds[1] != "snapshot" || len(got) != 10 || got[9] != "line 4999" {
		t.Fatalf("resync: %v %q %q", err, kinds, got)
	}
	// Lagging again and again ends the stream.
	var last error
	total := n + 1
	for round := 0; round < 3 && last == nil; round++ {
		for range 40 {
			appendFile(t, p, "x\n")
			total++
			fast.until("x", func() bool { return len(fast.final["fast.log"]) == total })
		}
		for range 100 {
			b, last = stalled.st.Next(ctx, nil)
			if last != nil || b.Lagged {
				break
			}
		}
		if last == nil {
			_ = stalled.st.Resync(ctx, func([][]byte) error { return nil })
		}
	}
	if !errors.Is(last, ErrTooSlow) {
		t.Fatalf("repeatedly stalled client not dropped: %v", last)
	}
}

func itoa(i int) string {
	return strings.TrimLeft(string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)}), "0") + map[bool]string{true: "0"}[i == 0]
}

func TestValidateName(t *testing.T) {
	good := []string{"a.log", "jupyter.log", "my app.log", "x.y.log"}
	bad := []string{"", ".log", "../a.log", "/etc/passwd.log", "a/b.log", "a\\b.log", "a\x00.log", "a.txt", ".hidden.log", "a.log\n", "..", "a.log/", "\xff.log"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("%q accepted", n)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a.log", "../x.log", "a\x00.log", "/abs.log", "..\\x.log"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		// Whatever is accepted stays inside the directory and is one name.
		if filepath.Base(name) != name || filepath.Clean(name) != name || filepath.IsAbs(name) || !strings.HasSuffix(name, ".log") || strings.ContainsRune(name, 0) {
			t.Fatalf("accepted %q", name)
		}
		if j := filepath.Join("/var/log/portal", name); filepath.Dir(j) != "/var/log/portal" {
			t.Fatalf("%q escapes: %s", name, j)
		}
	})
}

func TestCheckFileRefusesLinksAndMissing(t *testing.T) {
	svc, dir := newTestService(t, true)
	outside := filepath.Join(t.TempDir(), "secret.log")
	appendFile(t, outside, "secret\n")
	if err := os.Symlink(outside, filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "ok.log"), "ok\n")
	if err := svc.CheckFile("ok.log"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"link.log", "missing.log", "../secret.log"} {
		if err := svc.CheckFile(n); !errors.Is(err, ErrBadName) {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// archiveOf is what WriteTarGz writes of dir: each file's name and content.
func archiveOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteTarGz(pw, root)) }()
	return tartest.Read(t, pr)
}

func TestWriteTarGzRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "a.log"), "alpha\n")
	appendFile(t, filepath.Join(dir, "b.log.1"), "beta\n")
	outside := filepath.Join(t.TempDir(), "secret")
	appendFile(t, outside, "secret\n")
	if err := os.Symlink(outside, filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := archiveOf(t, dir)
	want := map[string]string{"a.log": "alpha\n", "b.log.1": "beta\n"}
	if len(got) != len(want) || got["a.log"] != want["a.log"] || got["b.log.1"] != want["b.log.1"] {
		t.Fatalf("archive %q", got)
	}
}

// A FIFO named *.log: opening it blocked the tailer until a writer came,
// and Service.Close waited on that tailer, so caddy ignored SIGTERM
// (issue 20). The type is now checked after an open that cannot block.
func TestFIFOIsNeverWaitedOn(t *testing.T) {
	svc, dir := newTestService(t, false)
	fifo := filepath.Join(dir, "evil.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() { done <- newTailer(svc, "evil.log", true).step() }()
	select {
	case gone := <-done:
		if !gone {
			t.Error("a FIFO must not be followed")
		}
	case <-time.After(5 * time.Second):
		// Release the old code's blocked open so the test can end.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			_ = w.Close()
		}
		<-done
		t.Fatal("opening a FIFO blocked the tailer")
	}
	if err := svc.CheckFile("evil.log"); !errors.Is(err, ErrBadName) {
		t.Errorf("CheckFile(FIFO) = %v", err)
	}
}

// A hard link in the log directory to a file elsewhere was served (issue
// 20): a link count above one now keeps a file out of the download, the
// archive and the streams.
func TestHardLinksAreNotServed(t *testing.T) {
	svc, dir := newTestService(t, true)
	outside := filepath.Join(t.TempDir(), "shadow")
	appendFile(t, outside, "root:secret-hash\n")
	if err := os.Link(outside, filepath.Join(dir, "hard.log")); err != nil {
		t.Skipf("no hard link across the two temp dirs: %v", err)
	}
	appendFile(t, filepath.Join(dir, "ok.log"), "ok\n")
	if err := svc.CheckFile("hard.log"); !errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("CheckFile(hard link) = %v", err)
	}
	if !newTailer(svc, "hard.log", true).step() {
		t.Error("a hard-linked file must not be followed")
	}
	if got := archiveOf(t, dir); len(got) != 1 || got["ok.log"] != "ok\n" {
		t.Errorf("archive %q, want ok.log only", got)
	}
}
