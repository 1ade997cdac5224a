package integration_test

// Issue 20 through the real binary: the second adversarial round. Each
// test names what it saw on the code before the fix.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCORSNeverOpensThePortal: with CADDY_CORS_ALLOWED_ORIGINS set, a
// credentialed cross-site request to the portal's own port got
// Access-Control-Allow-Origin with credentials (a tunnel created, the logs
// read cross-site). Now only the apps' ports answer CORS, and an entry with
// a trailing "*" (a prefix match before) stops the start with an error
// naming the variable.
func TestCORSNeverOpensThePortal(t *testing.T) {
	be := echoBackend(t)
	const password = "cors-test-secret-4242"
	portalExt, portalInt, app := freePort(t), freePort(t), freePort(t)
	yaml := portalYAML(appYAML("Instance Portal", portalExt, portalInt, "/"), appYAML("App", app, be.Port, "/"))
	p := StartPortal(t, yaml, PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "CADDY_CORS_ALLOWED_ORIGINS": "http://trusted.example",
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	do := func(method string, port int, path string, auth bool) apiReply {
		t.Helper()
		c := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
		if auth {
			c.token = password
		}
		h := map[string]string{"Origin": "http://trusted.example"}
		if method == "OPTIONS" {
			h["Access-Control-Request-Method"] = "POST"
			h["Access-Control-Request-Headers"] = "content-type"
		}
		return c.do(method, path, "", h)
	}
	for _, c := range []struct {
		method, path string
		auth         bool
	}{{"OPTIONS", "/api/tunnels", false}, {"GET", "/api/logs/files", true}, {"GET", "/api/logs/download", true}} {
		if r := do(c.method, portalExt, c.path, c.auth); r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("portal port %s %s: %d with CORS headers %v", c.method, c.path, r.Code, r.Header)
		}
	}
	if r := do("GET", app, "/", true); r.Code != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://trusted.example" {
		t.Errorf("app port: %d %v, want the CORS headers there", r.Code, r.Header)
	}

	// A prefix pattern is refused with the variable named.
	p.Env = append(p.Env, "CADDY_CORS_ALLOWED_ORIGINS=http://trusted.example*")
	out, err := p.Caddy("adapt", "--adapter", "portal_yaml", "--config", p.ConfigPath)
	if err == nil || !strings.Contains(out, `CADDY_CORS_ALLOWED_ORIGINS: \"http://trusted.example*\": a wildcard`) {
		t.Errorf("a trailing * must be refused: err=%v out=%s", err, out)
	}
}

// TestFIFOInLogDirDoesNotBlockStop: a FIFO named *.log created in the log
// directory while the portal runs was opened (blocking) by the watcher,
// and SIGTERM then waited on it forever. Now the process stops at once.
func TestFIFOInLogDirDoesNotBlockStop(t *testing.T) {
	ext, internal := freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", ext, internal, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	logDir := filepath.Join(p.Dir, "log")
	mustWrite(t, filepath.Join(logDir, "first.log"), "one\n", 0o644)
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	// Listing the files starts the watcher.
	waitFor(t, 15*time.Second, "the log list names first.log", func() bool {
		status, body := hostRequest(t, "GET", base+"/api/logs/files", fmt.Sprintf("127.0.0.1:%d", internal), "", "")
		return status == 200 && strings.Contains(body, "first.log")
	})
	fifo := filepath.Join(logDir, "evil.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A file written after the FIFO is followed: the watcher went past it.
	mustWrite(t, filepath.Join(logDir, "second.log"), "two\n", 0o644)
	waitFor(t, 15*time.Second, "the log list names second.log", func() bool {
		_, body := hostRequest(t, "GET", base+"/api/logs/files", fmt.Sprintf("127.0.0.1:%d", internal), "", "")
		return strings.Contains(body, "second.log")
	})
	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(15 * time.Second) {
		// Let the old code's blocked open return so that the process ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close()
		}
		t.Fatalf("SIGTERM with a FIFO in the log directory: still running after 15 s:\n%s", p.Logs())
	}
}

// TestIdleUnauthenticatedConnectionsLockNobodyOut: 256 idle connections
// from one address (each after a 401, kept alive) locked a logged-in user
// behind the same address out of the port (issue 20). Now a 401 closes
// its connection, and a newcomer takes the place of the oldest connection
// that never logged in.
func TestIdleUnauthenticatedConnectionsLockNobodyOut(t *testing.T) {
	be := echoBackend(t)
	const password = "connlimit-test-secret-77"
	app := freePort(t)
	StartPortal(t, portalYAML(appYAML("App", app, be.Port, "/")), PortalOptions{Env: map[string]string{"WEB_PASSWORD": password}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", app)
	waitStatus(t, nil, url, 401)
	addr := fmt.Sprintf("127.0.0.1:%d", app)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}

	// A 401 ends its connection.
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !resp.Close {
		t.Errorf("401 without Connection: close (status %d, close %v)", resp.StatusCode, resp.Close)
	}

	// The address's 256 places held by idle connections.
	for i := 0; i < 256; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		defer c.Close()
	}
	user := &apiClient{t: t, base: url, token: password,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}}
	for i := 0; i < 3; i++ {
		r, err := user.send("GET", "", "", nil)
		if err != nil {
			t.Fatalf("logged-in user behind the flooded address, request %d: %v", i, err)
		}
		if r.Code != 200 {
			t.Errorf("logged-in user behind the flooded address: %d", r.Code)
		}
	}
}

// TestSecondPortalEntryIsRefused: a second portal.yaml entry named
// "Instance Portal" was treated as the portal and received the front's
// secret (issue 20). The adapter now refuses it, naming the file, the
// app and the field.
func TestSecondPortalEntryIsRefused(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portal.yaml")
	yaml := portalYAML(appYAML("Instance Portal", 1111, 11111, "/"),
		"  impostor:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n    open_path: /\n    name: Instance Portal\n")
	mustWrite(t, cfg, yaml, 0o644)
	cmd := exec.Command(caddyBin, "adapt", "--adapter", "portal_yaml", "--config", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PORTAL_STATE_DIR=" + dir, "PORTAL_LOG_DIR=" + dir}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `app \"impostor\": name: \"Instance Portal\" is the portal's own entry`) {
		t.Errorf("a second portal entry: err=%v\n%s", err, out)
	}
}
