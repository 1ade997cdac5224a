package integration_test

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/instanceportal/portal/internal/testproc"
)

// TestDashboardExposureWarning: a program listening on 0.0.0.0 (a real
// python3 http.server, as a template that forgot --bind 127.0.0.1 starts
// one) is named with its port in /api/boot's "exposed" field and in a
// warning on the Overview; once it is gone, so is the warning. The portal's
// own listeners (caddy) are never reported.
func TestDashboardExposureWarning(t *testing.T) {
	skipShort(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	b := startChromium(t)
	portalExt, portalInt := freePort(t), freePort(t)
	StartPortal(t, portalYAML(appYAML("Instance Portal", portalExt, portalInt, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH":            "false",
		"EXPOSURE_ALLOWLIST_DIR": t.TempDir(), // nothing allowed
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)

	port := freePort(t)
	app := testproc.Start(t, exec.Command("python3", "-m", "http.server", "--bind", "0.0.0.0", strconv.Itoa(port)), testproc.Options{Name: "exposed app"})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 200)

	exposed := func() []map[string]any {
		t.Helper()
		var body struct {
			Exposed []map[string]any `json:"exposed"`
		}
		(&apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", portalInt)}).getJSON("/api/boot", &body)
		return body.Exposed
	}
	var mine map[string]any
	for _, e := range exposed() {
		if e["port"] == float64(port) {
			mine = e
		}
		if e["program"] == "caddy" || e["port"] == float64(portalExt) {
			t.Errorf("the portal's own listener reported: %v", e)
		}
	}
	if mine == nil || mine["program"] != "python3" || mine["pid"] != float64(app.Cmd.Process.Pid) || mine["address"] != "0.0.0.0" {
		t.Fatalf("/api/boot exposed: %v, want python3 pid %d on 0.0.0.0:%d", mine, app.Cmd.Process.Pid, port)
	}

	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", portalInt)))
	banner := `document.getElementById('exposure-banner')`
	want := fmt.Sprintf("python3 (pid %d) listens on 0.0.0.0 port %d", app.Cmd.Process.Pid, port)
	b.waitJS("the exposure warning", `!`+banner+`.hidden && `+banner+`.textContent.includes(`+strconv.Quote(want)+`)`)
	if text := evalJS[string](b, banner+`.textContent`); !strings.Contains(text, "reachable without authentication") || !strings.Contains(text, "127.0.0.1") {
		t.Errorf("the warning says %q", text)
	}
	b.screenshot("exposure-warning.png")

	// Gone: the next scan (at most 10 s later) no longer names it.
	app.Cmd.Process.Kill()
	app.Wait(5 * time.Second)
	waitFor(t, 20*time.Second, "the listener to leave /api/boot", func() bool {
		for _, e := range exposed() {
			if e["port"] == float64(port) {
				return false
			}
		}
		return true
	})
}
