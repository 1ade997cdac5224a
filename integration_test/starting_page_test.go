package integration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestStartingUpPageInChromium opens an app that is not listening yet, in
// a real Chromium, through its external port: the page names the app,
// links back to the dashboard's port on the same host, and counts its
// first check as "checked 1 time" (issue 13). The old page said "This
// application", had no link and "1 times".
func TestStartingUpPageInChromium(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	portalExt, portalInt, appExt, dead := freePort(t), freePort(t), freePort(t), freePort(t)
	StartPortal(t, portalYAML(appYAML("Instance Portal", portalExt, portalInt, "/"), appYAML("ComfyUI", appExt, dead, "/")),
		PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", appExt)
	waitStatus(t, nil, url, 502)

	b.do("opening the app", chromedp.Navigate(url))
	if h1 := evalJS[string](b, `document.querySelector('h1').textContent`); h1 != "ComfyUI is starting up" {
		t.Errorf("heading %q", h1)
	}
	if title := evalJS[string](b, `document.title`); title != "ComfyUI is starting up" {
		t.Errorf("title %q", title)
	}
	b.waitJS("the dashboard link", `!document.getElementById('back').hidden`)
	if href, want := evalJS[string](b, `document.getElementById('dashboard-link').href`), fmt.Sprintf("http://127.0.0.1:%d/", portalExt); href != want {
		t.Errorf("dashboard link %q, want %q", href, want)
	}
	b.waitJS("the first check", `document.getElementById('status').textContent.includes('checked')`)
	if status := evalJS[string](b, `document.getElementById('status').textContent`); status != "Still starting… (checked 1 time)" {
		t.Errorf("status %q", status)
	}
	// The page follows the system's scheme, and the user's pick in the
	// dashboard (the portal_theme cookie, shared by every port of the host)
	// wins over it, as on the dashboard (issue 21: it was always dark).
	bg := map[string]string{"light": "rgb(243, 245, 248)", "dark": "rgb(10, 14, 19)"}
	for _, system := range []string{"light", "dark"} {
		b.setColorScheme(system)
		for _, pick := range []string{"", "light", "dark"} {
			cookie := "portal_theme=; Path=/; Max-Age=0"
			if pick != "" {
				cookie = "portal_theme=" + pick + "; Path=/"
			}
			evalJS[bool](b, fmt.Sprintf(`(document.cookie = %q, true)`, cookie))
			b.do("reloading", chromedp.Reload())
			b.waitJS("the page", `document.querySelector('h1') !== null`)
			want := bg[system]
			if pick != "" {
				want = bg[pick]
			}
			if got := evalJS[string](b, `getComputedStyle(document.body).backgroundColor`); got != want {
				t.Errorf("system %s, picked %q: background %s, want %s", system, pick, got, want)
			}
		}
	}
	b.setColorScheme("light")
	evalJS[bool](b, `(document.cookie = "portal_theme=; Path=/; Max-Age=0", true)`)
	// The page and each check are answered 502, which Chromium reports;
	// anything else is a problem.
	for _, p := range b.problems() {
		if !strings.Contains(p, "502") {
			t.Errorf("console: %s", p)
		}
	}
	b.screenshot("portal-starting-up.png")
}

// TestStartingUpJSONForAPIClients: a client that asks for JSON gets the
// starting-up news as JSON with the page's status, not the HTML page
// (issue 21).
func TestStartingUpJSONForAPIClients(t *testing.T) {
	skipShort(t)
	portalExt, portalInt, appExt, dead := freePort(t), freePort(t), freePort(t), freePort(t)
	StartPortal(t, portalYAML(appYAML("Instance Portal", portalExt, portalInt, "/"), appYAML("Inference API", appExt, dead, "/")),
		PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/models", appExt)
	waitStatus(t, nil, url, 502)
	res := (&apiClient{t: t, base: url}).do("GET", "", "", map[string]string{"Accept": "application/json"})
	var doc struct{ Status, App, Message string }
	if err := json.Unmarshal([]byte(res.Body), &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if res.Code != 502 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, headers %v", res.Code, res.Header)
	}
	if doc.Status != "starting" || doc.App != "Inference API" || !strings.Contains(doc.Message, "not answering") {
		t.Errorf("body %+v", doc)
	}
}
