package integration_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
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

func TestLogStreamThroughBinary(t *testing.T) {
	internal := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")), PortalOptions{})
	base := fmt.Sprintf("http://127.0.0.1:%d/api/logs", internal)
	logDir := filepath.Join(p.Dir, "log")
	appLog := filepath.Join(logDir, "app.log")
	if err := os.WriteFile(appLog, []byte("before start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, nil, base+"/files", 200)

	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?file=app.log&tail=50", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
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
	for _, q := range []string{"file=../portal.yaml", "file=%2Fetc%2Fpasswd.log", "file=nope.log"} {
		resp, err := http.Get(base + "/ws?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d", q, resp.StatusCode)
		}
	}

	// Download round trip: one file, then the directory as .tar.gz.
	resp, err := http.Get(base + "/download?file=app.log")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	disk, _ := os.ReadFile(appLog)
	if resp.StatusCode != 200 || string(body) != string(disk) {
		t.Fatalf("download: %d %q", resp.StatusCode, body)
	}
	if err := os.Symlink(filepath.Join(p.Dir, "portal.yaml"), filepath.Join(logDir, "leak.log")); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(base + "/download")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	names := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names[h.Name] = string(b)
	}
	if _, leaked := names["leak.log"]; leaked || names["app.log"] != string(disk) {
		t.Fatalf("archive: %q", names)
	}
}

// log-tee writes the raw portal log (which the portal streams), the plain
// log and stdout.
func TestLogTeeThroughBinary(t *testing.T) {
	internal := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")), PortalOptions{})
	base := fmt.Sprintf("http://127.0.0.1:%d/api/logs", internal)
	waitStatus(t, nil, base+"/files", 200)
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws", internal), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

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
	internal := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")), PortalOptions{})
	appLog := filepath.Join(p.Dir, "log", "app.log")
	if err := os.WriteFile(appLog, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/api/logs", internal)
	waitStatus(t, nil, base+"/files", 200)
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws?file=app.log", internal), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
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
		if out, err := p.Caddy("reload", "--adapter", "portal_yaml", "--config", p.ConfigPath, "--address", p.AdminAddr, "--force"); err != nil {
			t.Fatalf("reload: %v\n%s", err, out)
		}
	}
	reload()
	before := fds()
	for range 3 {
		reload()
		// Use the new config's handler, so that a service not shared
		// across reloads would open its own inotify and file descriptors.
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws?file=app.log", internal), nil)
		if err != nil {
			t.Fatal(err)
		}
		wsLines(t, ctx, c, "app.log", []string{"one"})
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	appendLine := func(s string) {
		f, err := os.OpenFile(appLog, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(s + "\n")
		_ = f.Close()
	}
	appendLine("after reloads")
	wsLines(t, ctx, ws, "app.log", []string{"after reloads"})
	// A new client after the reloads sees the ring kept from before them.
	ws2, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/api/logs/ws?file=app.log", internal), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.CloseNow()
	wsLines(t, ctx, ws2, "app.log", []string{"one", "after reloads"})
	if after := fds(); after > before+2 {
		t.Fatalf("file descriptors grew across 3 reloads: %d -> %d", before, after)
	}
}
