package logstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/tartest"
	"github.com/instanceportal/portal/internal/testwait"
)

// logsWS is the address of srv's log WebSocket.
func logsWS(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/logs/ws"
}

// dialLogs opens srv's log WebSocket with query; the test fails if it
// cannot. The caller closes it.
func dialLogs(ctx context.Context, t *testing.T, srv *httptest.Server, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, logsWS(srv)+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testHandler(t *testing.T, svc *Service, cfg Config) *httptest.Server {
	t.Helper()
	h := NewHandler(svc, cfg, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// A line written the moment the client holds the handshake's answer
// reaches it, even with tail=0: the stream's cut (what counts as history)
// is taken before the 101. It used to be taken after, and a line written
// in between counted as history, of which tail=0 shows nothing; a test
// that wrote at once under load lost its first line. The first dial finds
// the file new, the later ones existing.
func TestWebSocketLineWrittenOnceConnectedArrives(t *testing.T) {
	svc, dir := newTestService(t, false)
	srv := testHandler(t, svc, Config{})
	for i := range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c := dialLogs(ctx, t, srv, "?tail=0")
		line := fmt.Sprintf("line %d", i)
		appendFile(t, filepath.Join(dir, "now.log"), line+"\n")
		for arrived := false; !arrived; {
			_, msg, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("dial %d: %q written once connected never came: %v", i, line, err)
			}
			for _, b := range strings.Split(string(msg), "\n") {
				var e Event
				if err := json.Unmarshal([]byte(b), &e); err != nil {
					t.Fatalf("bad event %q: %v", b, err)
				}
				arrived = arrived || (e.File == "now.log" && e.Type == "append" && slices.Contains(e.Lines, line))
			}
		}
		c.CloseNow()
		cancel()
	}
}

// A WebSocket client that stops reading is dropped once a write has been
// stuck for WriteTimeout; the handler returns instead of blocking forever.
func TestWebSocketStalledWriterIsDropped(t *testing.T) {
	svc, dir := newTestService(t, false)
	h := NewHandler(svc, Config{WriteTimeout: confdecl.Duration(300 * time.Millisecond), QueueBytes: 1 << 30, PingInterval: confdecl.Duration(time.Hour)}, nil)
	returned := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		returned <- time.Now()
	}))
	defer srv.Close()

	appendFile(t, filepath.Join(dir, "big.log"), "start\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialLogs(ctx, t, srv, "?file=big.log&tail=0")
	defer c.CloseNow()
	// Never read: loopback socket buffers hold a few MB, so write far more.
	// Each append stays under catch_up_bytes, so the tailer reads it all.
	line := strings.Repeat("x", 60<<10) + "\n"
	var chunk strings.Builder
	for range 12 {
		chunk.WriteString(line)
	}
	start := time.Now()
	for i := 0; i < 200; i++ { // 200 × 720 KiB, bounded
		appendFile(t, filepath.Join(dir, "big.log"), chunk.String())
		select {
		case at := <-returned:
			t.Logf("handler returned %v after the writes began", at.Sub(start).Round(time.Millisecond))
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case at := <-returned:
		t.Logf("handler returned %v after the writes began", at.Sub(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still blocked on a client that reads nothing")
	}
}

// Every refusal carries a JSON body that says what was wrong (issue 13).
func TestBadRequestsSayWhy(t *testing.T) {
	svc, dir := newTestService(t, true)
	appendFile(t, filepath.Join(dir, "ok.log"), "ok\n")
	if err := os.Mkdir(filepath.Join(dir, "sub.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "ok.log"), filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	srv := testHandler(t, svc, Config{})
	for _, tc := range []struct {
		method, target string
		status         int
		want           string
	}{
		{"GET", "/api/logs/stream?file=nonexist.log", 400, `file "nonexist.log" does not exist`},
		{"GET", "/api/logs/ws?file=nonexist.log", 400, `file "nonexist.log" does not exist`},
		{"GET", "/api/logs/download?file=nonexist.log", 400, `file "nonexist.log" does not exist`},
		{"GET", "/api/logs/stream?file=..%2Fportal.yaml", 400, `file "../portal.yaml" must be a bare name, without a directory`},
		{"GET", "/api/logs/stream?file=%2Fetc%2Fpasswd.log", 400, `file "/etc/passwd.log" must be a bare name`},
		{"GET", "/api/logs/stream?file=notes.txt", 400, `file "notes.txt" must end in .log`},
		{"GET", "/api/logs/stream?file=.hidden.log", 400, `file ".hidden.log" must not start with a dot`},
		{"GET", "/api/logs/stream?file=a%00.log", 400, `file "a\x00.log" has a control character`},
		{"GET", "/api/logs/stream?file=", 400, `file name is empty`},
		{"GET", "/api/logs/stream?file=link.log", 400, `file "link.log" is not a regular file`},
		{"GET", "/api/logs/download?file=sub.log", 400, `file "sub.log" is not a regular file`},
		{"GET", "/api/logs/stream?tail=lots", 400, `tail="lots": want a number from 0 to 5000`},
		{"GET", "/api/logs/ws?tail=-1", 400, `tail="-1": want a number from 0 to 5000`},
		{"GET", "/api/logs/download?all=maybe", 400, `all="maybe": want 1, true, 0 or false`},
		{"POST", "/api/logs/files", 405, `method POST not allowed`},
		{"GET", "/api/logs/nothing", 404, `no log endpoint "nothing"`},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.target, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || !strings.Contains(body.Error, tc.want) {
			t.Errorf("%s %s: %d %q (%v), want %d with %q", tc.method, tc.target, resp.StatusCode, body.Error, err, tc.status, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", tc.target, ct)
		}
	}
}

// Concurrent first requests on one handler share settings resolved once at
// construction (issue 11; with -race this failed when defaults were filled
// in per request).
func TestHandlerConcurrentFirstRequests(t *testing.T) {
	svc, dir := newTestService(t, true)
	appendFile(t, filepath.Join(dir, "app.log"), "x\n")
	h := NewHandler(svc, Config{}, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/logs/stream?file=app.log", nil).WithContext(ctx))
		}()
	}
	wg.Wait()
}

// /files says which files are followed; at most max_files are.
func TestFilesShowFollowed(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i := range 6 {
		p := filepath.Join(dir, "f"+itoa(i)+".log")
		appendFile(t, p, "x\n")
		// f5 is the most recently written, f0 the least.
		at := now.Add(time.Duration(i-10) * time.Minute)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	svc := NewService(Config{Dir: dir, MaxFiles: 3, ForcePolling: true, PollInterval: confdecl.Duration(time.Hour)}, nil)
	defer svc.Close()
	srv := testHandler(t, svc, Config{})
	resp, err := http.Get(srv.URL + "/api/logs/files")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Files    []FileInfo
		MaxFiles int `json:"max_files"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || len(body.Files) != 6 || body.MaxFiles != 3 {
		t.Fatalf("files: %v %+v", err, body)
	}
	var followed []string
	for _, f := range body.Files {
		if f.Followed {
			followed = append(followed, f.Name)
		}
	}
	if strings.Join(followed, ",") != "f3.log,f4.log,f5.log" {
		t.Fatalf("followed %q, want the three most recently written", followed)
	}
}

// ?all=1 archives the portal directory under portal/ and the clean
// *.log files of plain_dir (log-tee's copies), through the same guards:
// regular files only, no symlink followed, no sub-directory walked.
func TestDownloadAll(t *testing.T) {
	plain := t.TempDir()
	dir := filepath.Join(plain, "portal")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "app.log"), "\x1b[32mraw\x1b[0m\n")
	appendFile(t, filepath.Join(dir, "app.log.1"), "rotated\n")
	appendFile(t, filepath.Join(plain, "app.log"), "clean\n")
	appendFile(t, filepath.Join(plain, "notes.txt"), "not a log\n")
	secret := filepath.Join(t.TempDir(), "secret.log")
	appendFile(t, secret, "secret\n")
	if err := os.Symlink(secret, filepath.Join(plain, "leak.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(plain, "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(plain, "deep", "nested.log"), "nested\n")

	svc := NewService(Config{Dir: dir, ForcePolling: true}, nil)
	defer svc.Close()
	srv := testHandler(t, svc, Config{PlainDir: plain})
	resp, err := http.Get(srv.URL + "/api/logs/download?all=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename=logs-`) || !strings.HasSuffix(cd, `.tar.gz`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	got := tartest.Read(t, resp.Body)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "app.log portal/app.log portal/app.log.1" ||
		got["app.log"] != "clean\n" || got["portal/app.log"] != "\x1b[32mraw\x1b[0m\n" {
		t.Fatalf("archive: %q", got)
	}

	// Without all: the portal directory alone, at the top (as before).
	resp2, err := http.Get(srv.URL + "/api/logs/download")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if got := tartest.Read(t, resp2.Body); len(got) != 2 || got["app.log"] == "" {
		t.Fatalf("portal archive: %q", got)
	}

	// A missing plain_dir is skipped, not an error.
	srv3 := testHandler(t, svc, Config{PlainDir: filepath.Join(plain, "missing")})
	resp3, err := http.Get(srv3.URL + "/api/logs/download?all=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp3.Body.Close()
	if got := tartest.Read(t, resp3.Body); len(got) != 2 || got["portal/app.log"] == "" {
		t.Fatalf("archive without plain_dir: %q", got)
	}
}

// TestMaxClients: with max_clients streams open (WebSocket and SSE count
// together), one more gets 503 with Retry-After and a message naming the
// setting; once a stream closes, a newcomer is served again.
func TestMaxClients(t *testing.T) {
	svc, dir := newTestService(t, false)
	appendFile(t, filepath.Join(dir, "a.log"), "one\n")
	srv := testHandler(t, svc, Config{MaxClients: 2, PingInterval: confdecl.Duration(time.Hour)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := dialLogs(ctx, t, srv, "?tail=0")
	defer ws.CloseNow()
	sseCtx, sseCancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(sseCtx, "GET", srv.URL+"/api/logs/stream?tail=0", nil)
	sse, err := http.DefaultClient.Do(req)
	if err != nil || sse.StatusCode != 200 {
		t.Fatalf("second stream: %v %v", sse, err)
	}
	over, err := http.Get(srv.URL + "/api/logs/stream?tail=0")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	_ = json.NewDecoder(over.Body).Decode(&body)
	over.Body.Close()
	if over.StatusCode != http.StatusServiceUnavailable || over.Header.Get("Retry-After") != "10" || !strings.Contains(body.Error, "max_clients") {
		t.Fatalf("third stream: %d Retry-After %q %q, want 503, 10 and a message naming max_clients", over.StatusCode, over.Header.Get("Retry-After"), body.Error)
	}
	if _, resp, err := websocket.Dial(ctx, logsWS(srv)+"?tail=0", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third stream as WebSocket: %v, want 503", err)
	}
	sseCancel()
	sse.Body.Close()
	// The slot comes back once the handler has seen the client go.
	testwait.Eventually(t, 5*time.Second, 50*time.Millisecond, "a stream slot back after a client left", func() bool {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/logs/stream?tail=0", nil)
		short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancelShort()
		resp, err := http.DefaultClient.Do(req.WithContext(short))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
