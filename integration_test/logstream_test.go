package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/instanceportal/portal/internal/tartest"
)

type logEvent struct {
	Type  string   `json:"type"`
	File  string   `json:"file"`
	Lines []string `json:"lines"`
}

// wsLines collects the final lines of file from a log WebSocket until want
// has arrived in order, failing after 10 s.
func wsLines(t *testing.T, ctx context.Context, c *websocket.Conn, file string, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []string
	for {
		if len(got) >= len(want) && strings.Join(got[len(got)-len(want):], "\n") == strings.Join(want, "\n") {
			return
		}
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("websocket: %v; got %q, want %q", err, got, want)
		}
		for _, line := range strings.Split(string(msg), "\n") {
			var e logEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("bad event %q: %v", line, err)
			}
			if e.File == file && (e.Type == "append" || e.Type == "snapshot") {
				got = append(got, e.Lines...)
			}
		}
	}
}

// startLogPortal runs the portal alone; base is its log API on the
// internal port.
func startLogPortal(t *testing.T) (p *Portal, internal int, base string) {
	t.Helper()
	internal = freePort(t)
	p = StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")), PortalOptions{})
	return p, internal, fmt.Sprintf("http://127.0.0.1:%d/api/logs", internal)
}

// dialLogs opens the log WebSocket of the portal's internal port with
// query ("?file=app.log"), closed when the test ends.
func dialLogs(t *testing.T, ctx context.Context, internal int, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws%s", internal, query), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestLogStreamThroughBinary(t *testing.T) {
	p, internal, base := startLogPortal(t)
	logDir := filepath.Join(p.Dir, "log")
	appLog := filepath.Join(logDir, "app.log")
	mustWrite(t, appLog, "before start\n", 0o644)
	waitStatus(t, nil, base+"/files", 200)

	ctx := context.Background()
	ws := dialLogs(t, ctx, internal, "?file=app.log&tail=50")
	wsLines(t, ctx, ws, "app.log", []string{"before start"})

	sse, err := http.Get(base + "/stream?file=app.log")
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	if ct := sse.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("SSE content type %q", ct)
	}
	sseLines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(sse.Body)
		for sc.Scan() {
			sseLines <- sc.Text()
		}
		close(sseLines)
	}()

	f, err := os.OpenFile(appLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\x1b[32mINFO\x1b[0m started <ok>\n")
	_ = f.Close()
	wsLines(t, ctx, ws, "app.log", []string{`<span class="term-fg32">INFO</span> started &lt;ok&gt;`})

	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-sseLines:
			if !ok {
				t.Fatal("SSE stream ended")
			}
			found = strings.HasPrefix(l, "data: ") && strings.Contains(l, `started &lt;ok&gt;`)
		case <-deadline:
			t.Fatal("SSE never delivered the line")
		}
	}

	// Bad names are refused with 400.
	api := &apiClient{t: t, base: base}
	for _, q := range []string{"file=../portal.yaml", "file=%2Fetc%2Fpasswd.log", "file=nope.log"} {
		if code, _ := api.call("GET", "/ws?"+q, "", nil); code != 400 {
			t.Errorf("%s: status %d", q, code)
		}
	}

	// Download round trip: one file, then the directory as .tar.gz.
	code, body := api.call("GET", "/download?file=app.log", "", nil)
	disk, _ := os.ReadFile(appLog)
	if code != 200 || body != string(disk) {
		t.Fatalf("download: %d %q", code, body)
	}
	if err := os.Symlink(filepath.Join(p.Dir, "portal.yaml"), filepath.Join(logDir, "leak.log")); err != nil {
		t.Fatal(err)
	}
	_, archive := api.call("GET", "/download", "", nil)
	names := tartest.Read(t, strings.NewReader(archive))
	if _, leaked := names["leak.log"]; leaked || names["app.log"] != string(disk) {
		t.Fatalf("archive: %q", names)
	}
}

