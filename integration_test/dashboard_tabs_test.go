package integration_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// openTab switches the dashboard to one of its tabs the way a user does,
// with a click on the tab, and waits until its view is shown.
func (b *dashboardBrowser) openTab(tab string) {
	b.t.Helper()
	b.do("opening the "+tab+" tab", chromedp.Click(`#tab-`+tab))
	b.waitJS("the "+tab+" view", fmt.Sprintf(`!document.getElementById('view-%s').hidden`, tab))
}

// setColorScheme makes the page see prefers-color-scheme: light or dark,
// and waits until it does.
func (b *dashboardBrowser) setColorScheme(scheme string) {
	b.t.Helper()
	b.do("emulating "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
	b.waitJS("the "+scheme+" scheme", fmt.Sprintf(`matchMedia('(prefers-color-scheme: %s)').matches`, scheme))
}

// stubClipboard replaces the Clipboard API's writeText with one that keeps
// the text in window.__copied, so the test can read what Copy copied.
func (b *dashboardBrowser) stubClipboard() {
	b.t.Helper()
	evalJS[bool](b, `(() => {
		window.__copied = null;
		if (!navigator.clipboard) return false;
		navigator.clipboard.writeText = async (t) => { window.__copied = t; };
		return true;
	})()`)
}

// checkThemes checks the page's background under each system scheme and
// each theme a user can pick: the pick wins, the system's scheme decides
// otherwise. The page's own pick is put back after.
func (b *dashboardBrowser) checkThemes() {
	b.t.Helper()
	bg := map[string]string{"light": "rgb(243, 245, 248)", "dark": "rgb(10, 14, 19)"}
	picked := evalJS[string](b, `document.documentElement.getAttribute('data-theme') || ''`)
	for _, system := range []string{"light", "dark"} {
		b.setColorScheme(system)
		for _, pick := range []string{"", "light", "dark"} {
			want := bg[system]
			if pick != "" {
				want = bg[pick]
			}
			got := evalJS[string](b, fmt.Sprintf(`(() => {
				const r = document.documentElement;
				if (%[1]q) r.setAttribute('data-theme', %[1]q); else r.removeAttribute('data-theme');
				return getComputedStyle(document.body).backgroundColor;
			})()`, pick))
			if got != want {
				b.t.Errorf("system %s, picked %q: background %s, want %s", system, pick, got, want)
			}
		}
	}
	evalJS[bool](b, fmt.Sprintf(`(() => {
		if (%[1]q) document.documentElement.setAttribute('data-theme', %[1]q); else document.documentElement.removeAttribute('data-theme');
		return true;
	})()`, picked))
	// The theme button: on each system scheme the first click shows the
	// other scheme (it used to pick "light" on a light system, which
	// changed nothing visible), the second the system's own, the third
	// follows the system again (issue 21).
	for _, system := range []string{"light", "dark"} {
		b.setColorScheme(system)
		other := map[string]string{"light": "dark", "dark": "light"}[system]
		evalJS[bool](b, `(localStorage.removeItem('portal-theme'), document.documentElement.removeAttribute('data-theme'), true)`)
		for i, want := range []string{other, system, ""} {
			b.do("clicking the theme button", chromedp.Click(`#theme`))
			if got := evalJS[string](b, `document.documentElement.getAttribute('data-theme') || ''`); got != want {
				b.t.Errorf("system %s, click %d: theme %q, want %q", system, i+1, got, want)
			}
			cookie := evalJS[string](b, `document.cookie`)
			if (want != "") != strings.Contains(cookie, "portal_theme="+want) {
				b.t.Errorf("system %s, click %d: cookie %q", system, i+1, cookie)
			}
		}
	}
	evalJS[bool](b, fmt.Sprintf(`(() => {
		if (%[1]q) { localStorage.setItem('portal-theme', %[1]q); document.documentElement.setAttribute('data-theme', %[1]q); }
		return true;
	})()`, picked))
	b.setColorScheme("light")
}

// screenshotTabs shoots every tab in the light and the dark theme.
func (b *dashboardBrowser) screenshotTabs(prefix string) {
	b.t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		b.setColorScheme(scheme)
		for _, tab := range []string{"overview", "processes", "tunnels", "logs", "help"} {
			b.openTab(tab)
			b.waitJS("the "+tab+" tab drawn", fmt.Sprintf(`![...document.querySelectorAll('#view-%s .empty')].some(e => /^(Loading|Reading)/.test(e.textContent.trim()))`, tab))
			b.screenshot(fmt.Sprintf("%s-%s-%s.png", prefix, tab, scheme))
		}
	}
	b.setColorScheme("light")
}

