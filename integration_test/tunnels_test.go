package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildFakeCloudflared builds the stand-in cloudflared into the test's temp
// dir (the Go build cache makes repeats cheap).
func buildFakeCloudflared(t *testing.T) string {
	t.Helper()
	skipShort(t)
	bin := filepath.Join(t.TempDir(), "cloudflared")
	out, err := exec.Command("go", "build", "-o", bin, "../tunnels/internal/fakecloudflared").CombinedOutput()
	if err != nil {
		t.Fatalf("building the fake cloudflared: %v\n%s", err, out)
	}
	return bin
}

type tunnelStatus struct {
	Type      string `json:"type"`
	Target    string `json:"target"`
	URL       string `json:"url"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	StartedAt string `json:"started_at"`
	Restarts  int    `json:"restarts"`
	Pid       int    `json:"pid"`
	Ingress   []struct {
		Hostname, Service string
	} `json:"ingress"`
}

// tunnelsClient calls /api/tunnels on the portal's internal port (base:
// http://127.0.0.1:<port>/api/tunnels), as a script does.
type tunnelsClient struct{ *apiClient }

func newTunnelsClient(t *testing.T, internal int) *tunnelsClient {
	return &tunnelsClient{&apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d/api/tunnels", internal)}}
}

func (c *tunnelsClient) list() []tunnelStatus {
	c.t.Helper()
	var body struct{ Tunnels []tunnelStatus }
	c.getJSON("", &body)
	return body.Tunnels
}

// post sends {"target": target} and returns the status code and body.
func (c *tunnelsClient) post(path, target string) (int, string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"target": target})
	return c.call(http.MethodPost, path, string(b), map[string]string{"Content-Type": "application/json"})
}

func (c *tunnelsClient) find(pred func(tunnelStatus) bool) (tunnelStatus, bool) {
	for _, s := range c.list() {
		if pred(s) {
			return s, true
		}
	}
	return tunnelStatus{}, false
}

func (c *tunnelsClient) waitFor(what string, pred func(tunnelStatus) bool) tunnelStatus {
	c.t.Helper()
	var got tunnelStatus
	waitFor(c.t, 15*time.Second, what, func() bool {
		var ok bool
		got, ok = c.find(pred)
		return ok
	})
	return got
}

func runningAt(target string) func(tunnelStatus) bool {
	return func(s tunnelStatus) bool { return s.Target == target && s.State == "running" && s.URL != "" }
}

// fastTunnels loads the running config again with test-sized tunnel
// timings (the JSON knobs); tunnels keep running, the timings apply to
// their next start.
func fastTunnels(t *testing.T, p *Portal) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(p.AdminConfig()), &cfg); err != nil {
		t.Fatal(err)
	}
	apps := cfg["apps"].(map[string]any)
	tun, ok := apps["tunnels"].(map[string]any)
	if !ok {
		t.Fatalf("adapted config has no tunnels app")
	}
	for k, v := range map[string]string{"backoff_base": "50ms", "backoff_max": "200ms", "start_spacing": "1ms",
		"poll_interval": "50ms", "ready_timeout": "5s", "kill_grace": "1s"} {
		tun[k] = v
	}
	b, _ := json.Marshal(cfg)
	p.Load(b)
}

// processesRunning lists the pids whose argv[0] is bin, from /proc.
func processesRunning(bin string) []int {
	return processesWith(func(argv []string) bool { return argv[0] == bin })
}

// processesWith lists the pids, from /proc, of the live processes (not
// exited and waiting to be reaped) whose command line match accepts.
func processesWith(match func(argv []string) bool) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmd) == 0 || !match(strings.Split(strings.TrimSuffix(string(cmd), "\x00"), "\x00")) {
			continue
		}
		if stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); bytes.Contains(stat, []byte(") Z ")) {
			continue // exited, waiting to be reaped
		}
		pids = append(pids, pid)
	}
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func startTunnelPortal(t *testing.T, env map[string]string, extraApps ...string) (*Portal, *tunnelsClient, string) {
	t.Helper()
	bin := buildFakeCloudflared(t)
	internal := freePort(t)
	e := map[string]string{"CLOUDFLARED_BIN": bin, "ENABLE_AUTH": "false", "FAKE_CLOUDFLARED_STATE_DIR": t.TempDir()}
	for k, v := range env {
		e[k] = v
	}
	apps := append([]string{appYAML("Instance Portal", freePort(t), internal, "/")}, extraApps...)
	p := StartPortal(t, portalYAML(apps...), PortalOptions{Env: e})
	c := newTunnelsClient(t, internal)
	waitStatus(t, nil, c.base, 200)
	return p, c, bin
}

func TestTunnelsAPICreateListRefreshStop(t *testing.T) {
	p, c, bin := startTunnelPortal(t, nil)
	fastTunnels(t, p)
	if l := c.list(); len(l) != 0 {
		t.Fatalf("PORTAL_DEFAULT_TUNNELS=false but tunnels exist: %+v", l)
	}
	backend := startBackend(t, http.NotFoundHandler())
	target := fmt.Sprintf("http://localhost:%d", backend.Port)

	if code, body := c.post("", target); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	first := c.waitFor("tunnel running", runningAt(target))
	if first.Type != "quick" || first.StartedAt == "" || !strings.HasSuffix(first.URL, ".trycloudflare.com") {
		t.Fatalf("status %+v", first)
	}
	if cl := cmdline(first.Pid); !strings.HasPrefix(cl, bin+" tunnel --no-autoupdate --metrics 127.0.0.1:") || !strings.Contains(cl, "--url "+target) {
		t.Fatalf("cloudflared argv %q", cl)
	}
	if code, _ := c.post("", target); code != 200 {
		t.Fatalf("second create of the same target: %d, want 200", code)
	}

	if code, body := c.post("/refresh", target); code != 200 {
		t.Fatalf("refresh: %d %s", code, body)
	}
	second := c.waitFor("new URL", func(s tunnelStatus) bool { return runningAt(target)(s) && s.URL != first.URL })
	if second.Pid == first.Pid {
		t.Fatal("refresh kept the process")
	}

	code, body := c.post("/stop", target)
	if code != 200 || !strings.Contains(body, `"state":"stopped"`) {
		t.Fatalf("stop: %d %s", code, body)
	}
	if len(c.list()) != 0 || len(processesRunning(bin)) != 0 {
		t.Fatalf("after stop: %+v, processes %v", c.list(), processesRunning(bin))
	}

	// Any local port may be tunnelled, but a tunnel to an app's internal
	// port (here the portal's own, which serves this API) bypasses the
	// portal's authentication: the answer says so and names the external
	// port (issue 14, item 7; the old answer said nothing).
	var internalPort int
	fmt.Sscanf(c.base, "http://127.0.0.1:%d/", &internalPort)
	internalTarget := fmt.Sprintf("http://localhost:%d", internalPort)
	code, body = c.post("", internalTarget)
	var advised struct {
		Tunnel          tunnelStatus `json:"tunnel"`
		Warning         string       `json:"warning"`
		SuggestedTarget string       `json:"suggested_target"`
	}
	if err := json.Unmarshal([]byte(body), &advised); err != nil || code != 201 || advised.Tunnel.Target != internalTarget ||
		!strings.Contains(advised.Warning, fmt.Sprintf(`port %d is the internal port of "Instance Portal"`, internalPort)) ||
		!strings.HasPrefix(advised.SuggestedTarget, "http://localhost:") || advised.SuggestedTarget == internalTarget {
		t.Fatalf("tunnel to the portal's internal port: %d %s", code, body)
	}
	if code, body := c.post("/stop", internalTarget); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}

	for _, bad := range []struct {
		path, target string
		code         int
		msg          string
	}{
		{"", "http://example.com:80", 400, "host must be localhost"},
		{"", "http://localhost", 400, "port is required"},
		{"", "file:///etc/passwd", 400, "scheme must be http or https"},
		{"/stop", target, 404, "no such tunnel"},
		{"/refresh", target, 404, "no such tunnel"},
		{"/bogus", target, 404, "no tunnels endpoint"},
	} {
		if code, body := c.post(bad.path, bad.target); code != bad.code || !strings.Contains(body, bad.msg) {
			t.Errorf("POST %s %q: %d %s; want %d naming %q", bad.path, bad.target, code, body, bad.code, bad.msg)
		}
	}
	if code, _ := c.call(http.MethodPost, "", `{"target":"`+target+`"}`, map[string]string{"Content-Type": "text/plain"}); code != 415 {
		t.Fatalf("form-style POST: %d, want 415", code)
	}
}

func TestTunnelsDefaultPerAppSurviveCrashAndReload(t *testing.T) {
	app := startBackend(t, http.NotFoundHandler())
	appExt := freePort(t)
	p, c, bin := startTunnelPortal(t, map[string]string{"PORTAL_DEFAULT_TUNNELS": "true"},
		appYAML("Jupyter", appExt, app.Port, "/"))
	fastTunnels(t, p)
	var portalExt int
	for _, s := range c.list() {
		if s.Target != fmt.Sprintf("http://localhost:%d", appExt) {
			fmt.Sscanf(s.Target, "http://localhost:%d", &portalExt)
		}
	}
	targets := []string{fmt.Sprintf("http://localhost:%d", appExt), fmt.Sprintf("http://localhost:%d", portalExt)}
	before := map[string]tunnelStatus{}
	for _, tg := range targets {
		before[tg] = c.waitFor("default tunnel "+tg, runningAt(tg))
	}
	if n := len(c.list()); n != 2 {
		t.Fatalf("%d default tunnels, want one per exposed app: %+v", n, c.list())
	}

	// kill -9 of a child: restarted, with a new URL.
	victim := before[targets[0]]
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	after := c.waitFor("restart after kill -9", func(s tunnelStatus) bool {
		return runningAt(victim.Target)(s) && s.Pid != victim.Pid
	})
	if after.URL == victim.URL || after.Restarts != 1 || !strings.Contains(after.LastError, "SIGKILL") && !strings.Contains(after.LastError, "killed") {
		t.Fatalf("after kill -9: %+v", after)
	}
	before[targets[0]] = after
	if log, _ := os.ReadFile(filepath.Join(p.Dir, "log", "tunnels.log")); !bytes.Contains(log, []byte("portal: restarting in")) {
		t.Fatalf("tunnels.log lacks the restart reason:\n%s", log)
	}

	// caddy reload with the same portal.yaml: same processes, same URLs.
	if out, err := p.Reload("--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond) // nothing to wait for: no tunnel may restart or change URL after the reload
	for _, tg := range targets {
		s, ok := c.find(func(s tunnelStatus) bool { return s.Target == tg })
		if !ok || s.Pid != before[tg].Pid || s.URL != before[tg].URL || s.State != "running" {
			t.Fatalf("reload changed %s: %+v, was %+v", tg, s, before[tg])
		}
	}

	// caddy stop: no cloudflared left behind.
	if len(processesRunning(bin)) != 2 {
		t.Fatalf("want 2 cloudflared, have %v", processesRunning(bin))
	}
	p.Stop()
	if left := processesRunning(bin); len(left) != 0 {
		t.Fatalf("cloudflared left after caddy stopped: %v", left)
	}
}

func TestNamedTunnelTokenNeverShown(t *testing.T) {
	const token = "eyJhIjoiYWNjb3VudCIsInQiOiJ0dW5uZWwiLCJzIjoic2VjcmV0LXZhbHVlIn0"
	p, c, bin := startTunnelPortal(t, map[string]string{
		"CF_TUNNEL_TOKEN":               token,
		"FAKE_CLOUDFLARED_EXPECT_TOKEN": token,
		"FAKE_CLOUDFLARED_INGRESS":      "jupyter.example.com=http://localhost:8080",
	})
	s := c.waitFor("named tunnel", func(s tunnelStatus) bool { return s.Type == "named" && s.State == "running" })
	if s.URL != "https://jupyter.example.com" || len(s.Ingress) != 1 || s.Ingress[0].Service != "http://localhost:8080" {
		t.Fatalf("named status %+v", s)
	}
	_, api := c.call(http.MethodGet, "", "", nil)
	tlog, _ := os.ReadFile(filepath.Join(p.Dir, "log", "tunnels.log"))
	if !bytes.Contains(tlog, []byte("Registered tunnel connection")) {
		t.Fatalf("tunnels.log lacks cloudflared's output:\n%s", tlog)
	}
	var argv strings.Builder
	for _, pid := range processesRunning(bin) {
		argv.WriteString(cmdline(pid))
	}
	if argv.Len() == 0 {
		t.Fatal("no cloudflared found in /proc")
	}
	for where, text := range map[string]string{
		"API": api, "admin config": p.AdminConfig(), "tunnels.log": string(tlog),
		"caddy output": p.Logs(), "cloudflared argv": argv.String(),
	} {
		if strings.Contains(text, token) {
			t.Errorf("token visible in %s", where)
		}
	}
	if !strings.Contains(p.AdminConfig(), "{env.CF_TUNNEL_TOKEN}") {
		t.Error("admin config lacks the token placeholder")
	}
}

func TestTunnelsMissingBinaryIs503(t *testing.T) {
	skipShort(t)
	internal := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")),
		PortalOptions{Env: map[string]string{"CLOUDFLARED_BIN": filepath.Join(t.TempDir(), "cloudflared-missing"), "ENABLE_AUTH": "false"}})
	c := newTunnelsClient(t, internal)
	waitStatus(t, nil, c.base, 200)
	code, body := c.post("", "http://localhost:8080")
	if code != 503 || !strings.Contains(body, "cloudflared binary not available") || !strings.Contains(body, `"state":"failed"`) {
		t.Fatalf("create without cloudflared: %d %s", code, body)
	}
	if s := c.list(); len(s) != 1 || s[0].State != "failed" {
		t.Fatalf("list: %+v", s)
	}
	if p.Exited() {
		t.Fatal("caddy exited")
	}
}
