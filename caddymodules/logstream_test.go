package caddymodules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/logstream"
	"github.com/instanceportal/portal/portalconfig"
)

// Every option of logstream.Config is a Caddyfile option under its JSON
// name, parsed by the shared walker.
func TestLogStreamCaddyfile(t *testing.T) {
	const input = `logstream /var/log/portal {
		plain_dir /var/log
		max_files 64
		ring_lines 500
		ring_bytes 1048576
		total_ring_bytes 8388608
		catch_up_bytes 65536
		block_lines 10
		max_line_bytes 4096
		poll_interval 100ms
		force_polling
		allowed_origins *.trycloudflare.com example.com
		queue_bytes 262144
		snapshot_bytes 524288
		max_clients 8
		flush_interval 5ms
		write_timeout 3s
		ping_interval 5s
	}`
	d := caddyfile.NewTestDispenser(input)
	var h LogStream
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := logstream.Config{
		Dir: "/var/log/portal", PlainDir: "/var/log", MaxFiles: 64, RingLines: 500, RingBytes: 1 << 20,
		TotalRingBytes: 8 << 20, CatchUpBytes: 64 << 10, BlockLines: 10, MaxLineBytes: 4096,
		PollInterval: confdecl.Duration(100 * time.Millisecond), ForcePolling: true,
		AllowedOrigins: []string{"*.trycloudflare.com", "example.com"}, QueueBytes: 256 << 10,
		SnapshotBytes: 512 << 10, MaxClients: 8, FlushInterval: confdecl.Duration(5 * time.Millisecond),
		WriteTimeout: confdecl.Duration(3 * time.Second), PingInterval: confdecl.Duration(5 * time.Second),
	}
	if !reflect.DeepEqual(h.Config, want) {
		t.Fatalf("parsed\n %+v\nwant\n %+v", h.Config, want)
	}
	// Every field of the Config appears above: a new setting gets a line.
	for _, f := range confdecl.Fields(logstream.Config{}) {
		if f.JSON != "dir" && !strings.Contains(input, "\t\t"+f.JSON+" ") && !strings.Contains(input, "\t\t"+f.JSON+"\n") {
			t.Errorf("option %s missing from this test", f.JSON)
		}
	}

	var dirOnly LogStream
	if parseCaddyfile(t, &dirOnly, "logstream {\n dir /x\n}"); dirOnly.Dir != "/x" {
		t.Fatalf("dir option: %q", dirOnly.Dir)
	}

	for name, tc := range map[string]struct{ in, want string }{
		"two args":        {`logstream /a /b`, "wrong argument count"},
		"unknown option":  {"logstream {\n bogus 1\n}", `logstream: unrecognized option "bogus", at Testfile:2`},
		"old queue":       {"logstream {\n queue 256\n}", `logstream: unrecognized option "queue"`},
		"duplicate":       {"logstream {\n ring_lines 1\n ring_lines 2\n}", `logstream: duplicate option "ring_lines", at Testfile:3`},
		"negative":        {"logstream {\n ring_lines -1\n}", `logstream: ring_lines "-1": want an integer of at least 0`},
		"not a number":    {"logstream {\n queue_bytes many\n}", `logstream: queue_bytes "many": want an integer`},
		"bad duration":    {"logstream {\n ping_interval soon\n}", `logstream: ping_interval "soon": want a duration such as 500ms, 2s or 7d`},
		"dir twice":       {"logstream /a {\n dir /b\n}", "logstream: directory given twice (argument and dir)"},
		"dir duplicate":   {"logstream {\n dir /a\n dir /b\n}", `logstream: duplicate option "dir"`},
		"polling arg":     {"logstream {\n force_polling yes\n}", "logstream: force_polling: want no argument, true or false"},
		"origins missing": {"logstream {\n allowed_origins\n}", "wrong argument count"},
	} {
		t.Run(name, func(t *testing.T) { refuseCaddyfile(t, new(LogStream), tc.in, tc.want) })
	}
}

