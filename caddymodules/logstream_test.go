package caddymodules

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/logstream"
)

func TestLogStreamCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`logstream /var/log/portal {
		ring_lines 500
		block_lines 10
		poll_interval 100ms
		force_polling
		allowed_origins *.trycloudflare.com example.com
		ping_interval 5s
	}`)
	var h LogStream
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.Dir != "/var/log/portal" || h.RingLines != 500 || h.BlockLines != 10 || !h.ForcePolling ||
		time.Duration(h.PollInterval) != 100*time.Millisecond || len(h.AllowedOrigins) != 2 || time.Duration(h.PingInterval) != 5*time.Second {
		t.Fatalf("parsed %+v", h)
	}

	bad := map[string]string{
		"two args":        `logstream /a /b`,
		"unknown option":  "logstream {\n bogus 1\n}",
		"duplicate":       "logstream {\n ring_lines 1\n ring_lines 2\n}",
		"negative":        "logstream {\n ring_lines -1\n}",
		"not a number":    "logstream {\n queue many\n}",
		"bad duration":    "logstream {\n ping_interval soon\n}",
		"dir twice":       "logstream /a {\n dir /b\n}",
		"polling arg":     "logstream {\n force_polling yes\n}",
		"origins missing": "logstream {\n allowed_origins\n}",
	}
	for name, in := range bad {
		var h LogStream
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

func provisionLogStream(t *testing.T, h *LogStream) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLogStreamServeHTTP(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte("hello <b>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &LogStream{Dir: dir}
	provisionLogStream(t, h)
	defer h.Cleanup()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { t.Fatal("next called"); return nil })

	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/logs/files", nil), next); err != nil {
		t.Fatal(err)
	}
	var files struct{ Files []logstream.FileInfo }
	if err := json.Unmarshal(rec.Body.Bytes(), &files); err != nil || len(files.Files) != 1 || files.Files[0].Name != "app.log" || files.Files[0].Size != 10 {
		t.Fatalf("files: %v %s", err, rec.Body.String())
	}

	for _, target := range []string{"/api/logs/ws?file=../etc/passwd.log", "/api/logs/stream?file=%2Fetc%2Fx.log", "/api/logs/download?file=a%00.log", "/api/logs/stream?file=missing.log", "/api/logs/stream?tail=lots"} {
		err := h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil), next)
		var he caddyhttp.HandlerError
		if !errorsAs(err, &he) || he.StatusCode != http.StatusBadRequest || he.Err == nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	err := h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/logs/files", nil), next)
	var he caddyhttp.HandlerError
	if !errorsAs(err, &he) || he.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v", err)
	}

	// SSE through ServeHTTP: the snapshot arrives, then the stream ends
	// cleanly (no error) when the client goes away.
	ctx, cancel := context.WithCancel(context.Background())
	rec = httptest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		done <- h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/logs/stream?file=app.log", nil).WithContext(ctx), next)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("client disconnect reported as %v", err)
	}
	body := rec.Body.String()
	if !strings.HasPrefix(body, "retry: ") || !strings.Contains(body, `"lines":["hello &lt;b&gt;"]`) {
		t.Fatalf("SSE body %q", body)
	}
}

// Handlers of the same directory share one Service, which survives a
// reload (new config provisioned before the old is cleaned up) and stops
// with the last one.
func TestLogStreamSharedAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	old := &LogStream{Dir: dir}
	provisionLogStream(t, old)
	fresh := &LogStream{Dir: dir}
	provisionLogStream(t, fresh)
	if old.handler.Svc != fresh.handler.Svc {
		t.Fatal("two handlers for one directory got two services")
	}
	svc := fresh.handler.Svc
	st := svc.Open(nil, 10, 8)
	defer st.Close()
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := st.Next(ctx, nil, 1); err != context.DeadlineExceeded {
		t.Fatalf("service stopped by the old config's cleanup: %v", err)
	}
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(context.Background(), nil, 1); err == nil || err == context.DeadlineExceeded {
		t.Fatalf("service still running after the last cleanup: %v", err)
	}
	if err := fresh.Cleanup(); err != nil {
		t.Fatal("second cleanup:", err)
	}
}

func errorsAs(err error, target *caddyhttp.HandlerError) bool {
	he, ok := err.(caddyhttp.HandlerError)
	if ok {
		*target = he
	}
	return ok
}
