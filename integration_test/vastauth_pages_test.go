package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"

	"github.com/chromedp/chromedp"
)

// Issue 13, in a real browser: the 401 page (what a user sees after
// cancelling the login prompt) and the logout pages, in the dashboard's
// palette, light and dark, styled under their strict CSP, with no console
// error; the logout button really logs out. Screenshots are left for a
// person to look at.
func TestVastAuthPagesInChromium(t *testing.T) {
	skipShort(t)
	b := startChromium(t)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>app</title><h1>the app</h1>")
	}))
	ext := freePort(t)
	const password = "pages-test-secret-1234"
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "WEB_USERNAME": "alice"}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)

	// What a user sees after cancelling the login prompt.
	defer b.cancelLoginPrompts()()
	b.do("opening a guarded page", chromedp.Navigate(base+"/lab"))
	b.waitJS("the login page", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Log in to this instance'`)
	text := evalJS[string](b, `document.body.innerText`)
	for _, want := range []string{"alice", "caddy portal token", "Open"} {
		if !strings.Contains(text, want) {
			t.Errorf("login page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(evalJS[string](b, `document.documentElement.outerHTML`), password) {
		t.Fatal("the login page holds the password")
	}
	backgrounds := map[string]string{}
	for _, scheme := range []string{"light", "dark"} {
		b.setColorScheme(scheme)
		// The inline style applies (its hash is in the CSP): the card has
		// the dashboard's radius, and the palette follows the scheme.
		if r := evalJS[string](b, `getComputedStyle(document.querySelector('main')).borderTopLeftRadius`); r != "10px" {
			t.Errorf("%s: the page's style did not apply (radius %q): %q", scheme, r, b.problems())
		}
		backgrounds[scheme] = evalJS[string](b, `getComputedStyle(document.body).backgroundColor`)
		b.screenshot("vastauth-login-" + scheme + ".png")
	}
	if backgrounds["dark"] != "rgb(10, 14, 19)" || backgrounds["light"] == backgrounds["dark"] {
		t.Errorf("backgrounds %v: want the dashboard's dark #0a0e13 and a light one", backgrounds)
	}

	// Log in, then out with the button.
	b.do("logging in", chromedp.Navigate(base+"/?token="+password))
	b.waitJS("the app", `document.querySelector('h1') && document.querySelector('h1').textContent === 'the app'`)
	b.do("opening the logout page", chromedp.Navigate(base+"/.portal/logout"))
	b.waitJS("the logout button", `!!document.querySelector('form[method=post] button')`)
	for _, scheme := range []string{"light", "dark"} {
		b.setColorScheme(scheme)
		b.screenshot("vastauth-logout-" + scheme + ".png")
	}
	// The GET did not log out.
	b.do("back to the app", chromedp.Navigate(base+"/"))
	b.waitJS("the app, still logged in", `document.querySelector('h1') && document.querySelector('h1').textContent === 'the app'`)
	b.do("opening the logout page", chromedp.Navigate(base+"/.portal/logout"))
	b.waitJS("the logout button", `!!document.querySelector('form[method=post] button')`)
	b.do("pressing Log out", chromedp.Click(`form[method=post] button`))
	// The form's POST navigates; a poll running across it is cut off, so
	// ask again until the new page answers.
	if !testwait.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		h1, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('h1') ? document.querySelector('h1').textContent : ''`))
		return err == nil && h1 == "Logged out"
	}) {
		t.Fatalf("the logged-out page never showed: %q", b.problems())
	}
	for _, scheme := range []string{"light", "dark"} {
		b.setColorScheme(scheme)
		b.screenshot("vastauth-logged-out-" + scheme + ".png")
	}
	b.do("back to the app", chromedp.Navigate(base+"/"))
	b.waitJS("the login page again", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Log in to this instance'`)
	if p := b.problems(); len(p) != 0 {
		// A 401 is reported as a failed load; nothing else may be.
		for _, m := range p {
			if !strings.Contains(m, "401") {
				t.Errorf("console: %s", m)
			}
		}
	}
}