// Validate names the JSON field of each bad setting; Provision refuses
// them before taking a Service.
func TestLogStreamValidateNamesFields(t *testing.T) {
	for _, tc := range []struct {
		cfg  logstream.Config
		want string
	}{
		{logstream.Config{RingLines: -1}, "ring_lines: must be at least 1, got -1"},
		{logstream.Config{MaxFiles: -3}, "max_files: must be at least 1, got -3"},
		{logstream.Config{BlockLines: 1}, "block_lines: must be at least 2, got 1"},
		{logstream.Config{RingBytes: 100}, "ring_bytes: must be at least 1024, got 100"},
		{logstream.Config{QueueBytes: 10}, "queue_bytes: must be at least 1024, got 10"},
		{logstream.Config{SnapshotBytes: -1}, "snapshot_bytes: must be at least 1024, got -1"},
		{logstream.Config{TotalRingBytes: 1}, "total_ring_bytes: must be at least 1024, got 1"},
		{logstream.Config{CatchUpBytes: 1}, "catch_up_bytes: must be at least 1024, got 1"},
		{logstream.Config{MaxLineBytes: 8}, "max_line_bytes: must be at least 64, got 8"},
		{logstream.Config{PollInterval: confdecl.Duration(time.Millisecond)}, "poll_interval: must be at least 10ms, got 1ms"},
		{logstream.Config{WriteTimeout: confdecl.Duration(-time.Second)}, "write_timeout: must be at least 10ms, got -1s"},
		{logstream.Config{PingInterval: confdecl.Duration(time.Microsecond)}, "ping_interval: must be at least 10ms"},
		{logstream.Config{FlushInterval: confdecl.Duration(-time.Millisecond)}, "flush_interval: must not be negative, got -1ms"},
		{logstream.Config{FlushInterval: confdecl.Duration(2 * time.Second)}, "flush_interval: must be at most 1s"},
		{logstream.Config{AllowedOrigins: []string{""}}, "allowed_origins: empty pattern"},
	} {
		h := &LogStream{Config: tc.cfg}
		h.Dir = t.TempDir()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "logstream: "+tc.want) {
			t.Errorf("%+v: Provision error %v, want %q", tc.cfg, err, tc.want)
		}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate error %v, want %q", tc.cfg, err, tc.want)
		}
		if err := h.Cleanup(); err != nil {
			t.Errorf("cleanup after a failed provision: %v", err)
		}
	}
	if err := logstream.Default().Check(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

// provisionLogStream is a provisioned LogStream over a temporary
// directory holding app.log with the text appLog.
func provisionLogStream(t *testing.T, appLog string) *LogStream {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte(appLog), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &LogStream{}
	h.Dir = dir
	provision(t, h)
	return h
}

func TestLogStreamServeHTTP(t *testing.T) {
	h := provisionLogStream(t, "hello <b>\n")
	next := nextNotCalled

	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/logs/files", nil), next); err != nil {
		t.Fatal(err)
	}
	var files struct{ Files []logstream.FileInfo }
	if err := json.Unmarshal(rec.Body.Bytes(), &files); err != nil || len(files.Files) != 1 || files.Files[0].Name != "app.log" || files.Files[0].Size != 10 || !files.Files[0].Followed {
		t.Fatalf("files: %v %s", err, rec.Body.String())
	}

	for target, want := range map[string]string{
		"/api/logs/ws?file=../etc/passwd.log":  `file \"../etc/passwd.log\" must be a bare name, without a directory`,
		"/api/logs/stream?file=%2Fetc%2Fx.log": `file \"/etc/x.log\" must be a bare name`,
		"/api/logs/download?file=a%00.log":     `file \"a\\x00.log\" has a control character`,
		"/api/logs/stream?file=missing.log":    `file \"missing.log\" does not exist`,
		"/api/logs/stream?tail=lots":           `tail=\"lots\": want a number from 0 to 5000`,
	} {
		rec := httptest.NewRecorder()
		err := h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil), next)
		if err != nil || rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %v %d %s, want 400 with %s", target, err, rec.Code, rec.Body.String(), want)
		}
	}
	rec = httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/logs/files", nil), next); err != nil || rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %v %d", err, rec.Code)
	}

	// SSE through ServeHTTP: the snapshot arrives, then the stream ends
	// cleanly (no error) when the client goes away.
	ctx, cancel := context.WithCancel(context.Background())
	live := &lockedRecorder{rec: httptest.NewRecorder()}
	done := make(chan error, 1)
	go func() {
		done <- h.ServeHTTP(live, httptest.NewRequest("GET", "/api/logs/stream?file=app.log", nil).WithContext(ctx), next)
	}()
	testwait.Poll(10*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(live.body(), "hello") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("client disconnect reported as %v", err)
	}
	body := live.body()
	if !strings.HasPrefix(body, "retry: ") || !strings.Contains(body, `"lines":["hello &lt;b&gt;"]`) {
		t.Fatalf("SSE body %q", body)
	}
}

