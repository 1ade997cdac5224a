package integration_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium; the test-deps installer adds it.
const chromiumPath = "/usr/bin/chromium"

// dashboardBrowser is one headless Chromium tab on the dashboard, with
// what the page wrote to its console.
type dashboardBrowser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	messages []string
	expected []string // console errors a test provokes on purpose
}

// expect marks console errors containing s as provoked by the test (an API
// refusal the page shows, which Chromium also logs as a failed request).
func (b *dashboardBrowser) expect(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = append(b.expected, s)
}

// startChromium starts Chromium headless with a throwaway profile and no
// background traffic (no component updates, sync, QUIC or first-run
// pages): the only requests it makes are the test's, to 127.0.0.1.
func startChromium(t *testing.T) *dashboardBrowser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("Chromium is not installed at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &dashboardBrowser{t: t, ctx: ctx}
	// The first Run starts the browser; Console needs it running.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
			b.mu.Unlock()
		}
	}()
	return b
}

// dashPortal is the binary serving the dashboard: the portal's own entry
// (ext, internal) and, when a test asks for it, one app, Echo, whose
// backend answers "echo <path>".
type dashPortal struct {
	*Portal
	ext, internal int
	echo          *backend // nil without Echo
	echoExt       int
}

// startDashPortal starts the portal with env, with Echo opening at echoOpen
// unless that is "", and waits until its internal port answers.
func startDashPortal(t *testing.T, echoOpen string, env map[string]string) *dashPortal {
	t.Helper()
	d := &dashPortal{ext: freePort(t), internal: freePort(t)}
	apps := []string{appYAML("Instance Portal", d.ext, d.internal, "/")}
	if echoOpen != "" {
		d.echo = startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "echo %s\n", r.URL.Path)
		}))
		d.echoExt = freePort(t)
		apps = append(apps, appYAML("Echo", d.echoExt, d.echo.Port, echoOpen))
	}
	d.Portal = StartPortal(t, portalYAML(apps...), PortalOptions{Env: env})
	waitStatus(t, nil, d.url("/health"), 200)
	return d
}

// url is path on the portal's internal port.
func (d *dashPortal) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.internal, path)
}

