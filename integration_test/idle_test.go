package integration_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// idleWindow is the shortest window the idle settings accept plus margin:
// each scenario lasts about this long.
const idleWindow = 20 * time.Second

// startIdlePortal runs the real binary with idle auto-stop on (20 s window,
// a command that appends a line to a marker file) in front of one app.
func startIdlePortal(t *testing.T) (p *Portal, portalURL, appURL, marker string) {
	t.Helper()
	dir := t.TempDir()
	marker = filepath.Join(dir, "stopped")
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "app") }))
	pExt, pInt, aExt := freePort(t), freePort(t), freePort(t)
	p = StartPortal(t, portalYAML(appYAML("Instance Portal", pExt, pInt, "/"), appYAML("App", aExt, app.Port, "/")), PortalOptions{Env: map[string]string{
		"OPEN_BUTTON_TOKEN":      "idle-token",
		"PORTAL_IDLE_STOP_AFTER": idleWindow.String(),
		"PORTAL_IDLE_COMMAND":    "echo stopped >>" + marker,
		"PROVISIONING_LOCK":      filepath.Join(dir, "provisioning"),
		"PROVISIONER_STATE_DIR":  filepath.Join(dir, "provisioner"),
	}})
	// A log the log viewer shows, which must receive the warning line.
	mustWrite(t, filepath.Join(p.Dir, "log", "app.log"), "started\n", 0o644)
	return p, fmt.Sprintf("http://127.0.0.1:%d", pExt), fmt.Sprintf("http://127.0.0.1:%d", aExt), marker
}

func markerLines(marker string) int {
	b, err := os.ReadFile(marker)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// idleAPI calls base with the token the idle portal has.
func idleAPI(t *testing.T, base string) *apiClient {
	return &apiClient{t: t, base: base, token: "idle-token"}
}

// TestIdleStopsOnceWithoutTraffic: with no traffic the command runs once
// after the window (a warning line reached the logs first), and not again.
func TestIdleStopsOnceWithoutTraffic(t *testing.T) {
	t.Parallel()
	p, portalURL, _, marker := startIdlePortal(t)
	waitFor(t, idleWindow+15*time.Second, "the stop command", func() bool { return markerLines(marker) > 0 })
	log, _ := os.ReadFile(filepath.Join(p.Dir, "log", "app.log"))
	if !strings.Contains(string(log), "idle auto-stop: no activity") {
		t.Errorf("no warning line in app.log:\n%s", log)
	}
	var st struct {
		Enabled     bool   `json:"enabled"`
		Ran         bool   `json:"ran"`
		LastOutcome string `json:"last_outcome"`
		Summary     string `json:"summary"`
	}
	if idleAPI(t, portalURL).getJSON("/api/idle", &st); !st.Enabled || !st.Ran {
		t.Errorf("/api/idle after the stop: %+v", st)
	}
	// Still idle: the command must not run again (ticks are 1 s apart).
	time.Sleep(4 * time.Second) // nothing to wait for: the command must NOT run again over four 1 s ticks
	if n := markerLines(marker); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
	if !strings.Contains(p.Logs(), "the stop command succeeded") {
		t.Errorf("the outcome is not logged:\n%s", p.Logs())
	}
}

// TestIdleRequestsKeepItRunning: a request through the app's port every
// 5 s keeps the instance busy past the window.
func TestIdleRequestsKeepItRunning(t *testing.T) {
	t.Parallel()
	_, _, appURL, marker := startIdlePortal(t)
	deadline := time.Now().Add(idleWindow + 8*time.Second)
	app := idleAPI(t, appURL)
	for time.Now().Before(deadline) {
		if code, _ := app.call("GET", "/", "", nil); code != 200 {
			t.Fatalf("app: %d", code)
		}
		time.Sleep(5 * time.Second) // the time under test: traffic every 5 s keeps the instance from going idle
	}
	if n := markerLines(marker); n != 0 {
		t.Errorf("the command ran %d times under traffic", n)
	}
}

// TestIdleOpenLogStreamKeepsItRunning: an open log stream (SSE on the
// portal's port) keeps the instance busy past the window.
func TestIdleOpenLogStreamKeepsItRunning(t *testing.T) {
	t.Parallel()
	_, portalURL, _, marker := startIdlePortal(t)
	// The stream is read until the client's timeout ends it.
	stream := idleAPI(t, portalURL)
	stream.client = &http.Client{Timeout: idleWindow + 8*time.Second}
	if r, err := stream.send("GET", "/api/logs/stream?file=app.log", "", map[string]string{"Accept": "text/event-stream"}); r.Code != 200 {
		t.Fatalf("log stream: %d %v", r.Code, err)
	}
	if n := markerLines(marker); n != 0 {
		t.Errorf("the command ran %d times with a log stream open", n)
	}
}
