package caddymodules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/portalconfig"
)

func provisionedDashboardFS(t *testing.T) *DashboardFS {
	t.Helper()
	d := new(DashboardFS)
	if err := d.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDashboardFSServesTheEmbeddedFiles(t *testing.T) {
	if _, err := new(DashboardFS).Open("index.html"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unprovisioned Open: %v, want ErrNotExist", err)
	}
	d := provisionedDashboardFS(t)
	if err := fstest.TestFS(d, "index.html", "app.js", "style.css"); err != nil {
		t.Fatal(err)
	}
	index, err := fs.ReadFile(d, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<script src="app.js" defer></script>`, `<link rel="stylesheet" href="style.css">`} {
		if !strings.Contains(string(index), want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	// No absolute or external URL (the page is reached through proxies and
	// tunnels under any prefix, and the instance may be offline), and no
	// API that parses markup from data. Comments may name them.
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, _ := fs.ReadFile(d, name)
		for i, line := range strings.Split(string(b), "\n") {
			code := strings.TrimSpace(line)
			if strings.HasPrefix(code, "//") || strings.HasPrefix(code, "/*") || strings.HasPrefix(code, "*") || strings.HasPrefix(code, "<!--") {
				continue
			}
			code = strings.ReplaceAll(code, "'http://www.w3.org/2000/svg'", "") // a namespace name, not a fetch
			if u := absoluteURL.FindString(code); u != "" {
				t.Errorf("%s:%d has the absolute URL %q: %s", name, i+1, u, code)
			}
			for _, bad := range []string{`src="/`, `href="/`, "fetch('/", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
				if strings.Contains(code, bad) {
					t.Errorf("%s:%d contains %q: %s", name, i+1, bad, code)
				}
			}
		}
	}
}

// absoluteURL finds a URL with a host written into the page's files.
var absoluteURL = regexp.MustCompile(`(?i)\b(https?|wss?):\/\/[a-z0-9\[]`)

func TestDashboardFSEtagSidecars(t *testing.T) {
	d := provisionedDashboardFS(t)
	seen := map[string]bool{}
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		body, err := fs.ReadFile(d, name)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := fs.ReadFile(d, name+dashboardEtagSuffix)
		if err != nil {
			t.Fatalf("%s%s: %v", name, dashboardEtagSuffix, err)
		}
		sum := sha256.Sum256(body)
		if want := `"` + hex.EncodeToString(sum[:12]) + `"`; string(tag) != want {
			t.Errorf("%s ETag %s, want %s", name, tag, want)
		}
		if seen[string(tag)] {
			t.Errorf("%s: ETag %s repeats", name, tag)
		}
		seen[string(tag)] = true
		fi, err := fs.Stat(d, name+dashboardEtagSuffix)
		if err != nil || fi.Name() != name+dashboardEtagSuffix || fi.Size() != int64(len(tag)) || fi.IsDir() || !fi.Mode().IsRegular() {
			t.Errorf("Stat %s.etag: %v %+v", name, err, fi)
		}
	}
	for _, name := range []string{"nope.html.etag", "index.html.etag.etag", ".etag"} {
		if _, err := d.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): %v, want ErrNotExist", name, err)
		}
	}
}

func TestDashboardFSRefusesTraversal(t *testing.T) {
	d := provisionedDashboardFS(t)
	for _, name := range []string{"../web.go", "../../go.mod", "/etc/passwd", "./index.html", "a//b", "", "index.html/", "../dashboard/index.html", "../web.go.etag"} {
		f, err := d.Open(name)
		if err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", name)
			continue
		}
		if !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", name, err)
		}
	}
	// A backslash is an ordinary character to io/fs: no file has it.
	if _, err := d.Open(`..\web.go`); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(`Open("..\\web.go"): %v, want ErrNotExist`, err)
	}
}

func TestDashboardFSCaddyfile(t *testing.T) {
	parseCaddyfile(t, new(DashboardFS), `dashboard`)
	for in, want := range map[string]string{
		`dashboard extra`:           "wrong argument count",
		"dashboard {\n\tindex x\n}": "has no options",
	} {
		refuseCaddyfile(t, new(DashboardFS), in, want)
	}
}

// testPlan adapts a PORTAL_CONFIG string with env (a fixed clock) and
// returns the plan.
func testPlan(t *testing.T, portalConfig string, env portalconfig.Environ) *portalconfig.Plan {
	t.Helper()
	if env == nil {
		env = portalconfig.Environ{}
	}
	env[portalconfig.PortalConfigVar] = portalConfig
	plan, _, err := loadPlan(nil, "portal.yaml", env, time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestPortalServerRoutesEndWithTheDashboard(t *testing.T) {
	var warns []caddyconfig.Warning
	plan := testPlan(t, "localhost:1111:11111:/:Instance Portal", portalconfig.Environ{"VAST_CONTAINERLABEL": "C.9"})
	routes := portalServerRoutes(plan, &warns)
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	catchAll := routes[len(routes)-1]
	if len(catchAll.MatcherSetsRaw) != 0 || !catchAll.Terminal {
		t.Errorf("last route: matchers %v terminal %v, want a terminal catch-all", catchAll.MatcherSetsRaw, catchAll.Terminal)
	}
	handlers, _ := json.Marshal(catchAll.HandlersRaw)
	for _, want := range []string{`"handler":"file_server"`, `"fs":"dashboard"`, `"index_names":["index.html"]`, `"etag_file_extensions":[".etag"]`, `"hide":["*.etag"]`, `"Cache-Control":["no-cache"]`} {
		if !strings.Contains(string(handlers), want) {
			t.Errorf("catch-all handlers lack %s: %s", want, handlers)
		}
	}
	for i, r := range routes[:len(routes)-1] {
		// The first is the host guard, which every request meets
		// (TestPortalServerRoutesStartWithTheGuard).
		if len(r.MatcherSetsRaw) == 0 && i > 0 {
			t.Errorf("route %d matches everything, but only the dashboard's last route may", i)
		}
	}
	info, _ := json.Marshal(portalRouteAt(dashboardInfoPath).caddyRoute(plan, &warns))
	if !strings.Contains(string(info), `\"tunnel_scheme\":\"http\"`) || !strings.Contains(string(info), `\"instance_label\":\"C.9\"`) {
		t.Errorf("/api/dashboard route: %s", info)
	}
}

// TestDashboardServedByFileServer runs the adapter's routes and app in
// Caddy with stock file_server: index, assets with ETag revalidation, the
// hidden sidecars, traversal attempts, and /api/dashboard.
func TestDashboardServedByFileServer(t *testing.T) {
	var warns []caddyconfig.Warning
	plan := testPlan(t, "localhost:1111:11111:/:Instance Portal", portalconfig.Environ{"VAST_CONTAINERLABEL": "C.5"})
	port := testwait.FreePort(t)
	fsApp := dashboardFilesystems(&warns)
	cfg := caddyconfig.JSON(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"caddy.filesystems": fsApp,
			"http": caddyhttp.App{Servers: map[string]*caddyhttp.Server{"portal": {
				Listen:    []string{fmt.Sprintf("127.0.0.1:%d", port)},
				AutoHTTPS: &caddyhttp.AutoHTTPSConfig{Disabled: true},
				Routes:    caddyhttp.RouteList{portalRouteAt(dashboardInfoPath).caddyRoute(plan, &warns), portalRouteAt("/").caddyRoute(plan, &warns), dashboardFilesRoute(&warns)},
			}}},
		},
	}, &warns)
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	loadConfig(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	index := roundTrip(t, http.MethodGet, base+"/", "")
	if index.status != 200 || !strings.Contains(index.body, `src="app.js"`) {
		t.Fatalf("GET /: %d %.120q", index.status, index.body)
	}
	for k, want := range map[string]string{
		"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Content-Type": "text/html; charset=utf-8", "Referrer-Policy": "no-referrer",
	} {
		if got := index.header.Get(k); got != want {
			t.Errorf("GET / %s = %q, want %q", k, got, want)
		}
	}
	if csp := index.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}

	d := provisionedDashboardFS(t)
	for _, name := range []string{"app.js", "style.css"} {
		r := roundTrip(t, http.MethodGet, base+"/"+name, "")
		want, _ := fs.ReadFile(d, name+dashboardEtagSuffix)
		if r.status != 200 || r.header.Get("Etag") != string(want) || r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET /%s: %d ETag %q (want %s) Cache-Control %q", name, r.status, r.header.Get("Etag"), want, r.header.Get("Cache-Control"))
		}
		if again := roundTrip(t, http.MethodGet, base+"/"+name, "", "If-None-Match", string(want)); again.status != http.StatusNotModified || again.body != "" {
			t.Errorf("GET /%s If-None-Match: %d, want 304", name, again.status)
		}
	}
	for _, path := range []string{"/app.js.etag", "/../../go.mod", "/%2e%2e/%2e%2e/go.mod", "/..%2fweb.go", "/nope", "/web.go", "/dashboard/index.html"} {
		if r := roundTrip(t, http.MethodGet, base+path, ""); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d %.80q, want 404", path, r.status, r.body)
		}
	}
	info := roundTrip(t, http.MethodGet, base+dashboardInfoPath, "")
	if info.status != 200 || strings.TrimSpace(info.body) != `{"instance_label":"C.5","tunnel_scheme":"http","log_archive_dir":"/var/log"}` || info.header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET %s: %d %q %v", dashboardInfoPath, info.status, info.body, info.header)
	}
}

