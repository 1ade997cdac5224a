package integration_test

// Issue 20 through the real binary: the second adversarial round. Each
// test names what it saw on the code before the fix.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCORSNeverOpensThePortal: with CADDY_CORS_ALLOWED_ORIGINS set, a
// credentialed cross-site request to the portal's own port got
// Access-Control-Allow-Origin with credentials (a tunnel created, the logs
// read cross-site). Now only the apps' ports answer CORS, and an entry with
// a trailing "*" (a prefix match before) stops the start with an error
// naming the variable.
func TestCORSNeverOpensThePortal(t *testing.T) {
	be := echoBackend(t)
	const password = "cors-test-secret-4242"
	portalExt, portalInt, app := freePort(t), freePort(t), freePort(t)
	yaml := portalYAML(appYAML("Instance Portal", portalExt, portalInt, "/"), appYAML("App", app, be.Port, "/"))
	p := StartPortal(t, yaml, PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "CADDY_CORS_ALLOWED_ORIGINS": "http://trusted.example",
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	do := func(method string, port int, path string, auth bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req.Header.Set("Origin", "http://trusted.example")
		if method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		method, path string
		auth         bool
	}{{"OPTIONS", "/api/tunnels", false}, {"GET", "/api/logs/files", true}, {"GET", "/api/logs/download", true}} {
		if r := do(c.method, portalExt, c.path, c.auth); r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("portal port %s %s: %s with CORS headers %v", c.method, c.path, r.Status, r.Header)
		}
	}
	if r := do("GET", app, "/", true); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://trusted.example" {
		t.Errorf("app port: %s %v, want the CORS headers there", r.Status, r.Header)
	}

	// A prefix pattern is refused with the variable named.
	p.Env = append(p.Env, "CADDY_CORS_ALLOWED_ORIGINS=http://trusted.example*")
	out, err := p.Caddy("adapt", "--adapter", "portal_yaml", "--config", p.ConfigPath)
	if err == nil || !strings.Contains(out, `CADDY_CORS_ALLOWED_ORIGINS: \"http://trusted.example*\": a wildcard`) {
		t.Errorf("a trailing * must be refused: err=%v out=%s", err, out)
	}
}
