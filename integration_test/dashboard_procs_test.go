package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// procsPortal is the portal of the process-control tests: the binary under
// test beside real supervisord running three dummy programs — "web", a
// Python web server that is the app Web; "worker", listed in
// PORTAL_UNSTOPPABLE; "extra", whose wrapper sources the image's own
// exit_portal.sh for "Extra App", which portal.yaml lacks, so it skips
// itself — plus a links file with one good card and one bad entry, and the
// stand-in cloudflared.
type procsPortal struct {
	*Portal
	ext, internal, webExt, laterExt int
	password                        string
	logDir                          string
}

func startProcsPortal(t *testing.T) *procsPortal {
	t.Helper()
	skipShort(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 serves the dummy web app: %v", err)
	}
	pp := &procsPortal{password: "procs-dash-secret-5150"}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	skipDir := filepath.Join(dir, "skip")
	site := filepath.Join(dir, "site")
	for _, d := range []string{logDir, site} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(site, "index.html"), "<!doctype html><title>Web</title><p id=hello>hello from the web program</p>\n", 0o644)
	webPort := freePort(t)
	pp.ext, pp.internal, pp.webExt, pp.laterExt = freePort(t), freePort(t), freePort(t), freePort(t)
	yaml := portalYAML(
		appYAML("Instance Portal", pp.ext, pp.internal, "/"),
		appYAML("Web", pp.webExt, webPort, "/"),
		appYAML("Later", pp.laterExt, freePort(t), "/"), // no program, nothing listens: the starting-up page
	)
	// exit_portal.sh reads portal.yaml through `caddy portal app`: the same
	// file the portal gets, with the binary under test as caddy on PATH.
	wrapperYAML := filepath.Join(dir, "portal.yaml")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, wrapperYAML, yaml, 0o644)
	if err := os.Symlink(caddyBin, filepath.Join(bin, "caddy")); err != nil {
		t.Fatal(err)
	}
	utils, err := filepath.Abs("../rootfs/opt/supervisor-scripts/utils")
	if err != nil {
		t.Fatal(err)
	}
	sock := supervisordtest.Start(t, fmt.Sprintf(`
[program:web]
command=%[1]s -u -m http.server %[2]d --bind 127.0.0.1 --directory %[3]s
startsecs=1
stopwaitsecs=5
redirect_stderr=true
stdout_logfile=%[4]s/web.log

[program:worker]
command=/bin/sh -c 'echo "worker: ready to take jobs"; exec sleep 300'
startsecs=0
redirect_stderr=true
stdout_logfile=%[4]s/worker.log

[program:extra]
command=/bin/bash -c '. "%[6]s/exit_portal.sh" "Extra App"; echo "extra: must not get here"; exec sleep 300'
environment=PROC_NAME="%%(program_name)s",PORTAL_YAML="%[7]s",PORTAL_SKIP_DIR="%[5]s",PORTAL_SKIP_SLEEP="0",PATH="%[8]s:/usr/bin:/bin"
startsecs=0
autorestart=false
exitcodes=0
redirect_stderr=true
stdout_logfile=%[4]s/extra.log
`, python, webPort, site, logDir, skipDir, utils, wrapperYAML, bin))

	links := filepath.Join(dir, "links.yaml")
	linksYAML := `- label: Model hub
  url: https://hub.example/models
  description: Browse the models this template knows.
  icon: cube
  position: before
  button_text: Browse
  links:
    - label: Datasets
      url: https://hub.example/datasets
- label: Broken FTP
  url: ftp://files.example/
- label: Release notes <script>alert(1)</script>
  url: https://notes.example/
  icon: rocket
`
	mustWrite(t, links, linksYAML, 0o644)
	cloudflared := buildFakeCloudflared(t)
	pp.Portal = StartPortal(t, yaml, PortalOptions{Env: map[string]string{
		"ENABLE_AUTH":         "true",
		"WEB_PASSWORD":        pp.password,
		"VAST_CONTAINERLABEL": "C.5150",
		"PORTAL_LOG_DIR":      logDir,
		"SUPERVISOR_SOCKET":   sock,
		"PORTAL_SKIP_DIR":     skipDir,
		"PORTAL_UNSTOPPABLE":  "worker",
		"PORTAL_LINKS_FILE":   links,
		"PORTAL_LINKS":        "Team wiki|https://wiki.example/|Notes of the team",
		// The page is opened on 127.0.0.1; PUBLIC_IPADDR=localhost makes the
		// apps' direct links another origin, which needs the handoff.
		"PUBLIC_IPADDR":                              "localhost",
		fmt.Sprintf("VAST_TCP_PORT_%d", pp.ext):      fmt.Sprint(pp.ext),
		fmt.Sprintf("VAST_TCP_PORT_%d", pp.webExt):   fmt.Sprint(pp.webExt),
		fmt.Sprintf("VAST_TCP_PORT_%d", pp.laterExt): fmt.Sprint(pp.laterExt),
		"VAST_TCP_PORT_22":                           "40022",
		"CLOUDFLARED_BIN":                            cloudflared,
		"FAKE_CLOUDFLARED_STATE_DIR":                 t.TempDir(),
	}})
	pp.logDir = logDir
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", pp.internal), 200)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy's output:\n%s", pp.Logs())
		}
	})
	return pp
}

