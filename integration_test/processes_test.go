package integration_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// TestProcessesAPI runs the binary under test beside real supervisord with
// three dummy programs — a web server that is one of the portal's apps, a
// worker listed in PORTAL_UNSTOPPABLE, and a program that skips itself the
// way exit_portal.sh does (a marker named after it, holding the app's name,
// then exit 0) — and drives /api/processes, /api/apps and /api/links
// through the portal's external port, authenticated, as the dashboard does.
func TestProcessesAPI(t *testing.T) {
	skipShort(t)
	webPort := freePort(t)
	skipDir := t.TempDir()
	sock := supervisordtest.Start(t, supervisordtest.HTTPServer("web", webPort)+supervisordtest.Sleeper("worker")+fmt.Sprintf(`
[program:extra]
command=/bin/sh -c 'mkdir -p "$SKIP" && echo "Extra App" > "$SKIP/$SUPERVISOR_PROCESS_NAME" && exit 0'
environment=SKIP="%s"
startsecs=0
autorestart=false
exitcodes=0
`, skipDir))

	links := filepath.Join(t.TempDir(), "links.yaml")
	mustWrite(t, links, "- label: Model hub\n  url: https://hub.example/models\n  icon: cube\n- label: Broken\n  url: ftp://x\n", 0o644)
	portalExt, portalInt := freePort(t), freePort(t)
	const secret = "processes-test-secret"
	StartPortal(t, portalYAML(
		appYAML("Instance Portal", portalExt, portalInt, "/"),
		appYAML("Web", freePort(t), webPort, "/"),
	), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD":       secret,
		"SUPERVISOR_SOCKET":  sock,
		"PORTAL_SKIP_DIR":    skipDir,
		"PORTAL_UNSTOPPABLE": "worker",
		"PORTAL_LINKS_FILE":  links,
		"PORTAL_LINKS":       "Team wiki|https://wiki.example|Notes",
	}})
	base := fmt.Sprintf("http://127.0.0.1:%d", portalExt)
	api := &apiClient{t: t, base: base, token: secret, browser: true}
	type process struct {
		Name            string `json:"name"`
		State           string `json:"state"`
		PID             int    `json:"pid"`
		Protected       bool   `json:"protected"`
		ProtectedReason string `json:"protected_reason"`
		Skipped         bool   `json:"skipped"`
		App             string `json:"app"`
	}
	list := func() map[string]process {
		t.Helper()
		var out struct {
			Processes []process `json:"processes"`
		}
		api.getJSON("/api/processes", &out)
		m := map[string]process{}
		for _, p := range out.Processes {
			m[p.Name] = p
		}
		return m
	}
	appStates := func() string {
		t.Helper()
		var apps []struct {
			Name    string `json:"name"`
			State   string `json:"state"`
			Program string `json:"program"`
		}
		api.getJSON("/api/apps", &apps)
		var s []string
		for _, a := range apps {
			s = append(s, fmt.Sprintf("%s=%s(%s)", a.Name, a.State, a.Program))
		}
		return strings.Join(s, " ")
	}
	waitApps := func(want string) {
		t.Helper()
		var got string
		if !testwait.Poll(15*time.Second, 50*time.Millisecond, func() bool { got = appStates(); return got == want }) {
			t.Fatalf("app states %q, want %q", got, want)
		}
	}

	var procs map[string]process
	waitFor(t, 15*time.Second, "web RUNNING and extra EXITED", func() bool {
		procs = list()
		return procs["web"].State == "RUNNING" && procs["extra"].State == "EXITED"
	})
	if len(procs) != 3 {
		t.Fatalf("processes: %+v", procs)
	}
	if w := procs["worker"]; !w.Protected || !strings.Contains(w.ProtectedReason, "PORTAL_UNSTOPPABLE") {
		t.Errorf("worker should be protected through PORTAL_UNSTOPPABLE: %+v", w)
	}
	if e := procs["extra"]; !e.Skipped || e.App != "Extra App" {
		t.Errorf("extra should be reported skipped for Extra App: %+v", e)
	}
	if w := procs["web"]; w.Protected || w.Skipped {
		t.Errorf("web: %+v", w)
	}
	waitApps("Instance Portal=running() Web=running(web) Extra App=not_configured(extra)")

	// Stop: the answer comes once the program has stopped, and the card follows.
	code, body := api.call("POST", "/api/processes/web/stop", "", nil)
	if code != 200 || !strings.Contains(body, `"state":"STOPPED"`) {
		t.Fatalf("stop web: %d %s", code, body)
	}
	waitApps("Instance Portal=running() Web=stopped(web) Extra App=not_configured(extra)")

	code, body = api.call("POST", "/api/processes/web/start", "", nil)
	if code != 200 || !strings.Contains(body, `"state":"RUNNING"`) {
		t.Fatalf("start web: %d %s", code, body)
	}
	waitApps("Instance Portal=running() Web=running(web) Extra App=not_configured(extra)")

	before := list()["web"].PID
	code, body = api.call("POST", "/api/processes/web/restart", "", nil)
	if code != 200 || !strings.Contains(body, `"state":"RUNNING"`) {
		t.Fatalf("restart web: %d %s", code, body)
	}
	if after := list()["web"].PID; after == before || after == 0 {
		t.Fatalf("restart kept pid %d (now %d)", before, after)
	}

	// Refusals: protected, cross-site, not JSON, unknown.
	code, body = api.call("POST", "/api/processes/worker/stop", "", nil)
	if code != 403 || !strings.Contains(body, "worker is listed as unstoppable (PORTAL_UNSTOPPABLE)") {
		t.Fatalf("stop worker: %d %s", code, body)
	}
	code, body = api.call("POST", "/api/processes/web/stop", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if code != 403 || !strings.Contains(body, "cross-site request refused") {
		t.Fatalf("cross-site stop: %d %s", code, body)
	}
	code, body = api.call("POST", "/api/processes/web/stop", "", map[string]string{"Origin": "http://evil.example"})
	if code != 403 || !strings.Contains(body, "cross-site request refused") {
		t.Fatalf("foreign origin stop: %d %s", code, body)
	}
	code, body = api.call("POST", "/api/processes/web/stop", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if code != 415 {
		t.Fatalf("form stop: %d %s", code, body)
	}
	if code, body = api.call("POST", "/api/processes/nosuch/stop", "", nil); code != 404 || !strings.Contains(body, `no such program \"nosuch\"`) {
		t.Fatalf("unknown: %d %s", code, body)
	}
	if p := list(); p["web"].State != "RUNNING" || p["worker"].State != "RUNNING" {
		t.Fatalf("a refused call changed something: %+v", p)
	}
	// Without credentials the API is behind vastauth like everything else.
	if code, _ := (&apiClient{t: t, base: base}).call("GET", "/api/processes", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %d", code)
	}

	// Tools & Help: the file's card, its bad entry's warning, PORTAL_LINKS.
	code, body = api.call("GET", "/api/links", "", nil)
	if code != 200 {
		t.Fatalf("links: %d %s", code, body)
	}
	for _, want := range []string{`"label":"Model hub"`, `"label":"Team wiki"`, `"id":"login"`, `entry 2 (\"Broken\"): url: \"ftp://x\": want an http or https URL; entry skipped`} {
		if !strings.Contains(body, want) {
			t.Errorf("links answer lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, secret) {
		t.Error("the links answer holds the secret")
	}
}