// TestDashboardCaddyfileExample loads the Caddyfile form documented in
// docs/dashboard.md (for Caddyfile.example) and serves the page with it.
func TestDashboardCaddyfileExample(t *testing.T) {
	port := testwait.FreePort(t)
	src := fmt.Sprintf(`{
	admin off
	persist_config off
	filesystem dashboard dashboard
}

http://127.0.0.1:%d {
	@index path / /index.html
	@assets not path / /index.html
	header @index Cache-Control no-store
	header @assets Cache-Control no-cache
	file_server {
		fs dashboard
		hide *.etag
		etag_file_extensions .etag
	}
}
`, port)
	cfg, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	loadConfig(t, cfg)
	var r liveAnswer
	testwait.Poll(5*time.Second, 0, func() bool {
		r = roundTrip(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), "")
		return r.status == 200
	})
	if r.status != 200 || !strings.Contains(r.body, `src="app.js"`) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /: %d %q %.100q", r.status, r.header.Get("Cache-Control"), r.body)
	}
	js := roundTrip(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/app.js", port), "")
	if js.status != 200 || js.header.Get("Etag") == "" || js.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("GET /app.js: %d ETag %q Cache-Control %q", js.status, js.header.Get("Etag"), js.header.Get("Cache-Control"))
	}
}