// card is the predicate source for the app card named name.
func card(name string) string {
	return fmt.Sprintf(`document.querySelector('#apps article.app[data-app=%q]')`, name)
}

// procRow is the predicate source for the Processes row of program name.
func procRow(name string) string {
	return fmt.Sprintf(`document.querySelector('#procs article.proc[data-proc=%q]')`, name)
}

// TestDashboardProcessesAndApps drives process control and the app states
// in Chromium through the portal's external port: the Processes tab lists
// the three programs, the protected one without Stop or Restart; Stop on
// "web" turns its app card "stopped" (sorted last, with Start), Start turns
// it "running" again; the skipped program's app is "not configured" with the
// recipe; "Show log" opens the program's log; the Tools & Help tab shows the
// links file's card before the built-in ones and a warning for the bad
// entry, all text as text. Screenshots of every tab, light and dark.
func TestDashboardProcessesAndApps(t *testing.T) {
	pp := startProcsPortal(t)
	b := startChromium(t)
	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/?token=%s", pp.ext, pp.password)))

	// Overview: every app with its live state.
	b.waitJS("Web running", card("Web")+`?.dataset.state === 'running'`)
	// No program of supervisord's matches Later and nothing answers on its
	// port: "not answering" (it said "external", which read as fine).
	b.waitJS("Later not answering", card("Later")+`?.dataset.state === 'not_answering'`)
	if got := evalJS[string](b, card("Later")+`.querySelector('.app-state').textContent`); got != "not answering" {
		t.Errorf("Later's pill says %q", got)
	}
	b.waitJS("Extra App not configured", card("Extra App")+`?.dataset.state === 'not_configured'`)
	if got := evalJS[string](b, card("Extra App")+`.querySelector('.howto').textContent`); !strings.Contains(got, "/etc/portal.yaml") || !strings.Contains(got, "name: Extra App") {
		t.Errorf("the not-configured card does not say how to add it: %q", got)
	}
	if got := evalJS[string](b, card("Instance Portal")+`.dataset.state`); got != "running" {
		t.Errorf("the portal's own card is %q", got)
	}
	order := evalJS[[]string](b, `[...document.querySelectorAll('#apps article.app')].map(a => a.dataset.app)`)
	if strings.Join(order, ",") != "Instance Portal,Web,Later,Extra App" {
		t.Errorf("app order %q: the not-configured app goes last", order)
	}

	// Processes: the protected program has neither Stop nor Restart.
	b.openTab("processes")
	b.waitJS("the three programs", `!!(`+procRow("web")+` && `+procRow("worker")+` && `+procRow("extra")+`)`)
	b.waitJS("worker running", procRow("worker")+`.dataset.state === 'RUNNING'`)
	if got := evalJS[[]string](b, `[...`+procRow("worker")+`.querySelectorAll('button')].map(b => b.dataset.action)`); strings.Join(got, ",") != "log" {
		t.Errorf("the protected program's buttons: %q, want only Show log", got)
	}
	if got := evalJS[string](b, procRow("worker")+`.textContent`); !strings.Contains(got, "protected") || !strings.Contains(got, "up ") {
		t.Errorf("the protected program's row: %q", got)
	}
	if got := evalJS[string](b, procRow("extra")+`.textContent`); !strings.Contains(got, "skipped: Extra App not configured") {
		t.Errorf("the skipped program's row: %q", got)
	}
	if out, _ := os.ReadFile(filepath.Join(pp.logDir, "extra.log")); !strings.Contains(string(out), "Skipping extra startup (not in ") || strings.Contains(string(out), "must not get here") {
		t.Errorf("exit_portal.sh did not skip the program; its log:\n%s", out)
	}

	// Stop "web" here; its card turns stopped, sorts last, offers Start.
	b.waitJS("web running", procRow("web")+`.dataset.state === 'RUNNING' && !!`+procRow("web")+`.querySelector('button[data-action=stop]')`)
	b.do("stopping web", chromedp.Click(`#procs article.proc[data-proc="web"] button[data-action=stop]`))
	b.waitJS("web stopped", procRow("web")+`.dataset.state === 'STOPPED' && !!`+procRow("web")+`.querySelector('button[data-action=start]')`)
	b.openTab("overview")
	b.waitJS("Web's card stopped", card("Web")+`?.dataset.state === 'stopped'`)
	order = evalJS[[]string](b, `[...document.querySelectorAll('#apps article.app')].map(a => a.dataset.app)`)
	if strings.Join(order, ",") != "Instance Portal,Later,Web,Extra App" {
		t.Errorf("app order %q: the stopped app goes to the end", order)
	}
	b.screenshot("apps-web-stopped.png")
	// Start it from the Processes tab again; the card follows.
	b.openTab("processes")
	b.do("starting web", chromedp.Click(`#procs article.proc[data-proc="web"] button[data-action=start]`))
	b.waitJS("web running again", procRow("web")+`.dataset.state === 'RUNNING'`)
	b.openTab("overview")
	b.waitJS("Web's card running", card("Web")+`?.dataset.state === 'running'`)
	// And once more from the card itself.
	b.openTab("processes")
	b.do("stopping web", chromedp.Click(`#procs article.proc[data-proc="web"] button[data-action=stop]`))
	b.waitJS("web stopped", procRow("web")+`.dataset.state === 'STOPPED'`)
	b.openTab("overview")
	b.waitJS("Start on the card", `!!`+card("Web")+`?.querySelector('button[data-action=start]')`)
	b.do("starting from the card", chromedp.Click(`#apps article.app[data-app="Web"] button[data-action=start]`))
	b.waitJS("Web's card running", card("Web")+`?.dataset.state === 'running'`)

	// Show log: the program's own file in the Logs tab.
	b.openTab("processes")
	b.do("showing worker's log", chromedp.Click(`#procs article.proc[data-proc="worker"] button[data-action=log]`))
	b.waitJS("the Logs tab on worker.log", `!document.getElementById('view-logs').hidden && document.querySelector('#log-files .chip.active')?.dataset.file === 'worker.log'`)
	b.waitJS("worker's line", `document.getElementById('log').textContent.includes('worker: ready to take jobs')`)

	// Tools & Help: the file's card before the built-in ones, the bad
	// entry warned about, markup in a label shown as text.
	b.openTab("help")
	b.waitJS("the cards", `document.querySelectorAll('#help-list article.help-card').length >= 7`)
	cards := evalJS[[]string](b, `[...document.querySelectorAll('#help-list article.help-card')].map(c => c.dataset.source + ':' + c.querySelector('h3').textContent)`)
	if len(cards) < 3 || cards[0] != "file:Model hub" || !strings.HasPrefix(cards[1], "builtin:") || cards[len(cards)-1] != "env:Team wiki" {
		t.Errorf("card order %q: want the file's 'before' card first, the built-in cards, …, PORTAL_LINKS last", cards)
	}
	if !strings.Contains(strings.Join(cards, "|"), "file:Release notes <script>alert(1)</script>") {
		t.Errorf("the label with markup is not shown as text: %q", cards)
	}
	if n := evalJS[int](b, `document.querySelectorAll('#help-list script, #help-warnings script').length`); n != 0 {
		t.Errorf("%d script elements in the Tools & Help page", n)
	}
	hub := evalJS[[]string](b, `(() => { const c = document.querySelector('#help-list article.help-card'); return [c.querySelector('a.btn.primary').href, c.querySelector('a.btn.primary').textContent, c.querySelector('.icon').dataset.icon, [...c.querySelectorAll('a.btn.small')].map(a => a.textContent + '=' + a.href).join(',')]; })()`)
	if hub[0] != "https://hub.example/models" || hub[1] != "Browse ↗" || hub[2] != "cube" || hub[3] != "Datasets ↗=https://hub.example/datasets" {
		t.Errorf("the Model hub card: %q", hub)
	}
	b.waitJS("the warning for the bad entry", `!document.getElementById('help-warnings').hidden && document.getElementById('help-warnings').textContent.includes('Broken FTP')`)
	if got := evalJS[string](b, `document.getElementById('help-warnings').textContent`); !strings.Contains(got, "ftp://files.example/") || !strings.Contains(got, "links.yaml") {
		t.Errorf("the warning %q does not name the file and the URL", got)
	}
	if got := evalJS[string](b, `document.getElementById('help-list').textContent`); strings.Contains(got, pp.password) {
		t.Error("the Tools & Help page shows the login secret")
	}

	// A tunnel, so that the Tunnels tab has something to show.
	b.openTab("tunnels")
	b.do("a tunnel for Web", chromedp.SetValue(`#tunnel-app`, fmt.Sprint(pp.webExt)), chromedp.Click(`#tunnel-create`))
	b.waitJS("Web's tunnel running", fmt.Sprintf(`document.querySelector('.tunnel[data-target="http://localhost:%d"]')?.dataset.state === 'running'`, pp.webExt))

	// Logs with colours, 24-bit included, for the screenshots.
	appendFile(t, filepath.Join(pp.logDir, "colours.log"),
		"\x1b[32mINFO\x1b[0m plain 16 colours, \x1b[38;5;208m256-colour orange\x1b[0m, \x1b[38;2;255;105;180mtruecolor pink\x1b[0m on \x1b[48;2;20;40;80mtruecolor navy\x1b[0m\n"+
			"\x1b[1;31mERROR\x1b[0m something failed \x1b[38;2;0;200;120m(24-bit green)\x1b[0m\n")
	b.openTab("logs")
	// The archive button names the directory it downloads (it said
	// /var/log whatever the log directory was, issue 21).
	if got, want := evalJS[string](b, `document.getElementById('logs-download-all').textContent`), "Download "+filepath.Dir(pp.logDir); got != want {
		t.Errorf("archive button %q, want %q", got, want)
	}
	b.do("all files", chromedp.Click(`#log-files .chip[data-file=""]`))
	b.waitJS("the coloured lines", `document.getElementById('log').textContent.includes('truecolor navy')`)
	// 24-bit colours arrive as term-fgt-/term-bgt- classes and are drawn as
	// inline colours; 256 colours likewise.
	colours := evalJS[[]string](b, `[...document.querySelectorAll('#log span')].filter(s => /truecolor|orange/.test(s.textContent) && s.style.cssText).map(s => s.textContent + '=' + s.style.cssText)`)
	if got := strings.Join(colours, "|"); got != "256-colour orange=color: rgb(255, 135, 0);|truecolor pink=color: rgb(255, 105, 180);|truecolor navy=background-color: rgb(20, 40, 80);" {
		t.Errorf("coloured spans: %q", got)
	}
	// Download /var/log: one archive of the portal's logs and log-tee's copies.
	if got := evalJS[string](b, `fetch(document.getElementById('logs-download-all').href).then(r => r.status + ' ' + r.headers.get('content-type') + ' ' + r.headers.get('content-disposition'))`); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "gzip") {
		t.Errorf("Download /var/log answered %q", got)
	}
	b.screenshot("logs-truecolor.png")

	b.checkThemes()
	b.screenshotTabs("tab")

	// The SSH dialog: one runnable command and what to open after it.
	b.openTab("overview")
	b.do("opening Web's SSH dialog", chromedp.Click(`#apps article.app[data-app="Web"] button.ssh-btn`))
	b.waitJS("the dialog", `document.getElementById('ssh-dialog').open`)
	if got := evalJS[string](b, `document.querySelector('#ssh-dialog .ssh-command').textContent`); !strings.HasPrefix(got, "ssh -p 40022 root@localhost -L ") || strings.ContainsAny(got, ",<>") {
		t.Errorf("the SSH command %q is not one runnable command", got)
	}
	b.screenshot("ssh-dialog.png")
	// Copy puts exactly that command on the clipboard, and ssh parses it.
	b.stubClipboard()
	b.do("copying the command", chromedp.Click(`#ssh-dialog button.ssh-copy`))
	b.waitJS("the copied command", `typeof window.__copied === 'string'`)
	copied := evalJS[string](b, `window.__copied`)
	if want := evalJS[string](b, `document.querySelector('#ssh-dialog .ssh-command').textContent`); copied != want {
		t.Errorf("Copy copied %q, the dialog shows %q", copied, want)
	}
	if ssh, err := exec.LookPath("ssh"); err == nil {
		args := strings.Fields(copied)
		if out, err := exec.Command(ssh, append([]string{"-G", "-F", "/dev/null"}, args[1:]...)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "port 40022") {
			t.Errorf("ssh -G refuses the copied command %q: %v\n%s", copied, err, out)
		}
	}
	b.do("closing it", chromedp.Click(`#ssh-dialog button[value=close]`))
	b.waitJS("the dialog closed", `!document.getElementById('ssh-dialog').open`)

	// A phone: every tab in one column, nothing wider than the screen.
	b.do("a phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, tab := range []string{"overview", "processes", "tunnels", "logs", "help"} {
		b.openTab(tab)
		b.waitJS("no horizontal overflow at 390 px on "+tab, `document.documentElement.scrollWidth <= window.innerWidth`)
		// Nothing is cut at the edge either (the Logs tab's ↓ was), and
		// an app's addresses are not truncated (issue 21).
		cut := evalJS[[]string](b, fmt.Sprintf(`[...document.querySelectorAll('#view-%s button, #view-%s input, #view-%s a')]
			.filter(e => e.offsetParent && e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > window.innerWidth + 0.5)
			.map(e => (e.id || e.textContent.trim() || e.tagName) + ' ends at ' + Math.round(e.getBoundingClientRect().right))
			.concat([...document.querySelectorAll('#view-%s .ports')].filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1).map(e => 'truncated: ' + e.textContent))`, tab, tab, tab, tab))
		if len(cut) > 0 {
			t.Errorf("at 390 px on %s: %v", tab, cut)
		}
		b.screenshot("phone-" + tab + ".png")
	}

	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}

