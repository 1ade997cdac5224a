package integration_test

import (
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
	if bg := evalJS[string](b, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(10, 14, 19)" {
		t.Errorf("background %q, want the dashboard's #0a0e13", bg)
	}
	// The page and each check are answered 502, which Chromium reports;
	// anything else is a problem.
	for _, p := range b.problems() {
		if !strings.Contains(p, "502") {
			t.Errorf("console: %s", p)
		}
	}
	b.screenshot("portal-starting-up.png")
}
