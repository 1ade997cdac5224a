package integration_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/instanceportal/portal/internal/testproc"
)

// TestFirstHourTunnelRetryAndDismiss (issue 21, bug 7 and the tunnel error
// friction): with cloudflared missing, a tunnel created from the Tunnels
// form says so once (in its row, with the fix: install it or set
// CLOUDFLARED_BIN), the form only points there, and the failed row can be
// dismissed. On Overview a failed tunnel keeps a "Retry tunnel" button on
// the app's card; once cloudflared exists, that button brings it up.
func TestFirstHourTunnelRetryAndDismiss(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	fake := buildFakeCloudflared(t)
	cloudflared := filepath.Join(t.TempDir(), "cloudflared") // installed later
	p := startDashPortal(t, "/", map[string]string{
		"ENABLE_AUTH":                "false",
		"CLOUDFLARED_BIN":            cloudflared,
		"FAKE_CLOUDFLARED_STATE_DIR": t.TempDir(),
	})
	portalExt, echoExt := p.ext, p.echoExt
	b.expect("status of 503 (Service Unavailable) (http://127.0.0.1:" + fmt.Sprint(portalExt) + "/api/tunnels:")

	b.do("opening the Tunnels tab", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/#tunnels", portalExt)))
	b.waitJS("the form", `!document.getElementById('view-tunnels').hidden && document.querySelectorAll('#tunnel-app option').length > 0`)
	b.do("choosing another port", chromedp.SetValue(`#tunnel-app`, "__custom__"))
	evalJS[bool](b, `document.getElementById('tunnel-app').dispatchEvent(new Event('change'))`)
	other := freePort(t)
	b.do("typing a port", chromedp.SetValue(`#tunnel-custom`, fmt.Sprint(other)), chromedp.Click(`#tunnel-create`))
	otherRow := fmt.Sprintf(`document.querySelector('.tunnel[data-target="http://localhost:%d"]')`, other)
	b.waitJS("the failed row with Retry and Dismiss", otherRow+`?.dataset.state === 'failed' && !!`+otherRow+`.querySelector('button[data-action=dismiss]') && !`+otherRow+`.querySelector('button[data-action=stop]')`)
	b.waitJS("the form pointing at the row", `document.getElementById('tunnel-form-msg').textContent.includes('its row below')`)
	view := evalJS[string](b, `document.getElementById('view-tunnels').textContent`)
	if n := strings.Count(view, "cloudflared binary not available"); n != 1 {
		t.Errorf("the missing-binary error shows %d times in the Tunnels tab, want once:\n%s", n, view)
	}
	if !strings.Contains(view, "set CLOUDFLARED_BIN to its path") || !strings.Contains(view, "install cloudflared") {
		t.Errorf("the error does not say what to do:\n%s", view)
	}
	b.screenshot("firsthour-tunnel-failed.png")
	b.do("dismissing", chromedp.Click(fmt.Sprintf(`.tunnel[data-target="http://localhost:%d"] button[data-action=dismiss]`, other)))
	b.waitJS("the failed row gone", `!`+otherRow)

	// Overview: the CPU sparkline sits at the row's right, beside its
	// value, over a baseline across its width from the first sample.
	b.openTab("overview")
	spark := `[...document.querySelectorAll('.meter.with-spark')].find(m => m.textContent.startsWith('CPU'))`
	b.waitJS("the CPU meter's sparkline", `!!`+spark+`?.querySelector('svg.spark line.spark-base')`)
	gap := evalJS[float64](b, `(() => { const m = `+spark+`; return m.querySelector('.meter-value').getBoundingClientRect().left - m.querySelector('svg.spark').getBoundingClientRect().right; })()`)
	if gap < 0 || gap > 12 {
		t.Errorf("the sparkline ends %.0f px before its value, want it beside the value (at most 12 px)", gap)
	}
	// Snippets keep their words: a long line scrolls, it does not break.
	if ws := evalJS[string](b, `(() => { const p = document.createElement('pre'); const box = document.createElement('div'); box.className = 'codebox'; box.append(p); document.body.append(box); const w = getComputedStyle(p).whiteSpace; box.remove(); return w; })()`); ws != "pre" {
		t.Errorf("a snippet's white-space is %q, want pre (scroll, never break mid-word)", ws)
	}

	// The app's Tunnel button fails, and stays a Retry.
	echoCard := card("Echo")
	b.waitJS("Echo's Tunnel button", `!!`+echoCard+`?.querySelector('.tunnel-btn')`)
	b.do("tunnelling Echo", chromedp.Click(`#apps article.app[data-app="Echo"] .tunnel-btn`))
	b.waitJS("the failed badge and Retry tunnel on the card", echoCard+`?.querySelector('.badge.state-failed')?.textContent === 'tunnel failed' && `+echoCard+`.querySelector('button[data-action=retry-tunnel]')?.textContent === 'Retry tunnel'`)
	if title := evalJS[string](b, echoCard+`.querySelector('.badge.state-failed').title`); !strings.Contains(title, "CLOUDFLARED_BIN") {
		t.Errorf("the failed badge's title %q does not say why and what to do", title)
	}
	b.screenshot("firsthour-overview-retry.png")
	data, err := os.ReadFile(fake)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, cloudflared, string(data), 0o755)
	b.do("retrying from the card", chromedp.Click(`#apps article.app[data-app="Echo"] button[data-action=retry-tunnel]`))
	b.waitJS("the tunnel running, no Retry left", echoCard+`?.querySelector('.badge.state-running')?.textContent === 'tunnel running' && !`+echoCard+`.querySelector('button[data-action=retry-tunnel]')`)
	b.openTab("tunnels")
	b.waitJS("one row for Echo, running (the retry replaced the failure)", fmt.Sprintf(`[...document.querySelectorAll('.tunnel')].filter(r => r.dataset.target === 'http://localhost:%d').map(r => r.dataset.state).join() === 'running'`, echoExt))
}