// TestDashboardOpenWithHandoff opens an app on another origin from the
// dashboard: the page is on 127.0.0.1, Web's direct link on localhost
// (PUBLIC_IPADDR=localhost), where the session cookie does not go. The
// click asks POST /api/handoff for a one-time token and the new tab arrives
// logged in, the token gone from its address; the same token used again is
// refused. Then the pages around the dashboard, for a person to look at:
// the starting-up page, the logout page, the 401 page.
func TestDashboardOpenWithHandoff(t *testing.T) {
	pp := startProcsPortal(t)
	b := startChromium(t)
	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/?token=%s", pp.ext, pp.password)))
	webURL := fmt.Sprintf("http://localhost:%d/", pp.webExt)
	b.waitJS("Web's Open link on the other origin", card("Web")+fmt.Sprintf(`?.dataset.state === 'running' && `+card("Web")+`.querySelector('a.btn.primary')?.href === %q`, webURL))
	if got := evalJS[string](b, card("Web")+`.querySelector('a.btn.primary').dataset.handoff || ''`); got != "1" {
		t.Fatalf("the cross-origin Open link is not marked for a handoff (%q)", got)
	}

	// The click: a new tab, logged in on localhost, the token stripped.
	newTab := chromedp.WaitNewTarget(b.ctx, func(info *target.Info) bool { return info.Type == "page" })
	b.do("clicking Open", chromedp.Click(`#apps article.app[data-app="Web"] a.btn.primary`))
	var id target.ID
	select {
	case id = <-newTab:
	case <-time.After(10 * time.Second):
		t.Fatal("no new tab after clicking Open")
	}
	tabCtx, cancelTab := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	defer cancelTab()
	tab := &dashboardBrowser{t: t, ctx: tabCtx}
	tab.waitJS("the app, logged in, without the token in its address",
		fmt.Sprintf(`location.href === %q && document.getElementById('hello')?.textContent === 'hello from the web program'`, webURL))
	// Close it: a page in a background tab is hidden, and the dashboard
	// polls nothing while hidden.
	if err := chromedp.Cancel(tabCtx); err != nil {
		t.Fatal(err)
	}
	b.do("the dashboard's tab in front", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.BringToFront, cdp.Empty{})
		return err
	}))
	b.waitJS("the dashboard visible", `!document.hidden`)

	// Replay: a token the page obtains works once.
	link := evalJS[string](b, fmt.Sprintf(`portalDashboard.handoffLink(%q)`, webURL))
	if !strings.Contains(link, "portal_handoff=") || strings.Contains(link, pp.password) {
		t.Fatalf("handoff link %q", link)
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	first, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	if first.StatusCode >= 400 || len(first.Cookies()) == 0 {
		t.Errorf("first use of the handoff link: %s, cookies %v; want accepted with a session cookie", first.Status, first.Cookies())
	}
	again, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusUnauthorized {
		t.Errorf("the replayed handoff link: %s, want 401", again.Status)
	}

	// The starting-up page of an app nothing listens for (logged in): its
	// 502s are how it knows, and Chromium logs each.
	b.expect(fmt.Sprintf("status of 502 (Bad Gateway) (http://127.0.0.1:%d/", pp.laterExt))
	b.do("opening Later", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pp.laterExt)))
	b.waitJS("the starting-up page", `document.body.textContent.includes('starting')`)
	b.screenshot("page-starting.png")
	// The dashboard's Log out leads to vastauth's logout page; its button
	// (a POST) ends the session; the dashboard then answers 401 with the
	// page that says how to log in.
	b.do("back to the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pp.ext)))
	b.waitJS("the Log out button", `!document.getElementById('logout').hidden`)
	b.do("Log out", chromedp.Click(`#logout`))
	b.waitJS("the logout page", `location.pathname === '/.portal/logout' && !!document.querySelector('form[method=post] button')`)
	b.screenshot("page-logout.png")
	b.do("confirming", chromedp.Click(`form[method=post] button`))
	b.waitJS("the logged-out page", `document.readyState === 'complete' && !document.querySelector('form[method=post] button')`)
	b.screenshot("page-logged-out.png")
	stop := b.cancelLoginPrompts()
	b.expect(fmt.Sprintf("status of 401 (Unauthorized) (http://127.0.0.1:%d/", pp.ext))
	b.do("the dashboard without a session", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pp.ext)))
	b.waitJS("the 401 page", `document.readyState === 'complete' && !window.portalDashboard`)
	b.screenshot("page-401.png")
	stop()
	if got := evalJS[string](b, `document.documentElement.textContent`); strings.Contains(got, pp.password) {
		t.Error("the 401 page shows the login secret")
	}
}