// TestDashboardTunnelsAndLogsTabs drives the Tunnels and Logs tabs in
// Chromium against the real binary: a tunnel to a typed port (errors from
// the page and from the API shown under the form), a failed tunnel offering
// Retry (cloudflared missing), then running after Retry once it is
// installed, Copy, Refresh, Stop; in the Logs tab search with next/previous
// (including a match older than the lines on screen), pause and resume with
// the lines counted meanwhile, Copy of the lines shown, and a pause that
// holds more lines than the page keeps (Resume restarts the stream).
func TestDashboardTunnelsAndLogsTabs(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	fake := buildFakeCloudflared(t)
	binDir := t.TempDir()
	cloudflared := filepath.Join(binDir, "cloudflared") // installed later

	const password = "tabs-test-secret-9876"
	p := startDashPortal(t, "/", map[string]string{
		"ENABLE_AUTH":                "true",
		"WEB_PASSWORD":               password,
		"CLOUDFLARED_BIN":            cloudflared,
		"FAKE_CLOUDFLARED_STATE_DIR": t.TempDir(),
	})
	portalExt, echoExt, echo := p.ext, p.echoExt, p.echo
	logDir := filepath.Join(p.Dir, "log")
	// Lines of two files written alternately while the portal follows them:
	// All files must show them in that order, not one file after the other.
	// Each write waits until the portal has streamed the one before, so each
	// is read on its own. The first request starts the tailers.
	waitStatus(t, nil, p.url("/api/logs/files"), 200)
	ws := dialLogs(t, context.Background(), p.internal, "?tail=0")
	for _, w := range []struct{ file, line string }{{"a.log", "alpha one"}, {"b.log", "bravo one"}, {"a.log", "needle in a"}, {"b.log", "NEEDLE in b"}} {
		appendFile(t, filepath.Join(logDir, w.file), w.line+"\n")
		wsLines(t, context.Background(), ws, w.file, []string{w.line})
	}
	ws.CloseNow()

	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/?token=%s#tunnels", portalExt, password)))
	b.waitJS("the Tunnels tab from the URL", `!document.getElementById('view-tunnels').hidden && document.getElementById('tab-tunnels').getAttribute('aria-selected') === 'true'`)
	// The refusals below are shown on the page; Chromium logs each too.
	b.expect("status of 400 (Bad Request) (http://127.0.0.1:" + fmt.Sprint(portalExt) + "/api/tunnels:")
	b.expect("status of 503 (Service Unavailable) (http://127.0.0.1:" + fmt.Sprint(portalExt) + "/api/tunnels:")
	b.waitJS("the app list in the form", `[...document.querySelectorAll('#tunnel-app option')].some(o => o.textContent.startsWith('Echo'))`)

	// Typed targets: the page's own check, then the API's rule, inline.
	formMsg := `document.getElementById('tunnel-form-msg').textContent`
	b.do("choosing another port", chromedp.SetValue(`#tunnel-app`, "__custom__"), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`document.getElementById('tunnel-app').dispatchEvent(new Event('change'))`)(ctx, tg)
		return err
	}))
	b.waitJS("the port field", `!document.getElementById('tunnel-custom').hidden`)
	b.do("typing a bad port", chromedp.SendKeys(`#tunnel-custom`, "70000"), chromedp.Click(`#tunnel-create`))
	b.waitJS("the page's error", formMsg+` === 'A port is a number from 1 to 65535'`)
	b.do("typing a foreign host", chromedp.SetValue(`#tunnel-custom`, "http://example.com:80"), chromedp.Click(`#tunnel-create`))
	b.waitJS("the API's error", formMsg+`.includes('host must be localhost, 127.0.0.1 or ::1')`)

	// cloudflared is missing: the API answers 503 and the tunnel is failed.
	b.do("typing Echo's port", chromedp.SetValue(`#tunnel-custom`, fmt.Sprint(echoExt)), chromedp.Click(`#tunnel-create`))
	b.waitJS("the form pointing at the failed row", formMsg+`.includes('its row below')`)
	target := fmt.Sprintf("http://localhost:%d", echoExt)
	row := fmt.Sprintf(`document.querySelector('.tunnel[data-target=%q]')`, target)
	b.waitJS("the failed tunnel with Retry", row+`?.dataset.state === 'failed' && `+row+`.querySelector('button[data-action=refresh]').textContent === 'Retry'`)
	if got := evalJS[string](b, row+`.querySelector('strong').textContent`); got != "Echo" {
		t.Errorf("the tunnel to Echo's port is titled %q", got)
	}

	// Installed now: Retry starts it.
	data, err := os.ReadFile(fake)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, cloudflared, string(data), 0o755)
	b.do("retrying", chromedp.Click(fmt.Sprintf(`.tunnel[data-target=%q] button[data-action=refresh]`, target)))
	b.waitJS("the tunnel running with its URL and Refresh", row+`?.dataset.state === 'running' && /trycloudflare\.com/.test(`+row+`.querySelector('.tunnel-url a')?.href || '') && `+row+`.querySelector('button[data-action=refresh]').textContent === 'Refresh'`)
	b.stubClipboard()
	b.do("copying the address", chromedp.Click(fmt.Sprintf(`.tunnel[data-target=%q] button[data-action=copy]`, target)))
	b.waitJS("the copied address", `typeof window.__copied === 'string' && window.__copied === `+row+`.querySelector('.tunnel-url a').href`)
	b.screenshot("tunnels-running.png")
	b.do("stopping", chromedp.Click(fmt.Sprintf(`.tunnel[data-target=%q] button[data-action=stop]`, target)))
	b.waitJS("the tunnel gone", `!`+row)
	b.waitJS("its app back in the form", `[...document.querySelectorAll('#tunnel-app option')].some(o => o.textContent.startsWith('Echo'))`)

	// A tunnel to Echo's internal port would skip the portal's login: the
	// API's warning shows under the form with the external port offered.
	b.do("choosing another port", chromedp.SetValue(`#tunnel-app`, "__custom__"), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`document.getElementById('tunnel-app').dispatchEvent(new Event('change'))`)(ctx, tg)
		return err
	}))
	b.do("typing Echo's internal port", chromedp.SetValue(`#tunnel-custom`, fmt.Sprint(echo.Port)), chromedp.Click(`#tunnel-create`))
	b.waitJS("the warning", formMsg+`.includes('internal port of "Echo"') && !!document.querySelector('#tunnel-form-msg button[data-action=use-suggested]')`)
	if got := evalJS[string](b, `document.querySelector('#tunnel-form-msg button[data-action=use-suggested]').textContent`); got != "Use "+target+" (with login)" {
		t.Errorf("the suggestion reads %q", got)
	}
	b.waitJS("the row saying so", fmt.Sprintf(`document.querySelector('.tunnel[data-target="http://localhost:%d"]')?.textContent.includes('Echo · internal port') && document.querySelector('.tunnel[data-target="http://localhost:%d"] .badge.warn')?.textContent === 'no login'`, echo.Port, echo.Port))
	b.screenshot("tunnels-warning.png")
	b.do("taking the suggestion", chromedp.Click(`#tunnel-form-msg button[data-action=use-suggested]`))
	internalRow := fmt.Sprintf(`document.querySelector('.tunnel[data-target="http://localhost:%d"]')`, echo.Port)
	b.waitJS("the authenticated tunnel running, the other gone", `!`+internalRow+` && `+row+`?.dataset.state === 'running'`)

	// Logs: search over both files, marks, next/previous.
	b.openTab("logs")
	b.waitJS("both files' lines", `document.getElementById('log').textContent.includes('NEEDLE in b') && document.getElementById('log').textContent.includes('needle in a')`)
	order := evalJS[[]string](b, `[...document.querySelectorAll('#log .ln')].map(l => l.textContent).filter(t => /alpha one|bravo one|needle in a|NEEDLE in b/.test(t))`)
	if strings.Join(order, "|") != "a.logalpha one|b.logbravo one|a.logneedle in a|b.logNEEDLE in b" {
		t.Errorf("All files shows the snapshot as %q, want the lines interleaved as they arrived", order)
	}
	hits := `document.getElementById('log-hits').textContent`
	b.do("searching", chromedp.SendKeys(`#log-q`, "needle"))
	b.waitJS("two matches, none current yet", hits+` === '– / 2' && document.querySelectorAll('#log mark').length === 2`)
	b.do("next", chromedp.Click(`#log-next`))
	b.waitJS("the first match current", hits+` === '1 / 2' && document.querySelector('#log mark.current')?.textContent === 'needle'`)
	b.do("next", chromedp.Click(`#log-next`))
	b.waitJS("the second match current", hits+` === '2 / 2' && document.querySelector('#log mark.current')?.textContent === 'NEEDLE'`)
	b.do("previous", chromedp.Click(`#log-prev`))
	b.waitJS("back to the first", hits+` === '1 / 2'`)
	// One file selected: only its lines are searched.
	b.do("selecting b.log", chromedp.Click(`#log-files .chip[data-file="b.log"]`))
	b.waitJS("one match in b.log", hits+` === '– / 1'`)
	b.do("all files again", chromedp.Click(`#log-files .chip[data-file=""]`))

	// A match older than the 2000 lines on screen is still found and shown.
	var burst strings.Builder
	burst.WriteString("ancient needle line\n")
	for i := range 2500 {
		fmt.Fprintf(&burst, "filler %04d\n", i)
	}
	appendFile(t, filepath.Join(logDir, "a.log"), burst.String())
	b.waitJS("the burst", `document.getElementById('log').lastElementChild.textContent.endsWith('filler 2499')`)
	// The file's chip shows its new size without a reload (it stayed at the
	// size first read, issue 21): a.log is now about 29 KiB.
	b.waitJS("a.log's chip size updated", `/^\d+(\.\d+)? KiB$/.test(document.querySelector('#log-files .chip[data-file="a.log"] .chip-size')?.textContent || '') && parseFloat(document.querySelector('#log-files .chip[data-file="a.log"] .chip-size').textContent) > 25`)
	if evalJS[bool](b, `document.getElementById('log').textContent.includes('ancient needle')`) {
		t.Fatal("the old line is still on screen: the test no longer tests an off-screen match")
	}
	b.waitJS("three matches", hits+` === '– / 3'`)
	b.do("first match", chromedp.Click(`#log-next`))
	b.do("second match", chromedp.Click(`#log-next`))
	b.do("third match", chromedp.Click(`#log-next`))
	b.waitJS("the old line shown and current", hits+` === '3 / 3' && document.querySelector('#log mark.current')?.closest('.ln')?.textContent.includes('ancient needle line')`)
	b.waitJS("the way back to the end", `!document.getElementById('log-jump').hidden`)
	b.do("back to the end", chromedp.Click(`#log-jump`))
	b.waitJS("the end again", `document.getElementById('log').lastElementChild.textContent.endsWith('filler 2499')`)
	b.do("clearing the search with Escape", chromedp.SendKeys(`#log-q`, kb.Escape))
	b.waitJS("no marks", hits+` === '' && !document.querySelector('#log mark')`)

	// Pause: new lines are kept and counted, not shown, until Resume.
	b.do("pausing", chromedp.Click(`#log-pause`))
	appendFile(t, filepath.Join(logDir, "b.log"), "while paused 1\nwhile paused 2\nwhile paused 3\n")
	b.waitJS("three lines counted", `document.getElementById('log-pause').textContent === 'Resume · 3 new'`)
	if evalJS[bool](b, `document.getElementById('log').textContent.includes('while paused')`) {
		t.Error("lines arrived on screen while paused")
	}
	b.do("resuming", chromedp.Click(`#log-pause`))
	b.waitJS("the kept lines shown", `document.getElementById('log').lastElementChild.textContent.endsWith('while paused 3') && document.getElementById('log-pause').textContent === 'Pause'`)

	// Copy: the lines shown, as plain text; with one file, without its name.
	b.do("selecting b.log", chromedp.Click(`#log-files .chip[data-file="b.log"]`))
	b.stubClipboard()
	b.do("copying the lines", chromedp.Click(`#log-copy`))
	b.waitJS("the copied lines", `typeof window.__copied === 'string'`)
	if got, want := evalJS[string](b, `window.__copied`), "bravo one\nNEEDLE in b\nwhile paused 1\nwhile paused 2\nwhile paused 3\n"; got != want {
		t.Errorf("copied %q, want %q", got, want)
	}

	// Paused past what the page keeps (6000 lines): Resume starts the
	// stream again, and the page shows the newest lines once each, then
	// goes on live. The test counts the page's WebSocket handshakes.
	evalJS[bool](b, `(() => {
		const W = window.WebSocket;
		window.__ws = 0;
		window.WebSocket = function (...a) { window.__ws++; return new W(...a); };
		window.WebSocket.prototype = W.prototype;
		return true;
	})()`)
	b.do("pausing again", chromedp.Click(`#log-pause`))
	var held strings.Builder
	for i := range 7000 {
		fmt.Fprintf(&held, "held %d\n", i)
	}
	appendFile(t, filepath.Join(logDir, "b.log"), held.String())
	b.waitJS("7000 lines counted", `document.getElementById('log-pause').textContent === 'Resume · 7000 new'`)
	b.do("resuming", chromedp.Click(`#log-pause`))
	b.waitJS("the newest held line shown", `document.getElementById('log').lastElementChild?.textContent.endsWith('held 6999') && document.getElementById('log-pause').textContent === 'Pause'`)
	if n := evalJS[int](b, `window.__ws`); n != 1 {
		t.Errorf("%d WebSocket handshakes on Resume after an overflow, want 1 (the stream started again)", n)
	}
	if dup := evalJS[string](b, `(() => {
		const seen = new Set();
		for (const el of document.querySelectorAll('#log .ln')) {
			if (seen.has(el.textContent)) return el.textContent;
			seen.add(el.textContent);
		}
		return '';
	})()`); dup != "" {
		t.Errorf("a line shown twice after the overflow: %q", dup)
	}
	appendFile(t, filepath.Join(logDir, "b.log"), "after the overflow\n")
	b.waitJS("live again", `document.getElementById('log').lastElementChild?.textContent.endsWith('after the overflow')`)

	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}