// TestFirstHourSupervisordHint (issue 21): under `make run` the portal's
// socket is <checkout>/.run/supervisor.sock and nothing serves it; the
// Processes tab says how to start one (supervisord -c
// examples/supervisord.conf). Run that way (from a copy of the layout),
// examples/supervisord.conf serves exactly that socket: the tab lists its
// jupyter program.
func TestFirstHourSupervisordHint(t *testing.T) {
	skipShort(t)
	if _, err := exec.LookPath("supervisord"); err != nil {
		t.Skipf("supervisord: %v", err)
	}
	b := startChromium(t)
	checkout := t.TempDir()
	if err := os.MkdirAll(filepath.Join(checkout, ".run", "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(checkout, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join("..", "examples", "supervisord.conf"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(checkout, "examples", "supervisord.conf"), string(conf), 0o644)
	sock := filepath.Join(checkout, ".run", "supervisor.sock")
	portalExt := startDashPortal(t, "", map[string]string{"ENABLE_AUTH": "false", "SUPERVISOR_SOCKET": sock}).ext
	b.expect("status of 503 (Service Unavailable) (http://127.0.0.1:" + fmt.Sprint(portalExt) + "/api/processes:")
	b.do("opening the Processes tab", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/#processes", portalExt)))
	b.waitJS("the hint with the command", `document.querySelector('#procs .procs-hint pre')?.textContent === 'supervisord -c examples/supervisord.conf'`)
	b.screenshot("firsthour-procs-hint.png")

	// The hint's command, run where it says (the checkout's root).
	cmd := exec.Command("supervisord", "-c", "examples/supervisord.conf")
	cmd.Dir = checkout
	testproc.Start(t, cmd, testproc.Options{Name: "supervisord"})
	b.waitJS("the jupyter program listed", `!!document.querySelector('#procs article.proc[data-proc="jupyter"]') && !document.querySelector('#procs .procs-hint')`)
}
