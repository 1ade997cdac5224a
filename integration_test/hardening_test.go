package integration_test

// Issue 14 through the real binary: the internal server's loopback rule
// (DNS rebinding), the finite shutdown grace period, the connection caps,
// placeholders in user text, and the front's request hygiene. Each test
// fails on the code before the fix (see each test's comment).

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostRequest sends one request with the given Host (and Origin when not
// empty), as a browser on that site would, and returns status and body.
func hostRequest(t *testing.T, method, url, host, origin, body string, hdr ...string) (int, string) {
	t.Helper()
	h := map[string]string{"Host": host}
	if origin != "" {
		h["Origin"] = origin
		h["Sec-Fetch-Site"] = "same-origin" // what a rebound page's browser sends
	}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return (&apiClient{t: t, client: noRedirect}).call(method, url, body, h)
}

// wsHandshake tries a WebSocket handshake with the given Host and Origin;
// it returns the status (101 when the server accepted).
func wsHandshake(t *testing.T, url, host, origin string, hdr ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	req.Header.Set("Origin", origin)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInternalServerRefusesDNSRebinding: a page on a rebinding name
// (Host: rebind.evil:<internal port>, with a matching Origin) can no
// longer create a tunnel, list or download logs, or open the log
// WebSocket on the unauthenticated internal server; an SSH forward
// (Host: localhost:<port>) still can, and so can the dashboard's own
// requests through the authenticated external port, whatever Host the
// browser used there. On the old code every rebinding request succeeded
// (201 for the tunnel, 200 with the log's token).
func TestInternalServerRefusesDNSRebinding(t *testing.T) {
	skipShort(t)
	cloudflared := buildFakeCloudflared(t)
	const password = "rebind-test-secret-5678"
	ext, internal := freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", ext, internal, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "CLOUDFLARED_BIN": cloudflared, "FAKE_CLOUDFLARED_STATE_DIR": t.TempDir(),
	}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy output:\n%s", p.Logs())
		}
	})
	mustWrite(t, filepath.Join(p.Dir, "log", "jupyter.log"), "open http://localhost:8888/?token=jupyter-token-abc\n", 0o644)
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	waitStatus(t, nil, base+"/health", 200)

	evil := fmt.Sprintf("rebind.evil:%d", internal)
	evilOrigin := "http://" + evil
	tunnel := `{"target": "http://localhost:8080"}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/tunnels", tunnel},
		{"GET", "/api/tunnels", ""},
		{"GET", "/api/logs/files", ""},
		{"GET", "/api/logs/download?file=jupyter.log", ""},
		{"GET", "/api/logs/download", ""},
		{"GET", "/api/apps", ""},
		{"GET", "/api/processes", ""},
		{"POST", "/api/processes/caddy/stop", "{}"},
		{"GET", "/api/links", ""},
		{"GET", "/", ""},
	} {
		status, body := hostRequest(t, c.method, base+c.path, evil, evilOrigin, c.body)
		if status != http.StatusForbidden || strings.Contains(body, "jupyter-token-abc") {
			t.Errorf("rebinding %s %s: %d %.120q, want 403", c.method, c.path, status, body)
		}
	}
	if got := wsHandshake(t, base+"/api/logs/ws?file=jupyter.log", evil, evilOrigin); got != http.StatusForbidden {
		t.Errorf("rebinding WebSocket handshake: %d, want 403", got)
	}
	// A guessed front mark does not help.
	if status, _ := hostRequest(t, "POST", base+"/api/tunnels", evil, evilOrigin, tunnel, "X-Portal-Front", strings.Repeat("0", 64)); status != http.StatusForbidden {
		t.Errorf("rebinding with a forged X-Portal-Front: %d, want 403", status)
	}

	// An SSH forward, on the server's port or another local one.
	for _, host := range []string{fmt.Sprintf("localhost:%d", internal), "localhost:9000", fmt.Sprintf("127.0.0.1:%d", internal)} {
		origin := "http://" + host
		if status, body := hostRequest(t, "GET", base+"/api/logs/download?file=jupyter.log", host, origin, ""); status != 200 || !strings.Contains(body, "jupyter-token-abc") {
			t.Errorf("SSH forward (Host %s): download %d %.80q", host, status, body)
		}
		if got := wsHandshake(t, base+"/api/logs/ws?file=jupyter.log", host, origin); got != http.StatusSwitchingProtocols {
			t.Errorf("SSH forward (Host %s): WebSocket %d, want 101", host, got)
		}
	}
	local := fmt.Sprintf("localhost:%d", internal)
	if status, body := hostRequest(t, "POST", base+"/api/tunnels", local, "http://"+local, tunnel); status != http.StatusCreated {
		t.Errorf("SSH forward: create tunnel %d %s, want 201", status, body)
	}

	// Through the external port: vastauth first, then the front's mark
	// admits the browser's own Host (here even a strange one: it has
	// authenticated), and a client's own X-Portal-Front changes nothing.
	front := fmt.Sprintf("http://127.0.0.1:%d", ext)
	extHost := fmt.Sprintf("rebind.evil:%d", ext)
	if status, _ := hostRequest(t, "GET", front+"/api/logs/files", extHost, "http://"+extHost, ""); status != http.StatusUnauthorized {
		t.Errorf("external port without credentials: %d, want 401", status)
	}
	for _, forged := range []string{"", "forged"} {
		hdr := []string{"Authorization", "Bearer " + password}
		if forged != "" {
			hdr = append(hdr, "X-Portal-Front", forged)
		}
		if status, body := hostRequest(t, "GET", front+"/api/logs/download?file=jupyter.log", extHost, "http://"+extHost, "", hdr...); status != 200 || !strings.Contains(body, "jupyter-token-abc") {
			t.Errorf("external port with credentials (client mark %q): %d %.80q", forged, status, body)
		}
	}
	if got := wsHandshake(t, front+"/api/logs/ws?file=jupyter.log", extHost, "http://"+extHost, "Authorization", "Bearer "+password); got != http.StatusSwitchingProtocols {
		t.Errorf("WebSocket through the external port: %d, want 101", got)
	}
	// The front's secret never reaches the running config.
	if cfg := p.AdminConfig(); strings.Contains(cfg, "X-Portal-Front") || !strings.Contains(cfg, "portal_internal_guard") {
		t.Errorf("the running config must hold the guard but no front secret")
	}
}

// TestSIGTERMEndsWithinTheGracePeriod: a request stuck in an app kept
// SIGTERM from ending the process under Caddy's eternal grace period; the
// adapter now sets 10 s. On the old code the process is still running
// when the test gives up.
func TestSIGTERMEndsWithinTheGracePeriod(t *testing.T) {
	skipShort(t)
	got := make(chan struct{}, 1)
	release := make(chan struct{})
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(func() { close(release) }) // runs before the backend closes
	ext := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Stuck", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	go func() {
		c := &http.Client{Timeout: 60 * time.Second}
		if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/stuck", ext)); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-got:
	case <-time.After(15 * time.Second):
		t.Fatalf("the request never reached the app:\n%s", p.Logs())
	}
	start := time.Now()
	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(20 * time.Second) {
		t.Fatalf("SIGTERM with a request in flight: still running after 20 s (want the 10 s grace period):\n%s", p.Logs())
	}
	if d := time.Since(start); d < 9*time.Second {
		t.Errorf("exited after %v: the request in flight should have had its grace period", d)
	}
}

// flood opens perSource connections from each loopback address in
// sources to addr, and returns those the server kept open (held until the
// test ends) and how many it closed at once.
func flood(t *testing.T, sources []string, perSource int, addr string) (held []net.Conn, refused int) {
	t.Helper()
	var dialed []net.Conn
	for _, src := range sources {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		for i := 0; i < perSource; i++ {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				if errors.Is(err, syscall.ECONNRESET) {
					refused++ // reset even before the dial returned
					continue
				}
				t.Fatalf("flood from %s, connection %d: %v", src, i, err)
			}
			dialed = append(dialed, c)
		}
	}
	// A refused connection is reset right after the handshake; one that
	// is kept sees nothing until the deadline.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range dialed {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond)) // ample for a loaded machine to accept and reset
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			mu.Lock()
			defer mu.Unlock()
			if errors.As(err, &ne) && ne.Timeout() {
				held = append(held, c)
				return
			}
			c.Close()
			refused++
		}(c)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	return held, refused
}

// getFrom GETs url over a connection from the loopback address src.
func getFrom(src, url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		DisableKeepAlives: true,
	}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestConnectionFloodLeavesHealthAndOthersAnswering: idle connections from
// one address, then from many, beyond the process's descriptor limit
// (lowered to 600 for the test, so that the flood stays small: about
// 1 500 connections, a second or two on 2 cores). /health on the internal
// server and a second client keep answering. On the old code the flood
// took every descriptor: accept failed, and both timed out.
func TestConnectionFloodLeavesHealthAndOthersAnswering(t *testing.T) {
	skipShort(t)
	be := echoBackend(t)
	ext, internal, app := freePort(t), freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", ext, internal, "/"), appYAML("App", app, be.Port, "/")),
		PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy output:\n%s", p.Logs())
		}
	})
	health := fmt.Sprintf("http://127.0.0.1:%d/health", internal)
	appURL := fmt.Sprintf("http://127.0.0.1:%d/", app)
	waitStatus(t, nil, health, 200)
	waitStatus(t, nil, appURL, 200)
	const nofile = 600
	if err := unix.Prlimit(p.Pid(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: nofile, Max: nofile}, nil); err != nil {
		t.Skipf("cannot lower the binary's descriptor limit: %v", err)
	}
	healthAnswers := func(phase string) {
		t.Helper()
		if status, err := getFrom("127.0.0.1", health); err != nil || status != 200 {
			t.Errorf("%s: /health: %d %v", phase, status, err)
		}
	}
	appAddr := fmt.Sprintf("127.0.0.1:%d", app)

	// One address, more connections than descriptors: capped per address.
	held, refused := flood(t, []string{"127.0.0.2"}, nofile+100, appAddr)
	if len(held) > 256 || refused < nofile+100-256 {
		t.Errorf("one address holds %d connections (%d refused), want at most 256", len(held), refused)
	}
	healthAnswers("flood from one address")
	if status, err := getFrom("127.0.0.3", appURL); err != nil || status != 200 {
		t.Errorf("flood from one address: a second client: %d %v", status, err)
	}
	for _, c := range held {
		c.Close()
	}

	// Many addresses, a few each: capped in total below the descriptor
	// limit, which the running process reads again on a reload.
	if out, err := p.Reload("--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	waitStatus(t, nil, appURL, 200)
	var sources []string
	for i := 1; i <= 200; i++ {
		sources = append(sources, fmt.Sprintf("127.0.1.%d", i))
	}
	held, _ = flood(t, sources, 4, appAddr)
	if want := (nofile - nofile/2) / 2; len(held) > want {
		t.Errorf("%d connections held from 200 addresses, want at most %d (half of what the reserve leaves)", len(held), want)
	}
	healthAnswers("flood from 200 addresses")
	// Once the flood ends, everyone gets in again.
	for _, c := range held {
		c.Close()
	}
	waitStatus(t, nil, appURL, 200)
}

// TestPlaceholdersInPortalYAMLAreServedLiterally: an app named
// leak={env.WEB_PASSWORD}, and an open_path asking for the visitor's
// cookie, are shown as written by /api/apps and the starting-up page. On
// the old code /api/apps served the password.
func TestPlaceholdersInPortalYAMLAreServedLiterally(t *testing.T) {
	skipShort(t)
	const password = "placeholder-test-secret-9012"
	ext, internal, app, dead := freePort(t), freePort(t), freePort(t), freePort(t)
	yaml := portalYAML(appYAML("Instance Portal", ext, internal, "/")) + fmt.Sprintf(
		"  \"leak={env.WEB_PASSWORD}\":\n    hostname: localhost\n    external_port: %d\n    internal_port: %d\n    open_path: \"/{http.request.header.Cookie}\"\n", app, dead)
	p := StartPortal(t, yaml, PortalOptions{Env: map[string]string{"WEB_PASSWORD": password}})
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	waitStatus(t, nil, base+"/health", 200)
	status, body := hostRequest(t, "GET", base+"/api/apps", fmt.Sprintf("127.0.0.1:%d", internal), "", "", "Cookie", "victim=cookie-value-1")
	if status != 200 || strings.Contains(body, password) || strings.Contains(body, "cookie-value-1") ||
		!strings.Contains(body, `"name":"leak={env.WEB_PASSWORD}"`) || !strings.Contains(body, `"open_path":"/{http.request.header.Cookie}"`) {
		t.Errorf("/api/apps: %d %s", status, body)
	}
	// The app is down: its port shows the starting-up page, naming it.
	appPort := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", app), token: password}
	code, page := appPort.call("GET", "/", "", map[string]string{"Cookie": "victim=cookie-value-1"})
	if code != 502 || strings.Contains(page, password) || strings.Contains(page, "cookie-value-1") ||
		!strings.Contains(page, "<title>leak={env.WEB_PASSWORD} is starting up</title>") {
		t.Errorf("starting-up page: %d\n%.600s", code, page)
	}
	if strings.Contains(p.AdminConfig(), password) {
		t.Error("the password is in the running config")
	}
}

// TestFrontDropsH2CAndForeignMarks: an app never receives an h2c upgrade
// (which would let a client speak HTTP/2 to it past the front), nor a
// client's X-Portal-Front. On the old code the echo app saw Upgrade: h2c.
func TestFrontDropsH2CAndForeignMarks(t *testing.T) {
	skipShort(t)
	be := echoBackend(t)
	ext := freePort(t)
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", ext)
	waitStatus(t, nil, url, 200)
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	req.Header.Set("X-Portal-Front", "forged")
	h, resp := getJSON(t, req)
	if resp.StatusCode != 200 || h["Upgrade"] != "" || h["Http2-Settings"] != "" || h["X-Portal-Front"] != "" {
		t.Errorf("the app saw %v", h)
	}
	// Cf-Visitor from a loopback peer (our cloudflared) still counts.
	req, _ = http.NewRequest("GET", url, nil)
	req.Header.Set("Cf-Visitor", `{"scheme":"https"}`)
	if h, _ := getJSON(t, req); h["X-Forwarded-Proto"] != "https" || h["Cf-Visitor"] == "" {
		t.Errorf("Cf-Visitor from loopback: %v", h)
	}
}