// cancelLoginPrompts makes Chromium answer every HTTP authentication
// challenge the way a user cancelling the browser's login prompt does, so
// the 401 page's body is shown (headless Chromium otherwise fails the load
// with ERR_INVALID_AUTH_CREDENTIALS). It lasts until the returned stop.
func (b *dashboardBrowser) cancelLoginPrompts() (stop func()) {
	b.t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	challenged := chromedp.Events(ctx, fetch.AuthRequired)
	call := func(f func(context.Context, *chromedp.Target) error) {
		_ = chromedp.Do(ctx, chromedp.Func(f))
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			call(func(c context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(c, t, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				return err
			})
		}
	}()
	go func() {
		for ev, err := range challenged {
			if err != nil {
				return
			}
			call(func(c context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(c, t, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
					AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}})
				return err
			})
		}
	}()
	on := true
	b.do("answering login prompts with Cancel", chromedp.Func(func(c context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(c, t, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &on})
		return err
	}))
	return func() {
		b.do("login prompts back to normal", chromedp.Func(func(c context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(c, t, fetch.Disable, cdp.Empty{})
			return err
		}))
		cancel()
	}
}

// TestDashboardProvisioningBanner shows the instance's provisioning on the
// Overview from the entrypoint's markers, as /api/boot reads them: a
// failure as a banner with the (masked) message and a way to its log, a run
// in progress as a quiet notice, a success as nothing.
func TestDashboardProvisioningBanner(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	marks := t.TempDir()
	lock, done, failed := filepath.Join(marks, "lock"), filepath.Join(marks, "done"), filepath.Join(marks, "failed")
	mustWrite(t, failed, "status=3\nmessage=provisioning script https://user:pw@example.com/setup.sh?token=abc exited with status 3\n", 0o644)
	p := startDashPortal(t, "", map[string]string{
		"ENABLE_AUTH":         "false",
		"PROVISIONING_LOCK":   lock,
		"PROVISIONING_DONE":   done,
		"PROVISIONING_FAILED": failed,
	})
	appendFile(t, filepath.Join(p.Dir, "log", "provisioning.log"), "Downloading setup.sh\nERROR: pip install failed\n")

	b.do("opening the dashboard", chromedp.Navigate(p.url("/")))
	banner := `document.getElementById('boot-banner')`
	b.waitJS("the failure banner", `!`+banner+`.hidden && `+banner+`.dataset.provisioning === 'failed'`)
	text := evalJS[string](b, banner+`.textContent`)
	if !strings.Contains(text, "Provisioning failed (exit status 3)") || !strings.Contains(text, "exited with status 3") {
		t.Errorf("the banner says %q", text)
	}
	if strings.Contains(text, "pw@") || strings.Contains(text, "token=abc") {
		t.Errorf("the banner shows the script URL's credentials: %q", text)
	}
	b.screenshot("provisioning-failed.png")
	b.do("showing its log", chromedp.Click(`#boot-banner button`))
	b.waitJS("the Logs tab on provisioning.log", `!document.getElementById('view-logs').hidden && document.querySelector('#log-files .chip.active')?.dataset.file === 'provisioning.log' && document.getElementById('log').textContent.includes('pip install failed')`)

	// A retry runs: the lock is back.
	mustWrite(t, lock, "", 0o644)
	b.openTab("overview")
	b.waitJS("the quiet notice", banner+`.dataset.provisioning === 'running' && `+banner+`.classList.contains('quiet') && `+banner+`.textContent.includes('Provisioning is running')`)
	// It succeeded: nothing to say.
	for _, f := range []string{lock, failed} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, done, "", 0o644)
	b.waitJS("no banner", banner+`.hidden`)
	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}