// Handlers of the same directory share one Service, which survives a
// reload (new config provisioned before the old is cleaned up) and stops
// with the last one.
func TestLogStreamSharedAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	old := &LogStream{}
	old.Dir = dir
	provision(t, old)
	fresh := &LogStream{}
	fresh.Dir = dir
	fresh.QueueBytes = 4096 // per-client settings do not split the Service
	provision(t, fresh)
	if old.handler.Service() != fresh.handler.Service() {
		t.Fatal("two handlers for one directory got two services")
	}
	svc := fresh.handler.Service()
	st := svc.Open(nil, logstream.StreamOptions{Tail: 10})
	defer st.Close()
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := st.Next(ctx, nil); err != context.DeadlineExceeded {
		t.Fatalf("service stopped by the old config's cleanup: %v", err)
	}
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(context.Background(), nil); err == nil || err == context.DeadlineExceeded {
		t.Fatalf("service still running after the last cleanup: %v", err)
	}
	if err := fresh.Cleanup(); err != nil {
		t.Fatal("second cleanup:", err)
	}
}

// Concurrent first requests on a freshly provisioned handler must not race
// (issue 11: defaults used to be filled in on every request, writing the
// handler's fields from each request's goroutine). Run with -race.
func TestLogStreamConcurrentFirstRequests(t *testing.T) {
	h := provisionLogStream(t, "x\n")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_ = h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/logs/stream?file=app.log", nil).WithContext(ctx), nextNotCalled)
		})
	}
	wg.Wait()
}

// The pooled Service logs through the newest config's logger (issue 12):
// after a reload has closed the old config's log file, a file the Service
// starts following is reported in the new config's log. With the first
// config's logger kept, the line went to a closed file and was lost.
func TestLogStreamServiceLogsThroughCurrentConfig(t *testing.T) {
	dir := t.TempDir()
	logs := t.TempDir()
	port := testwait.FreePort(t)
	config := func(logFile string) []byte {
		return []byte(fmt.Sprintf(`{
			"admin": {"disabled": true},
			"logging": {"logs": {"default": {"level": "DEBUG", "writer": {"output": "file", "filename": %q}, "encoder": {"format": "json"}}}},
			"apps": {"http": {"servers": {"logs": {
				"listen": ["127.0.0.1:%d"],
				"routes": [{"handle": [{"handler": "logstream", "dir": %q, "force_polling": true, "poll_interval": "20ms"}]}]
			}}}}
		}`, logFile, port, dir))
	}
	first, second := filepath.Join(logs, "first.log"), filepath.Join(logs, "second.log")
	loadConfig(t, config(first))
	get := func() { roundTrip(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api/logs/files", port), "") }
	get() // starts the Service
	if err := caddy.Load(config(second), true); err != nil {
		t.Fatal(err)
	}
	get()
	if err := os.WriteFile(filepath.Join(dir, "later.log"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b []byte
	if !testwait.Poll(5*time.Second, 0, func() bool {
		b, _ = os.ReadFile(second)
		return bytes.Contains(b, []byte(`"following log file"`)) && bytes.Contains(b, []byte(`"later.log"`))
	}) {
		a, _ := os.ReadFile(first)
		t.Fatalf("the Service did not log through the new config's logger\nnew log:\n%s\nold log:\n%s", b, a)
	}
	if a, _ := os.ReadFile(first); bytes.Contains(a, []byte(`"later.log"`)) {
		t.Fatalf("the old config's log got the line:\n%s", a)
	}
}

// docs/logstream.md shows the adapter's logstream route, generated from
// logstreamRoute (go test ./caddymodules -run LogStreamDocRoute -update).
func TestLogStreamDocRoute(t *testing.T) {
	var warns []caddyconfig.Warning
	plan := testPlan(t, "localhost:1111:11111:/:Instance Portal", portalconfig.Environ{})
	raw, err := json.Marshal(logstreamRoute(plan, &warns))
	if err != nil || len(warns) > 0 {
		t.Fatal(err, warns)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	block := "```json\n" + pretty.String() + "\n```\n"
	const doc = "../docs/logstream.md"
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := confdecl.ReplaceBetween(string(text), "logstream-route", block)
	if err != nil {
		t.Fatal(err)
	}
	if want == string(text) {
		return
	}
	if *updateGolden {
		if err := os.WriteFile(doc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the logstream route differs from logstreamRoute; run go test ./caddymodules -run LogStreamDocRoute -update", doc)
}

// lockedRecorder lets a test read what a streaming handler has written so
// far while the handler is still writing (httptest.ResponseRecorder alone
// is not safe for that).
type lockedRecorder struct {
	mu  sync.Mutex
	rec *httptest.ResponseRecorder
}

func (l *lockedRecorder) Header() http.Header { return l.rec.Header() }

func (l *lockedRecorder) WriteHeader(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.WriteHeader(code)
}

func (l *lockedRecorder) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Write(b)
}

func (l *lockedRecorder) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.Flush()
}

func (l *lockedRecorder) body() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Body.String()
}
