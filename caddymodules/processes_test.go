package caddymodules

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/portallinks"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

var nextHandler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusTeapot)
	return nil
})

type apiAnswer struct {
	Code int
	Body map[string]any
	Raw  string
	Hdr  http.Header
}

// serve sends one request through h; the body of a POST is {} as JSON
// unless headers say otherwise.
func serve(t *testing.T, h caddyhttp.MiddlewareHandler, method, path string, headers map[string]string, body string) apiAnswer {
	t.Helper()
	req := httptest.NewRequest(method, "http://portal.test:1111"+path, strings.NewReader(body))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, nextHandler); err != nil {
		t.Fatalf("%s %s: handler error %v", method, path, err)
	}
	a := apiAnswer{Code: rec.Code, Raw: rec.Body.String(), Hdr: rec.Header()}
	if strings.HasPrefix(strings.TrimSpace(a.Raw), "{") {
		if err := json.Unmarshal(rec.Body.Bytes(), &a.Body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, a.Raw, err)
		}
	}
	return a
}

func TestPortalProcessesRefusals(t *testing.T) {
	dir := t.TempDir()
	h := &PortalProcesses{Config: supervisor.Config{Socket: filepath.Join(dir, "none.sock"), SkipDir: dir}}
	provision(t, h)
	tests := []struct {
		name, method, path string
		headers            map[string]string
		body               string
		code               int
		err                string
	}{
		{"not ours", "GET", "/api/processesX", nil, "", http.StatusTeapot, ""},
		{"other path", "GET", "/api/other", nil, "", http.StatusTeapot, ""},
		{"list without supervisord", "GET", "/api/processes", nil, "", 503, "supervisord is not running"},
		{"list, trailing slash", "GET", "/api/processes/", nil, "", 503, "supervisord is not running"},
		{"POST on the list", "POST", "/api/processes", nil, "", 405, "method not allowed; use GET, HEAD"},
		{"GET on an action", "GET", "/api/processes/jupyter/stop", nil, "", 405, "method not allowed; use POST"},
		{"unknown action", "POST", "/api/processes/jupyter/kill", nil, "", 404, `no processes endpoint "kill": want start, stop or restart`},
		{"no action", "POST", "/api/processes/jupyter", nil, "", 404, `no processes endpoint "jupyter"`},
		{"too deep", "POST", "/api/processes/a/b/stop", nil, "", 404, `no processes endpoint "a/b/stop"`},
		{"cross-site", "POST", "/api/processes/jupyter/stop", map[string]string{"Sec-Fetch-Site": "cross-site"}, "", 403, "cross-site request refused (Sec-Fetch-Site: cross-site)"},
		{"same-site is another app", "POST", "/api/processes/jupyter/stop", map[string]string{"Sec-Fetch-Site": "same-site"}, "", 403, "cross-site request refused (Sec-Fetch-Site: same-site)"},
		{"foreign origin", "POST", "/api/processes/jupyter/stop", map[string]string{"Origin": "http://portal.test:8080"}, "", 403, "cross-site request refused (Origin http://portal.test:8080 is not this portal)"},
		{"null origin", "POST", "/api/processes/jupyter/stop", map[string]string{"Origin": "null"}, "", 403, "cross-site request refused (Origin null is not this portal)"},
		// Issue 20: a foreign Referer alone, and another spelling of the path.
		{"foreign referer only", "POST", "/api/processes/jupyter/stop", map[string]string{"Referer": "https://evil.example/x"}, "", 403, "cross-site request refused (Referer is not this portal)"},
		{"capitalised path", "POST", "/api/Processes/jupyter/stop", nil, "", 404, "no such endpoint: paths are lower case (/api/processes)"},
		{"form post", "POST", "/api/processes/jupyter/stop", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "a=b", 415, "want Content-Type: application/json (the body may be empty or {})"},
		{"text/plain", "POST", "/api/processes/jupyter/stop", map[string]string{"Content-Type": "text/plain"}, "", 415, "want Content-Type: application/json (the body may be empty or {})"},
		{"unknown body field", "POST", "/api/processes/jupyter/stop", nil, `{"force": true}`, 400, `body: want {} or nothing: json: unknown field "force"`},
		{"two objects", "POST", "/api/processes/jupyter/stop", nil, `{}{}`, 400, "body: want one JSON object"},
		{"huge body", "POST", "/api/processes/jupyter/stop", nil, strings.Repeat(" ", 2000), 413, "body: larger than 1024 bytes"},
		// Passing every check, the call finds no supervisord.
		{"same-origin POST", "POST", "/api/processes/jupyter/stop", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://portal.test:1111"}, "{}", 503, "supervisord is not running"},
		{"curl POST, empty body", "POST", "/api/processes/jupyter/restart", nil, "", 503, "supervisord is not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(t, h, tt.method, tt.path, tt.headers, tt.body)
			if a.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", a.Code, tt.code, a.Raw)
			}
			if tt.err == "" {
				return
			}
			if got, _ := a.Body["error"].(string); got != tt.err {
				t.Fatalf("error %q, want %q", got, tt.err)
			}
			if ct := a.Hdr.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}

const handlerPrograms = `
[program:web]
command=/bin/sh -c "exec sleep 300"
startsecs=0
stopwaitsecs=5
[program:caddy]
command=/bin/sh -c "exec sleep 300"
startsecs=0
[program:broken]
command=/nonexistent/program
startsecs=0
autostart=false
`

func TestPortalProcessesRealSupervisord(t *testing.T) {
	sock := supervisordtest.Start(t, handlerPrograms)
	skip := t.TempDir()
	if err := os.WriteFile(filepath.Join(skip, "broken"), []byte("Broken App\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &PortalProcesses{Config: supervisor.Config{Socket: sock, SkipDir: skip, WaitTimeout: confdecl.Duration(10 * time.Second)}}
	provision(t, h)
	var list struct {
		Processes []supervisor.Process `json:"processes"`
	}
	testwait.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		a := serve(t, h, "GET", "/api/processes", nil, "")
		if a.Code != 200 {
			t.Fatalf("list: %d %s", a.Code, a.Raw)
		}
		if err := json.Unmarshal([]byte(a.Raw), &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Processes) == 3 && list.Processes[2].State == "RUNNING"
	})
	byName := map[string]supervisor.Process{}
	for _, p := range list.Processes {
		byName[p.Name] = p
	}
	if !byName["caddy"].Protected || byName["web"].Protected || byName["web"].State != "RUNNING" {
		t.Fatalf("list: %+v", list.Processes)
	}
	if b := byName["broken"]; !b.Skipped || b.App != "Broken App" || b.State != "STOPPED" {
		t.Fatalf("broken: %+v", b)
	}

	stopped := serve(t, h, "POST", "/api/processes/web/stop", nil, "{}")
	if stopped.Code != 200 || stopped.Body["process"].(map[string]any)["state"] != "STOPPED" {
		t.Fatalf("stop: %d %s", stopped.Code, stopped.Raw)
	}
	again := serve(t, h, "POST", "/api/processes/web/stop", nil, "")
	fault, _ := again.Body["fault"].(map[string]any)
	if again.Code != 409 || !strings.HasPrefix(again.Body["error"].(string), "NOT_RUNNING") || fault["code"] != float64(supervisor.FaultNotRunning) {
		t.Fatalf("second stop: %d %s", again.Code, again.Raw)
	}
	started := serve(t, h, "POST", "/api/processes/web/start", nil, "")
	if started.Code != 200 || started.Body["process"].(map[string]any)["state"] != "RUNNING" {
		t.Fatalf("start: %d %s", started.Code, started.Raw)
	}
	restarted := serve(t, h, "POST", "/api/processes/web/restart", nil, "")
	if restarted.Code != 200 || restarted.Body["process"].(map[string]any)["pid"] == started.Body["process"].(map[string]any)["pid"] {
		t.Fatalf("restart: %d %s", restarted.Code, restarted.Raw)
	}
	for _, action := range []string{"stop", "restart"} {
		a := serve(t, h, "POST", "/api/processes/caddy/"+action, nil, "")
		if a.Code != 403 || !strings.Contains(a.Body["error"].(string), "protected program: caddy serves this portal") || a.Body["process"] == nil {
			t.Fatalf("%s caddy: %d %s", action, a.Code, a.Raw)
		}
	}
	if a := serve(t, h, "POST", "/api/processes/nosuch/start", nil, ""); a.Code != 404 || a.Body["error"] != `no such program "nosuch"` {
		t.Fatalf("unknown: %d %s", a.Code, a.Raw)
	}
	// A program that cannot be spawned: supervisord's fault, passed through.
	a := serve(t, h, "POST", "/api/processes/broken/start", nil, "")
	if a.Code != 502 || a.Body["fault"] == nil || !strings.HasPrefix(a.Body["error"].(string), "NO_FILE: ") {
		t.Fatalf("broken start: %d %s", a.Code, a.Raw)
	}
}

func TestPortalAppsHandler(t *testing.T) {
	dir := t.TempDir()
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	upPort := up.Listener.Addr().(*net.TCPAddr).Port
	h := &PortalApps{Config: appstate.Config{
		Config: supervisor.Config{Socket: filepath.Join(dir, "none.sock"), SkipDir: dir},
		Apps: []appstate.App{
			{Key: "Up", AppInfo: portalconfig.AppInfo{Name: "Up", Hostname: "127.0.0.1", InternalPort: upPort, ExternalPort: 1, Proxied: true}},
			{Key: "Down", AppInfo: portalconfig.AppInfo{Name: "Down", Hostname: "127.0.0.1", InternalPort: testwait.FreePort(t), ExternalPort: 2, Proxied: true}},
		},
	}}
	provision(t, h)
	a := serve(t, h, "GET", "/api/apps", nil, "")
	var states []appstate.State
	if err := json.Unmarshal([]byte(a.Raw), &states); err != nil || a.Code != 200 {
		t.Fatalf("%d %s: %v", a.Code, a.Raw, err)
	}
	if len(states) != 2 || states[0].State != "running" || states[1].State != "not_answering" || states[0].Key != "Up" || !states[0].Reachable {
		t.Fatalf("states %+v", states)
	}
	if a := serve(t, h, "POST", "/api/apps", nil, ""); a.Code != 405 {
		t.Fatalf("POST: %d", a.Code)
	}
}

func TestPortalLinksHandler(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "links.yaml")
	if err := os.WriteFile(file, []byte("- label: Hub\n  url: https://hub.example\n- label: Bad\n  url: ftp://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &PortalLinks{Config: portallinks.Config{File: file, Inline: "Env|https://env.example", Username: "alice", PortalPort: 11111}}
	provision(t, h)
	a := serve(t, h, "GET", "/api/links", map[string]string{"X-Forwarded-Proto": "https"}, "")
	var body struct {
		Cards    []portallinks.Card `json:"cards"`
		Warnings []string           `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(a.Raw), &body); err != nil || a.Code != 200 {
		t.Fatalf("%d %s: %v", a.Code, a.Raw, err)
	}
	var labels []string
	for _, c := range body.Cards {
		labels = append(labels, c.Label)
		if c.ID == "api" && !strings.Contains(c.Snippet, "https://portal.test:1111/api/apps") {
			t.Errorf("api card does not use the request's origin: %q", c.Snippet)
		}
	}
	want := []string{"How to log in", "SSH port forward", "API access", "Prometheus metrics", "Documentation", "Hub", "Env"}
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("cards %q, want %q", labels, want)
	}
	if len(body.Warnings) != 1 || !strings.Contains(body.Warnings[0], `entry 2 ("Bad")`) {
		t.Errorf("warnings %q", body.Warnings)
	}
	if a := serve(t, h, "DELETE", "/api/links", nil, ""); a.Code != 405 {
		t.Fatalf("DELETE: %d", a.Code)
	}
}

func TestProcessesCaddyfile(t *testing.T) {
	var p PortalProcesses
	parseCaddyfile(t, &p, `portal_processes {
		socket /run/s.sock
		skip_dir /tmp/skip
		unstoppable jupyter syncthing
		unstoppable comfyui
		wait_timeout 1m
	}`)
	want := supervisor.Config{Socket: "/run/s.sock", SkipDir: "/tmp/skip", Unstoppable: []string{"jupyter", "syncthing", "comfyui"}, WaitTimeout: confdecl.Duration(time.Minute)}
	if !reflect.DeepEqual(p.Config, want) {
		t.Fatalf("got %+v, want %+v", p.Config, want)
	}

	var a PortalApps
	parseCaddyfile(t, &a, `portal_apps {
		app Jupyter localhost 18080
		app "Web UI" 127.0.0.1 17860
		socket /run/s.sock
		probe_cache 1s
		probe_concurrency 4
	}`)
	if len(a.Apps) != 2 || a.Apps[1].Name != "Web UI" || a.Apps[1].InternalPort != 17860 || a.Socket != "/run/s.sock" ||
		a.ProbeCache != confdecl.Duration(time.Second) || a.ProbeConcurrency != 4 {
		t.Fatalf("portal_apps: %+v", a.Config)
	}

	var l PortalLinks
	parseCaddyfile(t, &l, `portal_links {
		file /etc/links.yaml
		inline "Docs|https://docs.example"
		ssh_port 40022
	}`)
	if l.File != "/etc/links.yaml" || l.Inline != "Docs|https://docs.example" || l.SSHPort != 40022 {
		t.Fatalf("portal_links: %+v", l.Config)
	}

	bad := map[string]struct {
		in   string
		with caddyfile.Unmarshaler
		want string
	}{
		"argument":        {"portal_processes /x", new(PortalProcesses), "wrong argument count"},
		"unknown option":  {"portal_processes {\n kill_all\n}", new(PortalProcesses), `portal_processes: unrecognized option "kill_all"`},
		"duplicate":       {"portal_processes {\n socket /a\n socket /b\n}", new(PortalProcesses), `portal_processes: duplicate option "socket"`},
		"bad duration":    {"portal_processes {\n wait_timeout soon\n}", new(PortalProcesses), `wait_timeout "soon": want a duration`},
		"app arity":       {"portal_apps {\n app Jupyter localhost\n}", new(PortalApps), "app: want <name> <hostname> <internal_port>"},
		"app port":        {"portal_apps {\n app Jupyter localhost 99999\n}", new(PortalApps), `app "Jupyter": internal port "99999": want 1-65535`},
		"apps as a field": {"portal_apps {\n apps x\n}", new(PortalApps), `option "apps" cannot be set in a Caddyfile; use JSON`},
		"links unknown":   {"portal_links {\n token x\n}", new(PortalLinks), `portal_links: unrecognized option "token"`},
		"links port":      {"portal_links {\n ssh_port -1\n}", new(PortalLinks), `ssh_port "-1": want an integer of at least 0`},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) { refuseCaddyfile(t, tt.with, tt.in, tt.want) })
	}
}

func TestProcessesModulesValidate(t *testing.T) {
	for _, tt := range []struct {
		m    caddy.Validator
		want string
	}{
		{&PortalProcesses{Config: supervisor.Config{Socket: "rel"}}, `portal_processes: socket: "rel": want an absolute path`},
		{&PortalApps{Config: appstate.Config{ProbeCache: confdecl.Duration(time.Minute)}}, "portal_apps: probe_cache: must be at most 2s, got 1m"},
		{&PortalLinks{Config: portallinks.Config{DocsURL: "javascript:x"}}, `portal_links: docs_url: "javascript:x": want an http or https URL`},
	} {
		if err := tt.m.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("%T: got %v, want %q", tt.m, err, tt.want)
		}
	}
}

// TestAdapterWritesProcessesSettings: the environment reaches the three
// handlers as explicit values, read once by SettingsFromEnv.
func TestAdapterWritesProcessesSettings(t *testing.T) {
	yaml := "applications:\n  Instance Portal:\n    hostname: localhost\n    external_port: 1111\n    internal_port: 11111\n    open_path: /\n    name: Instance Portal\n" +
		"  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n    open_path: /tree\n    name: Jupyter Notebook\n"
	env := portalconfig.Environ{
		"SUPERVISOR_SOCKET":  "/run/sv.sock",
		"PORTAL_SKIP_DIR":    "/run/skip",
		"PORTAL_UNSTOPPABLE": "jupyter, syncthing",
		"PORTAL_LINKS_FILE":  "/opt/links.yaml",
		"PORTAL_LINKS":       "Docs|https://docs.example|Read",
		"WEB_USERNAME":       "alice",
		"WEB_PASSWORD":       "not-in-the-json",
		"PUBLIC_IPADDR":      "203.0.113.7",
		"VAST_TCP_PORT_22":   "40022",
	}
	out, _, err := adaptPortal([]byte(yaml), "portal.yaml", env, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "not-in-the-json") {
		t.Fatal("a secret reached the JSON")
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	handlers := map[string]json.RawMessage{}
	for _, r := range cfg.Apps.HTTP.Servers["portal"].Routes {
		for _, h := range r.Handle {
			var name struct {
				Handler string `json:"handler"`
			}
			_ = json.Unmarshal(h, &name)
			handlers[name.Handler] = h
		}
	}
	var procs PortalProcesses
	if err := json.Unmarshal(handlers["portal_processes"], &procs); err != nil {
		t.Fatal(err)
	}
	if want := (supervisor.Config{Socket: "/run/sv.sock", SkipDir: "/run/skip", Unstoppable: []string{"jupyter", "syncthing"}}); !reflect.DeepEqual(procs.Config, want) {
		t.Errorf("portal_processes %+v, want %+v", procs.Config, want)
	}
	var apps PortalApps
	if err := json.Unmarshal(handlers["portal_apps"], &apps); err != nil {
		t.Fatal(err)
	}
	if apps.Socket != "/run/sv.sock" || apps.SkipDir != "/run/skip" || len(apps.Apps) != 2 ||
		apps.Apps[1].Key != "Jupyter" || apps.Apps[1].Name != "Jupyter Notebook" || apps.Apps[1].InternalPort != 18080 {
		t.Errorf("portal_apps %+v", apps.Config)
	}
	var links PortalLinks
	if err := json.Unmarshal(handlers["portal_links"], &links); err != nil {
		t.Fatal(err)
	}
	want := portallinks.Config{File: "/opt/links.yaml", Inline: "Docs|https://docs.example|Read", Username: "alice",
		SSHHost: "203.0.113.7", SSHPort: 40022, PortalPort: 11111}
	if links.Config != want {
		t.Errorf("portal_links %+v, want %+v", links.Config, want)
	}
}