// problems lists console errors and uncaught exceptions (a CSP violation,
// a failed request, a script error all land here).
func (b *dashboardBrowser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
next:
	for _, m := range b.messages {
		if strings.HasPrefix(m, string(chromedp.ConsoleError)+":") || strings.HasPrefix(m, string(chromedp.ConsoleException)+":") {
			for _, e := range b.expected {
				if strings.Contains(m, e) {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func (b *dashboardBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into T
// (a promise's, once it settles).
func evalJS[T any](b *dashboardBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript predicate until it is true, failing with the
// page's text when it never becomes true.
func (b *dashboardBrowser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 12*time.Second)
	defer cancel()
	var err error
	testwait.Poll(20*time.Second, 50*time.Millisecond, func() bool {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
		// A navigation (a form posted, a redirect) replaces the page the
		// poll ran in: poll the new one.
		return err == nil || ctx.Err() != nil || !(strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "context was destroyed") || strings.Contains(err.Error(), "navigated or closed"))
	})
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("waiting for %s: %v\npredicate: %s\nconsole: %q\npage text:\n%s", what, err, expr, b.problems(), text)
	}
}

// screenshotDir is where the Chromium tests leave their screenshots for a
// person to look at (git-ignored): integration_test/screenshots, or
// PORTAL_SCREENSHOT_DIR.
func screenshotDir(t testing.TB) string {
	dir := cmp.Or(os.Getenv("PORTAL_SCREENSHOT_DIR"), "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (b *dashboardBrowser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(screenshotDir(b.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardInChromium loads the dashboard the way a user does — through
// the portal's external port, vastauth's ?token= login and cookie — in a
// real Chromium, and checks each panel against the real APIs: the apps, the
// GPU section without a GPU, live log lines (a progress bar rewritten in
// place, colours, markup shown as text), and a tunnel created, listed and
// stopped with the page's buttons against the stand-in cloudflared.
func TestDashboardInChromium(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	cloudflared := buildFakeCloudflared(t)

	const password = "dash-test-secret-1234"
	p := startDashPortal(t, "/hello", map[string]string{
		"ENABLE_AUTH":                "true",
		"WEB_PASSWORD":               password,
		"VAST_CONTAINERLABEL":        "C.4242",
		"CLOUDFLARED_BIN":            cloudflared,
		"FAKE_CLOUDFLARED_STATE_DIR": t.TempDir(),
	})
	portalExt, echoExt := p.ext, p.echoExt

	logFile := filepath.Join(p.Dir, "log", "test.log")
	appendFile(t, logFile, "first line from before the page\n")

	// The reason the page must show, as the metrics API gives it.
	var metrics struct {
		Available bool   `json:"available"`
		Reason    string `json:"reason"`
	}
	(&apiClient{t: t, base: p.url("")}).getJSON("/api/metrics", &metrics)

	b.do("opening the dashboard", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/?token=%s", portalExt, password)))
	if loc := evalJS[string](b, `location.href`); loc != fmt.Sprintf("http://127.0.0.1:%d/", portalExt) {
		t.Errorf("after the token login the page is at %q; want the token removed from the URL", loc)
	}

	// Apps: both entries, the Echo link on this host's port with open_path.
	b.waitJS("both apps listed", `document.querySelectorAll('#apps article.app').length === 2`)
	names := evalJS[[]string](b, `[...document.querySelectorAll('#apps article.app h3')].map(h => h.textContent)`)
	if strings.Join(names, ",") != "Instance Portal,Echo" {
		t.Errorf("apps shown: %q", names)
	}
	wantOpen := fmt.Sprintf("http://127.0.0.1:%d/hello", echoExt)
	if href := evalJS[string](b, `document.querySelector('article.app[data-app="Echo"] a.btn.primary').href`); href != wantOpen {
		t.Errorf("Echo's open link = %q, want %q", href, wantOpen)
	}
	if badges := evalJS[string](b, `document.querySelector('article.app[data-app="Echo"] .badges').textContent`); !strings.Contains(badges, "auth") {
		t.Errorf("Echo is behind vastauth but its badges say %q", badges)
	}
	if hidden := evalJS[bool](b, `document.getElementById('logout').hidden`); hidden {
		t.Error("the Log out button is hidden although the page is behind vastauth")
	}
	if title := evalJS[string](b, `document.title`); !strings.Contains(title, "C.4242") {
		t.Errorf("title %q lacks the instance label", title)
	}

	// GPU: this machine has none, the page says so with the API's reason.
	if metrics.Available {
		b.waitJS("GPU cards", `document.querySelectorAll('#gpus article.gpu').length > 0`)
	} else {
		b.waitJS("the no-GPU reason", `!!document.querySelector('#gpus .nogpu .reason')`)
		got := evalJS[string](b, `document.querySelector('#gpus .nogpu .reason').textContent`)
		if want := "No GPU: " + metrics.Reason; got != want || metrics.Reason == "" {
			t.Errorf("GPU section says %q, want %q", got, want)
		}
	}
	b.waitJS("system memory and disk meters", `document.querySelectorAll('#system .meter').length >= 3`)
	// Each disk as df shows it on this machine: its Use% in the meter.
	if _, err := exec.LookPath("df"); err == nil {
		disks := evalJS[[][]string](b, `[...document.querySelectorAll('#system .meter.disk')].map(m => [m.dataset.path, m.querySelector('.meter-value').textContent])`)
		if len(disks) == 0 {
			t.Error("no disk meter")
		}
		for _, d := range disks {
			out, err := exec.Command("df", "--output=pcent", d[0]).Output()
			if err != nil {
				t.Fatalf("df %s: %v", d[0], err)
			}
			// The page shows "… (22%)". Other processes write meanwhile (the
			// metrics are sampled every 2 s): one point apart is the same.
			fields := strings.Fields(string(out))
			var shown, df int
			_, err1 := fmt.Sscanf(d[1][strings.LastIndex(d[1], "(")+1:], "%d%%)", &shown)
			_, err2 := fmt.Sscanf(fields[len(fields)-1], "%d%%", &df)
			if err1 != nil || err2 != nil || shown < df-1 || shown > df+1 {
				t.Errorf("disk %s shows %q; df says %s", d[0], d[1], fields[len(fields)-1])
			}
		}
	}

	// Logs: the snapshot, then live lines over the WebSocket.
	b.waitJS("the test.log chip", `!!document.querySelector('#log-files .chip[data-file="test.log"]')`)
	b.waitJS("the snapshot line", `document.getElementById('log').textContent.includes('first line from before the page')`)
	appendFile(t, logFile, "dashboard live line 1\n\x1b[31mred\x1b[0m <b>not bold</b> & more\n")
	b.waitJS("the live line", `document.getElementById('log').textContent.includes('dashboard live line 1')`)
	b.waitJS("the coloured line", `[...document.querySelectorAll('#log span.term-fg31')].some(s => s.textContent === 'red')`)
	if n := evalJS[int](b, `document.querySelectorAll('#log b, #log img, #log a').length`); n != 0 {
		t.Errorf("log markup reached the DOM as elements (%d)", n)
	}
	if !evalJS[bool](b, `document.getElementById('log').textContent.includes('<b>not bold</b> & more')`) {
		t.Error("the line's <b> was not shown as text")
	}
	// A progress bar: the unfinished line is rewritten in place, one line.
	// progressLines joins the text (without the file tag) of every line
	// that mentions "progress".
	const progressLines = `[...document.querySelectorAll('#log .ln')].filter(l => l.textContent.includes('progress'))` +
		`.map(l => [...l.childNodes].filter(n => !(n.classList && n.classList.contains('lf'))).map(n => n.textContent).join('')).join('|')`
	appendFile(t, logFile, "progress 10%")
	b.waitJS("the live progress line", `[...document.querySelectorAll('#log .ln.live')].some(l => l.textContent.endsWith('progress 10%'))`)
	appendFile(t, logFile, "\rprogress 90%")
	b.waitJS("the progress line rewritten", progressLines+` === 'progress 90%'`)
	appendFile(t, logFile, "\rprogress 100%\nafter the bar\n")
	b.waitJS("the bar final", progressLines+` === 'progress 100%' && document.getElementById('log').textContent.includes('after the bar')`)
	// A burst: the page keeps at most ~2000 lines in the DOM.
	var burst strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&burst, "burst line %04d\n", i)
	}
	start := time.Now()
	appendFile(t, logFile, burst.String())
	b.waitJS("the burst's last line", `document.getElementById('log').lastElementChild.textContent.endsWith('burst line 4999')`)
	t.Logf("5000 lines written at once shown in %v", time.Since(start).Round(time.Millisecond))
	if n := evalJS[int](b, `document.querySelectorAll('#log .ln').length`); n > 2000 || n < 1900 {
		t.Errorf("%d lines in the DOM after a 5000-line burst, want 1900..2000", n)
	}
	if evalJS[bool](b, `document.getElementById('log').textContent.includes('burst line 0000')`) {
		t.Error("the oldest burst line is still in the DOM")
	}
	// One file selected: the download link follows it.
	b.do("opening the Logs tab", chromedp.Click(`#tab-logs`))
	b.do("selecting test.log", chromedp.Click(`#log-files .chip[data-file="test.log"]`))
	if href := evalJS[string](b, `document.getElementById('logs-download').getAttribute('href')`); href != "api/logs/download?file=test.log" {
		t.Errorf("download link = %q", href)
	}
	b.waitJS("the file view", `document.getElementById('log').classList.contains('single') && document.getElementById('log').textContent.includes('burst line 4999')`)

	// Tunnels: create one for Echo with its card's button, see its URL,
	// stop it with the panel's button.
	target := fmt.Sprintf("http://localhost:%d", echoExt)
	b.waitJS("the empty tunnels list", `document.getElementById('tunnel-list').textContent.includes('No tunnels')`)
	b.do("back to the overview", chromedp.Click(`#tab-overview`))
	b.do("creating a tunnel", chromedp.Click(`article.app[data-app="Echo"] button.tunnel-btn`))
	b.waitJS("the running tunnel with its URL", fmt.Sprintf(
		`(() => { const t = document.querySelector('.tunnel[data-target=%q]'); return !!t && !!t.querySelector('.pill.state-running') && /^https:\/\/.+trycloudflare\.com/.test((t.querySelector('.tunnel-url a') || {}).href || ''); })()`, target))
	b.waitJS("the tunnel link on the app card", `[...document.querySelectorAll('article.app[data-app="Echo"] a.btn')].some(a => a.textContent.startsWith('Open via tunnel'))`)
	b.screenshot("portal-dashboard.png")
	b.do("opening the Tunnels tab", chromedp.Click(`#tab-tunnels`))
	b.do("stopping the tunnel", chromedp.Click(fmt.Sprintf(`.tunnel[data-target=%q] button.danger`, target)))
	b.waitJS("the tunnel no longer running", fmt.Sprintf(`!document.querySelector('.tunnel[data-target=%q] .pill.state-running')`, target))
	b.waitJS("the Tunnel button back on the card", `!!document.querySelector('article.app[data-app="Echo"] button.tunnel-btn')`)

	// A phone: one column, nothing wider than the screen.
	b.do("a phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.waitJS("no horizontal overflow at 390 px", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot("portal-dashboard-phone.png")

	// Through the external port the browser's Origin matches the Host the
	// portal server sees (the adapter keeps it for the portal entry), so the
	// log WebSocket is accepted: no console error at all is expected.
	if state := evalJS[string](b, `document.getElementById('logs-state').title`); state != "Streaming over a WebSocket" {
		t.Errorf("logs through the external port: %q, want the WebSocket", state)
	}
	probs := b.problems()
	if len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}

// TestDashboardPageLogic runs the page's own code in Chromium: the link
// rules (appLinks) over the ways a user reaches the portal, the log-line
// parser over hostile markup, and the GPU cards over gpumetrics' golden
// two-GPU snapshot (this machine has no GPU to show).
func TestDashboardPageLogic(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	p := startDashPortal(t, "", map[string]string{"ENABLE_AUTH": "false"})
	b.do("opening the dashboard", chromedp.Navigate(p.url("/")))
	b.waitJS("the page script", `!!window.portalDashboard`)
	// Here (the internal port: Host and Origin agree) logs use the WebSocket.
	b.waitJS("the log WebSocket", `document.getElementById('logs-state').title === 'Streaming over a WebSocket'`)

	// A tab is a #fragment: an element with that id would make the browser
	// jump to it on every tab switch.
	if clash := evalJS[[]string](b, `['overview', 'processes', 'tunnels', 'logs', 'help'].filter(t => document.getElementById(t))`); len(clash) > 0 {
		t.Errorf("elements with a tab's name as id: %q", clash)
	}

	portal := `{"name":"Instance Portal","external_port":1111,"internal_port":11111,"public_port":41111,"proxied":true,"served":true,"listening":true,"scheme":"http","tunnel_port":1111,"auth":true,"open_path":"/"}`
	jupyter := `{"name":"Jupyter","external_port":8080,"internal_port":18080,"proxied":true,"served":true,"listening":true,"scheme":"http","tunnel_port":8080,"auth":true,"open_path":"/lab"}`
	withDirect := `{"name":"J","external_port":8080,"internal_port":18080,"proxied":true,"served":true,"listening":true,"scheme":"http","tunnel_port":8080,"auth":true,"open_path":"/lab","public_port":40080,"direct_url":"https://198.51.100.7:40080/lab"}`
	publicOnly := `{"name":"J","external_port":8080,"internal_port":18080,"proxied":true,"served":true,"listening":true,"scheme":"http","tunnel_port":8080,"auth":true,"open_path":"/lab","public_port":40080}`
	hidden := `{"name":"H","external_port":7000,"internal_port":17000,"proxied":true,"served":false,"listening":false,"scheme":"http","tunnel_port":0,"auth":false,"open_path":"/"}`
	linkOnly := `{"name":"S","external_port":8384,"internal_port":8384,"proxied":false,"served":false,"listening":true,"scheme":"http","tunnel_port":8384,"auth":false,"open_path":"/"}`
	jupyterTLS := strings.Replace(jupyter, `"scheme":"http"`, `"scheme":"https"`, 1)
	badDirect := `{"name":"B","external_port":8080,"internal_port":18080,"proxied":true,"served":true,"listening":true,"scheme":"http","tunnel_port":8080,"auth":true,"open_path":"lab","direct_url":"javascript:alert(1)"}`
	loc := func(proto, host, port string) string {
		return fmt.Sprintf(`{"protocol":%q,"hostname":%q,"port":%q}`, proto, host, port)
	}
	tunnel8080 := `[[8080,"https://abc-def.trycloudflare.com"]]`
	named18080 := `[[18080,["https://lab.example.com"]]]`
	cases := []struct {
		name, app, loc, tunnels string
		want                    string // primary URL, "" for none
		wantExtra               string // first extra URL
		named                   string // named-tunnel ingress by port, as linkEnv builds it
	}{
		{"portal port, plain http", jupyter, loc("http:", "203.0.113.5", "1111"), `[]`, "http://203.0.113.5:8080/lab", "", ""},
		{"portal port over https", jupyter, loc("https:", "203.0.113.5", "1111"), `[]`, "https://203.0.113.5:8080/lab", "", ""},
		{"direct URL wins", withDirect, loc("http:", "203.0.113.5", "1111"), `[]`, "https://198.51.100.7:40080/lab", "", ""},
		{"public mapping without PUBLIC_IPADDR", publicOnly, loc("http:", "203.0.113.5", "41111"), `[]`, "http://203.0.113.5:40080/lab", "", ""},
		{"through a tunnel: the app's tunnel", jupyter, loc("https:", "x-y.trycloudflare.com", ""), tunnel8080, "https://abc-def.trycloudflare.com/lab", "", ""},
		{"tunnel offered beside the port", jupyter, loc("http:", "203.0.113.5", "1111"), tunnel8080, "http://203.0.113.5:8080/lab", "https://abc-def.trycloudflare.com/lab", ""},
		{"SSH forward: TLS from the plan", jupyterTLS, loc("http:", "localhost", "11111"), `[]`, "https://localhost:8080/lab", "", ""},
		{"not exposed: nothing to open", hidden, loc("http:", "203.0.113.5", "1111"), `[]`, "", "", ""},
		{"link only: plain http on its port", linkOnly, loc("https:", "203.0.113.5", "1111"), `[]`, "http://203.0.113.5:8384/", "", ""},
		{"javascript: direct URL ignored", badDirect, loc("http:", "203.0.113.5", "1111"), `[]`, "http://203.0.113.5:8080/lab", "", ""},
		{"IPv6 host", jupyter, loc("http:", "[2001:db8::1]", "1111"), `[]`, "http://[2001:db8::1]:8080/lab", "", ""},
		{"named tunnel preferred when it routes the app", jupyter, loc("http:", "203.0.113.5", "1111"), `[]`, "https://lab.example.com/lab", "http://203.0.113.5:8080/lab", named18080},
		{"named tunnel preferred over the quick one", jupyter, loc("https:", "x-y.trycloudflare.com", ""), tunnel8080, "https://lab.example.com/lab", "https://abc-def.trycloudflare.com/lab", named18080},
		{"not listening: the tunnel only", strings.Replace(jupyter, `"listening":true`, `"listening":false`, 1), loc("http:", "203.0.113.5", "1111"), tunnel8080, "https://abc-def.trycloudflare.com/lab", "", ""},
	}
	for _, c := range cases {
		got := evalJS[[]string](b, fmt.Sprintf(`(() => {
			const r = portalDashboard.appLinks(%s, {loc: %s, portal: %s, tunnelURLs: new Map(%s), namedURLs: new Map(%s)});
			return [r.primary ? r.primary.url : '', r.extra.length ? r.extra[0].url : ''];
		})()`, c.app, c.loc, portal, c.tunnels, cmp.Or(c.named, "[]")))
		if got[0] != c.want || got[1] != c.wantExtra {
			t.Errorf("%s: links %q, want [%q %q]", c.name, got, c.want, c.wantExtra)
		}
	}

	// The Open flow: which links need a handoff token (another host: the
	// session cookie does not go there), and only for apps behind auth.
	handoffs := []struct {
		name, app, loc, tunnels, named string
		want                           []bool // primary, then each extra
	}{
		{"same host, other port: the cookie goes along", jupyter, loc("http:", "203.0.113.5", "1111"), `[]`, `[]`, []bool{false}},
		{"quick tunnel beside the port", jupyter, loc("http:", "203.0.113.5", "1111"), tunnel8080, `[]`, []bool{false, true}},
		{"direct IP from a tunnel page", withDirect, loc("https:", "x-y.trycloudflare.com", ""), `[]`, `[]`, []bool{true}},
		{"named tunnel", jupyter, loc("http:", "203.0.113.5", "1111"), `[]`, named18080, []bool{true, false}},
		{"no auth: nothing to hand off", strings.Replace(jupyter, `"auth":true`, `"auth":false`, 1), loc("http:", "203.0.113.5", "1111"), tunnel8080, `[]`, []bool{false, false}},
	}
	for _, c := range handoffs {
		got := evalJS[[]bool](b, fmt.Sprintf(`(() => {
			const r = portalDashboard.appLinks(%s, {loc: %s, portal: %s, tunnelURLs: new Map(%s), namedURLs: new Map(%s)});
			return [r.primary].concat(r.extra).map(l => !!l.handoff);
		})()`, c.app, c.loc, portal, c.tunnels, c.named))
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: handoff flags %v, want %v", c.name, got, c.want)
		}
	}
	if got := evalJS[string](b, `portalDashboard.withHandoff('https://a.example.com/lab?x=1#frag', 'T0k/+=')`); got != "https://a.example.com/lab?x=1&portal_handoff=T0k%2F%2B%3D#frag" {
		t.Errorf("withHandoff = %q", got)
	}
	// The secure link offered to a page on plain http://IP:port.
	portalTunnel := `[[1111,"https://portal-q.trycloudflare.com"]]`
	for _, c := range []struct{ name, loc, tunnels, named, want string }{
		{"plain http on the IP, quick tunnel", loc("http:", "203.0.113.5", "1111"), portalTunnel, `[]`, "https://portal-q.trycloudflare.com/"},
		{"the named tunnel first", loc("http:", "203.0.113.5", "1111"), portalTunnel, `[[1111,["https://portal.example.com"]]]`, "https://portal.example.com/"},
		{"already https", loc("https:", "203.0.113.5", "1111"), portalTunnel, `[]`, ""},
		{"SSH forward (loopback)", loc("http:", "localhost", "11111"), portalTunnel, `[]`, ""},
		{"no tunnel", loc("http:", "203.0.113.5", "1111"), `[]`, `[]`, ""},
	} {
		got := evalJS[string](b, fmt.Sprintf(`portalDashboard.secureOffer({loc: %s, portal: %s, tunnelURLs: new Map(%s), namedURLs: new Map(%s)}) || ''`, c.loc, portal, c.tunnels, c.named))
		if got != c.want {
			t.Errorf("secureOffer, %s: %q, want %q", c.name, got, c.want)
		}
	}

	// App states: stopped and not-configured apps sort last, the rest keep
	// the API's order.
	sorted := evalJS[[]string](b, `portalDashboard.sortApps([
		{name: 'a', state: 'stopped'}, {name: 'b', state: 'running'}, {name: 'c', state: 'not_configured'},
		{name: 'd', state: 'failed'}, {name: 'e', state: 'starting'}, {name: 'f'}, {name: 'g', state: 'external'}]).map(a => a.name)`)
	if strings.Join(sorted, "") != "bdefgac" {
		t.Errorf("sortApps order %q, want bdefgac", sorted)
	}
	for in, want := range map[string]string{"jupyter": "jupyter.log", "web:api": "api.log", "": ".log"} {
		if got := evalJS[string](b, fmt.Sprintf(`portalDashboard.programLog(%q)`, in)); got != want {
			t.Errorf("programLog(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct{ proc, want string }{
		{`{"state":"RUNNING"}`, "stop,restart"},
		{`{"state":"RUNNING","protected":true}`, ""},
		{`{"state":"STOPPED","protected":true}`, "start"},
		{`{"state":"EXITED"}`, "start,restart"},
		{`{"state":"FATAL"}`, "start,restart"},
		{`{"state":"BACKOFF"}`, "stop,restart"},
		{`{"state":"STOPPING"}`, "stop,restart"},
	} {
		if got := evalJS[string](b, fmt.Sprintf(`portalDashboard.procButtons(%s).join(',')`, c.proc)); got != c.want {
			t.Errorf("procButtons(%s) = %q, want %q", c.proc, got, c.want)
		}
	}
	for sec, want := range map[int]string{0: "0 s", 59: "59 s", 61: "1 m 01 s", 3725: "1 h 02 m", 200000: "2 d 7 h"} {
		if got := evalJS[string](b, fmt.Sprintf(`portalDashboard.formatDuration(%d)`, sec)); got != want {
			t.Errorf("formatDuration(%d) = %q, want %q", sec, got, want)
		}
	}

	// Disks as df shows them: Use% = used / (used + available), rounded up.
	// The example: 19.4 GiB used of 252 GiB, 72 GiB available → 22%.
	disk := evalJS[[]any](b, `(() => { const f = portalDashboard.diskFigures({used_bytes: 20830000000, available_bytes: 77310000000, total_bytes: 270580000000}); return [f.usePct, f.text]; })()`)
	if disk[0] != float64(22) || disk[1] != "19.4 GiB used · 72.0 GiB free (22%)" {
		t.Errorf("diskFigures: %v", disk)
	}
	// The API's used_percent, when present, is the figure shown.
	if got := evalJS[float64](b, `portalDashboard.diskFigures({used_bytes: 1, available_bytes: 99, total_bytes: 200, used_percent: 7}).usePct`); got != 7 {
		t.Errorf("diskFigures ignores the API's used_percent: %v", got)
	}

	// Provisioning (/api/boot): a failure is a banner with the message and
	// the exit status, a run a quiet notice, the rest nothing.
	for _, c := range []struct{ boot, want string }{
		{`{"provisioning":"failed","code":3,"message":"pip install failed: no space left","since":"2026-12-01T12:00:00Z"}`, "bad|Provisioning failed (exit status 3)|pip install failed: no space left"},
		{`{"provisioning":"failed","code":"3","message":"x"}`, "bad|Provisioning failed (exit status 3)|x"},
		{`{"provisioning":"failed","code":"download","message":"curl: (22) 404"}`, "bad|Provisioning failed (download)|curl: (22) 404"},
		{`{"provisioning":"failed","message":""}`, "bad|Provisioning failed|The provisioning script did not finish."},
		{`{"provisioning":"running","since":"2026-12-01T12:00:00Z"}`, "quiet|Provisioning is running|Apps may still be installing (since "},
		{`{"provisioning":"complete"}`, "none"},
		{`{"provisioning":"none"}`, "none"},
		{`null`, "none"},
	} {
		got := evalJS[string](b, fmt.Sprintf(`(() => { const n = portalDashboard.bootNotice(%s); return n ? [n.kind, n.title, n.text].join('|') : 'none'; })()`, c.boot))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("bootNotice(%s) = %q, want %q…", c.boot, got, c.want)
		}
	}

	// What a user types into the Tunnels form.
	for in, want := range map[string]string{
		"8080":                    "http://localhost:8080",
		" :8443 ":                 "https://localhost:8443", // an https app serves 8443
		"localhost:7860":          "http://localhost:7860",
		"127.0.0.1:7860/x":        "http://127.0.0.1:7860/x",
		"[::1]:9000":              "http://[::1]:9000",
		"https://localhost:8443/": "https://localhost:8443/",
		"example.com:80":          "example.com:80", // the API's rule refuses it, with its message
		"70000":                   "error: A port is a number from 1 to 65535",
		"":                        "error: Type a port (8080), localhost:8080 or a URL",
	} {
		got := evalJS[string](b, fmt.Sprintf(`(() => { const r = portalDashboard.parseTunnelInput(%q, [{tunnel_port: 8443, scheme: 'https'}]); return r.error ? 'error: ' + r.error : r.target; })()`, in))
		if got != want {
			t.Errorf("parseTunnelInput(%q) = %q, want %q", in, got, want)
		}
	}

	// Log search: occurrences over the text, across colour spans, marked.
	marked := evalJS[[]string](b, `(() => {
		const d = document.createElement('div');
		const tag = document.createElement('span'); tag.className = 'lf'; tag.textContent = 'err.log'; d.append(tag);
		portalDashboard.parseLogLine('an <span class="term-fg31">Err</span>or, ERRORs &amp; err', d);
		const n = portalDashboard.highlight(d, 'err');
		return [String(n), [...d.querySelectorAll('mark')].map(m => m.dataset.k + ':' + m.textContent).join(','), d.textContent];
	})()`)
	if marked[0] != "3" || marked[1] != "0:Err,1:ERR,2:err" || marked[2] != "err.logan Error, ERRORs & err" {
		t.Errorf("highlight: %q", marked)
	}
	spanning := evalJS[[]string](b, `(() => {
		const d = document.createElement('div');
		portalDashboard.parseLogLine('ab<span class="term-fg32">cd</span>ef', d);
		const n = portalDashboard.highlight(d, 'bcde');
		return [String(n), [...d.querySelectorAll('mark')].map(m => m.dataset.k + ':' + m.textContent).join(',')];
	})()`)
	if spanning[0] != "1" || spanning[1] != "0:b,0:cd,0:e" {
		t.Errorf("a match across spans: %q", spanning)
	}
	if got := evalJS[string](b, `portalDashboard.linesAsText([{file: 'a.log', text: 'x\u00a0y'}, {file: 'b.log', text: '<b>'}], true)`); got != "a.log │ x y\nb.log │ <b>\n" {
		t.Errorf("linesAsText = %q", got)
	}
	if got := evalJS[string](b, `portalDashboard.logLineText('<span class="term-fg31">a&lt;b&gt;</span><img src=x>c')`); got != "a<b>c" {
		t.Errorf("logLineText = %q", got)
	}

	// Tools & Help icons: the fixed set, each drawn (no request, no font).
	icons := evalJS[[]string](b, `portalDashboard.iconNames.filter(n => portalDashboard.icon(n).childElementCount > 0)`)
	if strings.Join(icons, " ") != "link book code terminal cube globe tool tag grid gpu rocket image download star zap database" {
		t.Errorf("icons drawn: %q", icons)
	}
	if got := evalJS[string](b, `portalDashboard.icon('nope" onload="x').dataset.icon`); got != "link" {
		t.Errorf("an unknown icon name falls back to %q, want link", got)
	}

	lines := map[string]string{
		`plain &lt;b&gt; &amp; &#47;x&#39;`:                                                    `plain &lt;b&gt; &amp; /x'`,
		`<span class="term-fg31 term-fg1">red</span> ok`:                                       `<span class="term-fg31 term-fg1">red</span> ok`,
		`<span class="term-fgx196">x</span><span class="term-bgx21">y</span>`:                  `<span style="color: rgb(255, 0, 0);">x</span><span style="background-color: rgb(0, 0, 255);">y</span>`,
		`<img src=x onerror="alert(1)">a<a href="javascript:alert(1)">b</a><script>c</script>`: `abc`,
		`<span class="term-fg31" onclick="x()">q</span>`:                                       `q`,
		`<span class="evil term-fg32">g</span></span></span>tail`:                              `<span class="term-fg32">g</span>tail`,
		`&#0; &#x110000; &bogus; &#128512;`:                                                    "\ufffd \ufffd &amp;bogus; \U0001F600",
		// 24-bit colour: exactly term-fgt-/term-bgt- and six lowercase hex digits.
		`<span class="term-fgt-ff8800 term-bgt-0a0b0c">t</span>`:   `<span style="color: rgb(255, 136, 0); background-color: rgb(10, 11, 12);">t</span>`,
		`<span class="term-fgt-FF8800">u</span>`:                   `<span>u</span>`,
		`<span class="term-fgt-ff880 term-fgt-ff88001">v</span>`:   `<span>v</span>`,
		`<span class="term-fgt-ff8800;background:url(x)">w</span>`: `<span>w</span>`,
		`<span class="term-fgt-#ff8800 term-fgtff8800">x</span>`:   `<span>x</span>`,
	}
	for in, want := range lines {
		inJSON, _ := json.Marshal(in)
		got := evalJS[string](b, fmt.Sprintf(`(() => { const d = document.createElement('div'); portalDashboard.parseLogLine(%s, d); return d.innerHTML; })()`, inJSON))
		if got != want {
			t.Errorf("parseLogLine(%s) = %q, want %q", in, got, want)
		}
	}

	snapshot, err := os.ReadFile("../gpumetrics/testdata/golden/two-gpus.json")
	if err != nil {
		t.Fatal(err)
	}
	// Render and read back in one evaluation: the page's own 2 s poll
	// cannot slip in between.
	cards := evalJS[[]string](b, fmt.Sprintf(`(() => {
		portalDashboard.renderMetrics(%s);
		return [...document.querySelectorAll('#gpus article.gpu')].map(c => c.innerText.replace(/\s+/g, ' '))
			.concat([document.getElementById('instance').textContent, document.getElementById('metrics-meta').textContent,
				String(document.querySelectorAll('#system .meter').length)]);
	})()`, snapshot))
	if len(cards) != 5 {
		t.Fatalf("rendered %d GPU cards: %q", len(cards)-3, cards)
	}
	for i, want := range [][]string{
		{"GPU 0", "NVIDIA H100 80GB HBM3", "87%", "30.0 GiB / 80.0 GiB", "61 °C", "512 / 700 W", "1980 MHz"},
		{"GPU 1", "0%", "throttled: hw_thermal_slowdown"},
		{"2 × NVIDIA H100 80GB HBM3", "instance-1"},
		{"driver 550.54.15", "CUDA 12.4"},
		{"4"}, // CPU, memory, two disks
	} {
		for _, w := range want {
			if !strings.Contains(cards[i], w) {
				t.Errorf("rendered item %d %q lacks %q", i, cards[i], w)
			}
		}
	}
	if strings.Contains(cards[1], "Power") {
		t.Errorf("GPU 1 reports no power draw but its card shows one: %q", cards[1])
	}
	b.screenshot("portal-dashboard-gpus.png")

	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(probs, "\n"))
	}
}

// TestDashboardFilesThroughThePortal checks what the browser cannot see:
// caching headers, 304 revalidation, hidden ETag sidecars, traversal, and
// that the API routes still win over the catch-all file server.
func TestDashboardFilesThroughThePortal(t *testing.T) {
	skipShort(t)
	p := startDashPortal(t, "", map[string]string{"ENABLE_AUTH": "false", "VAST_CONTAINERLABEL": "C.7"})
	files := &apiClient{t: t, base: p.url(""), client: noRedirect}
	get := func(path string, hdr map[string]string) apiReply {
		t.Helper()
		return files.do(http.MethodGet, path, "", hdr)
	}
	r := get("/", nil)
	if r.Code != 200 || !strings.Contains(r.Body, `<script src="app.js" defer></script>`) {
		t.Fatalf("GET /: %d %.200s", r.Code, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("index Cache-Control = %q, want no-store", cc)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		r := get(f, nil)
		etag := r.Header.Get("Etag")
		if r.Code != 200 || r.Header.Get("Cache-Control") != "no-cache" || len(etag) < 10 || etag[0] != '"' {
			t.Errorf("GET %s: %d Cache-Control %q ETag %q", f, r.Code, r.Header.Get("Cache-Control"), etag)
			continue
		}
		if again := get(f, map[string]string{"If-None-Match": etag}); again.Code != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match: %d, want 304", f, again.Code)
		}
	}
	for _, path := range []string{"/app.js.etag", "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/nope.html", "/api/nope"} {
		if r := get(path, nil); r.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d %.100q, want 404", path, r.Code, r.Body)
		}
	}
	r = get("/api/dashboard", nil)
	if want := fmt.Sprintf(`{"instance_label":"C.7","tunnel_scheme":"http","log_archive_dir":%q}`, p.Dir); r.Code != 200 || strings.TrimSpace(r.Body) != want {
		t.Errorf("/api/dashboard: %d %s", r.Code, r.Body)
	}
	for _, path := range []string{"/api/apps", "/api/metrics", "/api/logs/files", "/api/tunnels"} {
		if r := get(path, nil); r.Code != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: %d %s %.100q: the dashboard must not shadow the APIs", path, r.Code, r.Header.Get("Content-Type"), r.Body)
		}
	}
}
