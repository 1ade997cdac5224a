package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/instanceportal/portal/provstatus"
)

// TestProvisioningAPIGuardedAsBoot: /api/provisioning answers before any
// run, and stands behind the same walls as /api/boot: vastauth on the
// external port, the internal server's Host guard.
func TestProvisioningAPIGuardedAsBoot(t *testing.T) {
	ext, internal := freePort(t), freePort(t)
	state := t.TempDir()
	StartPortal(t, portalYAML(appYAML("Instance Portal", ext, internal, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD":          "portal-test-secret-1",
		"PROVISIONER_STATE_DIR": state,
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", internal), 200)
	for _, path := range []string{"/api/boot", "/api/provisioning"} {
		if code, _ := hostRequest(t, "GET", fmt.Sprintf("http://127.0.0.1:%d%s", ext, path), fmt.Sprintf("127.0.0.1:%d", ext), "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
		if code, _ := hostRequest(t, "GET", fmt.Sprintf("http://127.0.0.1:%d%s", internal, path), "rebind.example", "", ""); code != 403 {
			t.Errorf("%s under a foreign Host: %d, want 403", path, code)
		}
	}
	code, body := hostRequest(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/provisioning", ext), fmt.Sprintf("127.0.0.1:%d", ext), "", "",
		"Authorization", "Bearer portal-test-secret-1")
	if code != 200 || !strings.Contains(body, `"state":"none"`) {
		t.Errorf("before any run: %d %s", code, body)
	}
	if code, _ := hostRequest(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/provisioning", internal), fmt.Sprintf("127.0.0.1:%d", internal), "", "{}"); code != 405 {
		t.Errorf("POST: %d", code)
	}
}

// TestDashboardProvisioningView drives the Provisioning tab from a progress
// file the test writes as the provisioner would: a download's bar moves
// with its bytes, phases show their state and timing, the running
// command's last lines sit beside them, and the end (failed at a phase
// with its error, then done) is a clear banner.
func TestDashboardProvisioningView(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	state := t.TempDir()
	portalInt := freePort(t)
	StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), portalInt, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH":           "false",
		"PROVISIONER_STATE_DIR": state,
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)

	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/#provisioning", portalInt)))
	b.waitJS("the empty state", `document.getElementById('prov-downloads').textContent.includes('No provisioning run')`)

	start := time.Now().UTC().Add(-90 * time.Second)
	apt := start.Add(40 * time.Second)
	dlStart := start.Add(60 * time.Second)
	gib := int64(1) << 30
	st := provstatus.Status{State: provstatus.Running, Source: "https://example.com/prov.yaml?…", StartedAt: start, UpdatedAt: time.Now().UTC(),
		Phases: []provstatus.Phase{
			{Name: "apt", State: provstatus.Done, StartedAt: &start, FinishedAt: &apt, Items: 3},
			{Name: "downloads", State: provstatus.Running, StartedAt: &dlStart, Items: 2},
			{Name: "services", State: provstatus.Pending},
		},
		Downloads: []provstatus.Download{
			{ID: "1", Kind: "hf", Source: "https://huggingface.co/org/model/resolve/main/flux.safetensors", Dest: "/workspace/models/flux.safetensors",
				State: provstatus.Running, Bytes: 4 * gib / 4, Total: 4 * gib, RateBps: 85 << 20, ETASeconds: 36},
			{ID: "2", Kind: "url", Source: "https://…@files.example/lora.bin?…", Dest: "/workspace/models/loras/", State: provstatus.Pending, ETASeconds: -1},
		},
		Command: &provstatus.Command{Phase: "downloads", Line: "pip install -r requirements.txt", Tail: []string{"Collecting torch", "Downloading torch-2.5.whl (800 MB)"}},
	}
	write := func() {
		t.Helper()
		st.UpdatedAt = time.Now().UTC()
		if err := provstatus.Write(provstatus.Path(state), st); err != nil {
			t.Fatal(err)
		}
	}
	write()
	bar := `document.querySelector('#prov-downloads li[data-id="1"] [role=progressbar]')`
	b.waitJS("the first bar at 25 %", bar+`?.getAttribute('aria-valuenow') === '25'`)
	text := evalJS[string](b, `document.getElementById('view-provisioning').innerText`)
	for _, want := range []string{"flux.safetensors", "1.0 GiB / 4.0 GiB", "85.0 MiB/s", "36 s left", "Provisioning is running",
		"apt", "3 items", "40 s", "downloads", "so far", "pip install -r requirements.txt", "Downloading torch-2.5.whl (800 MB)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the view lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "token") {
		t.Errorf("a credential shows: %s", text)
	}
	b.screenshot("provisioning-running.png")

	// The bar moves.
	st.Downloads[0].Bytes, st.Downloads[0].ETASeconds = 3*gib, 12
	st.Downloads[1].State, st.Downloads[1].Bytes = provstatus.Running, 5<<20
	write()
	b.waitJS("the first bar at 75 %", bar+`.getAttribute('aria-valuenow') === '75' && `+bar+`.firstChild.style.width === '75%'`)
	b.waitJS("an unknown size as an indeterminate bar", `document.querySelector('#prov-downloads li[data-id="2"] .bar').classList.contains('unknown')`)

	// It fails at the downloads phase: the banner says where and why.
	fin := time.Now().UTC()
	st.State, st.FailedPhase, st.Error, st.FinishedAt, st.Command = provstatus.Failed, "downloads", "download https://…@files.example/lora.bin?…: HTTP 404 Not Found", &fin, nil
	st.Phases[1].State, st.Phases[1].FinishedAt, st.Phases[1].Error = provstatus.Failed, &fin, st.Error
	st.Downloads[1].State, st.Downloads[1].Error = provstatus.Failed, st.Error
	write()
	end := `document.getElementById('prov-end')`
	b.waitJS("the failure banner", end+`.dataset.state === 'failed' && `+end+`.classList.contains('bad')`)
	if s := evalJS[string](b, end+`.textContent`); !strings.Contains(s, "Provisioning failed at phase downloads") || !strings.Contains(s, "HTTP 404") {
		t.Errorf("the banner says %q", s)
	}
	b.screenshot("provisioning-failed-phase.png")

	// A rerun finishes.
	st.State, st.FailedPhase, st.Error = provstatus.Done, "", ""
	for i := range st.Phases {
		st.Phases[i].State, st.Phases[i].Error = provstatus.Done, ""
	}
	for i := range st.Downloads {
		st.Downloads[i].State, st.Downloads[i].Error, st.Downloads[i].Bytes, st.Downloads[i].Total = provstatus.Done, "", 4*gib, 4*gib
	}
	write()
	b.waitJS("the done banner", end+`.dataset.state === 'done' && `+end+`.classList.contains('ok') && `+end+`.textContent.includes('Provisioning done')`)
	b.waitJS("full bars", `[...document.querySelectorAll('#prov-downloads [role=progressbar]')].every(e => e.getAttribute('aria-valuenow') === '100')`)
	b.screenshot("provisioning-done.png")

	// A document that says "running" but has not changed for minutes has
	// lost its provisioner: a warning, not "running" forever.
	silent := evalJS[[]string](b, `(() => { const e = portalDashboard.provisioningEnd({state: 'running', started_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z'}, Date.parse('2026-01-01T00:05:00Z')); return [e.kind, e.title]; })()`)
	if len(silent) != 2 || silent[0] != "warn" || !strings.Contains(silent[1], "has not reported for 5 m") {
		t.Errorf("a silent run: %q", silent)
	}

	// The page keeps working when the file goes away (a new instance).
	if err := os.Remove(filepath.Join(state, provstatus.FileName)); err != nil {
		t.Fatal(err)
	}
	b.openTab("overview")
	b.openTab("provisioning")
	b.waitJS("the empty state again", `document.getElementById('prov-end').hidden`)
	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}