// log-tee writes the raw portal log (which the portal streams), the plain
// log and stdout.
func TestLogTeeThroughBinary(t *testing.T) {
	p, internal, base := startLogPortal(t)
	waitStatus(t, nil, base+"/files", 200)
	ctx := context.Background()
	ws := dialLogs(t, ctx, internal, "")

	portalLog := filepath.Join(p.Dir, "log", "tee.log")
	cmd := exec.Command(caddyBin, "portal", "log-tee", portalLog)
	cmd.Stdin = strings.NewReader("\x1b[31merror\x1b[0m here\r\n 50%\r100%\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("log-tee: %v", err)
	}
	if string(out) != "error here\n 50%\n100%\n" {
		t.Fatalf("stdout %q", out)
	}
	raw, _ := os.ReadFile(portalLog)
	plain, _ := os.ReadFile(filepath.Join(p.Dir, "tee.log"))
	if string(raw) != "\x1b[31merror\x1b[0m here\r\n 50%\r100%\n" || string(plain) != string(out) {
		t.Fatalf("raw %q plain %q", raw, plain)
	}
	wsLines(t, ctx, ws, "tee.log", []string{`<span class="term-fg31">error</span> here`, "100%"})
}

// The watcher, tailers and rings are shared across reloads: an open
// WebSocket keeps streaming through `caddy reload`, and reloads leak no
// inotify or file descriptors.
func TestLogStreamSurvivesReload(t *testing.T) {
	p, internal, base := startLogPortal(t)
	appLog := filepath.Join(p.Dir, "log", "app.log")
	mustWrite(t, appLog, "one\n", 0o644)
	waitStatus(t, nil, base+"/files", 200)
	ctx := context.Background()
	ws := dialLogs(t, ctx, internal, "?file=app.log")
	wsLines(t, ctx, ws, "app.log", []string{"one"})

	fds := func() int {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	reload := func() {
		t.Helper()
		if out, err := p.Reload("--force"); err != nil {
			t.Fatalf("reload: %v\n%s", err, out)
		}
	}
	reload()
	before := fds()
	for range 3 {
		reload()
		// Use the new config's handler, so that a service not shared
		// across reloads would open its own inotify and file descriptors.
		c := dialLogs(t, ctx, internal, "?file=app.log")
		wsLines(t, ctx, c, "app.log", []string{"one"})
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	appendFile(t, appLog, "after reloads\n")
	wsLines(t, ctx, ws, "app.log", []string{"after reloads"})
	// A new client after the reloads sees the ring kept from before them.
	ws2 := dialLogs(t, ctx, internal, "?file=app.log")
	wsLines(t, ctx, ws2, "app.log", []string{"one", "after reloads"})
	if after := fds(); after > before+2 {
		t.Fatalf("file descriptors grew across 3 reloads: %d -> %d", before, after)
	}
}

// The log API through the real binary: refusals say why (issue 13), the
// file list says what is followed (issue 14), 24-bit colour arrives as
// classes (issue 13), and ?all=1 archives the portal logs plus the clean
// copies log-tee writes one directory up (issue 10).
func TestLogStreamAPIThroughBinary(t *testing.T) {
	p, internal, base := startLogPortal(t)
	waitStatus(t, nil, base+"/files", 200)
	api := &apiClient{t: t, base: base}

	for q, want := range map[string]string{
		"/stream?file=nonexist.log": `file "nonexist.log" does not exist`,
		"/ws?file=..%2Fportal.yaml": `file "../portal.yaml" must be a bare name, without a directory`,
		"/download?file=x.txt":      `file "x.txt" must end in .log`,
		"/stream?tail=-5":           `tail="-5": want a number from 0 to 5000`,
	} {
		code, text := api.call("GET", q, "", nil)
		var body struct{ Error string }
		err := json.Unmarshal([]byte(text), &body)
		if code != 400 || err != nil || body.Error != want {
			t.Errorf("%s: %d %q (%v), want 400 %q", q, code, body.Error, err, want)
		}
	}

	ctx := context.Background()
	ws := dialLogs(t, ctx, internal, "?tail=0")
	cmd := exec.Command(caddyBin, "portal", "log-tee", filepath.Join(p.Dir, "log", "colour.log"))
	cmd.Stdin = strings.NewReader("\x1b[38;2;255;136;0morange\x1b[0m\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("log-tee: %v %s", err, out)
	}
	wsLines(t, ctx, ws, "colour.log", []string{`<span class="term-fgt-ff8800">orange</span>`})

	var files struct {
		Files []struct {
			Name     string
			Followed bool
		}
		MaxFiles int `json:"max_files"`
	}
	if api.getJSON("/files", &files); files.MaxFiles != 256 || len(files.Files) != 1 || !files.Files[0].Followed {
		t.Fatalf("files: %+v", files)
	}

	_, archive := api.call("GET", "/download?all=1", "", nil)
	got := tartest.Read(t, strings.NewReader(archive))
	// The portal directory's files under log/ (its name), log-tee's clean
	// copy at the top; portal.yaml beside them is not a *.log file.
	if len(got) != 2 || got["log/colour.log"] != "\x1b[38;2;255;136;0morange\x1b[0m\n" || got["colour.log"] != "orange\n" {
		t.Fatalf("archive: %q", got)
	}
}

// A fixed client load keeps the process within stated bounds (issue 14,
// items 4 and 5): 300 log files of 64 KiB, ten WebSocket clients asking
// for tail=5000 of every file at once and reading them slowly. At most 256
// files are open, each client's snapshot stays within snapshot_bytes, and
// the process's peak RSS (VmHWM, the executable's resident pages included)
// stays under 192 MiB (about 165 MiB measured). Before the bounds, one such
// client over 40 files took the process to 282 MB.
func TestLogStreamBoundsThroughBinary(t *testing.T) {
	p, internal, base := startLogPortal(t)
	logDir := filepath.Join(p.Dir, "log")
	chunk := strings.Repeat(strings.Repeat("w", 100)+"\n", 650) // 64 KiB
	for i := range 300 {
		mustWrite(t, filepath.Join(logDir, fmt.Sprintf("b%03d.log", i)), chunk, 0o644)
	}
	waitStatus(t, nil, base+"/files", 200)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws?tail=5000", internal), nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			// Read until the snapshot has stopped coming for a second.
			lines := 0
			for {
				rctx, rcancel := context.WithTimeout(ctx, time.Second)
				_, msg, err := c.Read(rctx)
				rcancel()
				if err != nil && ctx.Err() == nil && lines > 0 {
					break
				}
				if err != nil {
					errs <- fmt.Errorf("after %d lines: %w", lines, err)
					return
				}
				lines += strings.Count(string(msg), `"w`)
				time.Sleep(2 * time.Millisecond) // a slow reader
			}
			// snapshot_bytes (4 MiB) bounds what one client gets.
			if lines < 20000 || lines*(100+32) > 4<<20 {
				errs <- fmt.Errorf("snapshot of %d lines", lines)
				return
			}
			errs <- nil
		}()
	}
	status := func(field string) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
				return kb << 10
			}
		}
		return 0
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("client: %v", err)
		}
	}
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
	open := 0
	for _, e := range entries {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.Pid(), e.Name())); err == nil && strings.HasPrefix(target, logDir+"/") {
			open++
		}
	}
	hwm := status("VmHWM")
	t.Logf("peak RSS %.1f MiB (now %.1f MiB), %d log files open of 300", float64(hwm)/(1<<20), float64(status("VmRSS"))/(1<<20), open)
	if open > 256 {
		t.Errorf("%d log files open, max_files 256", open)
	}
	if hwm > 192<<20 {
		t.Errorf("peak RSS %.1f MiB, bound 192 MiB", float64(hwm)/(1<<20))
	}
}
