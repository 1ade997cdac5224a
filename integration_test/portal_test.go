package integration_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// echoBackend answers with the request headers it saw, as JSON, and sets an
// X-Portal-Placeholder header that the portal must strip.
func echoBackend(t *testing.T) *backend {
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Portal-Placeholder", "forged-by-app")
		w.Header().Set("Content-Type", "application/json")
		h := map[string]string{"Host": r.Host, "URI": r.RequestURI}
		if r.URL.Query().Has("pad") { // big enough for the encoder's minimum length
			h["Pad"] = strings.Repeat("x", 2048)
		}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		_ = json.NewEncoder(w).Encode(h)
	}))
}

func getJSON(t *testing.T, req *http.Request) (map[string]string, *http.Response) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: not JSON (%s): %s", req.URL, resp.Status, body)
	}
	return m, resp
}

func TestProxyForwardedHeaders(t *testing.T) {
	be := echoBackend(t)
	ext := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/some/path?q=1", ext)
	waitStatus(t, nil, url, 200)

	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", "identity")
	h, resp := getJSON(t, req)
	if want := fmt.Sprintf("localhost:%d", be.Port); h["Host"] != want {
		t.Errorf("Host = %q, want upstream %q", h["Host"], want)
	}
	if h["X-Real-Ip"] != "127.0.0.1" || h["X-Forwarded-Proto"] != "http" || h["X-Forwarded-For"] != "127.0.0.1" {
		t.Errorf("forwarded headers wrong: %v", h)
	}
	if h["URI"] != "/some/path?q=1" {
		t.Errorf("URI = %q", h["URI"])
	}
	if resp.Header.Get("X-Portal-Placeholder") != "" {
		t.Error("an upstream's X-Portal-Placeholder must be stripped")
	}

	// Through a Cloudflare tunnel the visitor used https.
	req, _ = http.NewRequest("GET", url, nil)
	req.Header.Set("Cf-Visitor", `{"scheme":"https"}`)
	if h, _ := getJSON(t, req); h["X-Forwarded-Proto"] != "https" {
		t.Errorf("with Cf-Visitor X-Forwarded-Proto = %q, want https", h["X-Forwarded-Proto"])
	}

	// Compression is on by default and negotiated.
	req, _ = http.NewRequest("GET", url+"&pad=1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", resp.Header.Get("Content-Encoding"))
	}

	// /portal-resolver answers for the dashboard's reachability checks.
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/portal-resolver", ext))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("/portal-resolver: %s %v", resp.Status, resp.Header)
	}
	_ = p
}

func TestHostLocalhostAndCompressionOff(t *testing.T) {
	be := echoBackend(t)
	ext := freePort(t)
	StartPortal(t, portalYAML(appYAML("Syncthing", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", "CADDY_HEADER_UP_LOCALHOST": fmt.Sprint(be.Port), "CADDY_ENABLE_COMPRESSION": "false",
	}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", ext)
	waitStatus(t, nil, url, 200)
	// Accept-Encoding set by hand: the client leaves the answer as it came.
	r := (&apiClient{t: t, base: url}).do("GET", "?pad=1", "", map[string]string{"Origin": "http://203.0.113.9:40000", "Accept-Encoding": "gzip"})
	var h map[string]string
	_ = json.Unmarshal([]byte(r.Body), &h)
	want := fmt.Sprintf("localhost:%d", be.Port)
	if h["Host"] != want || h["Origin"] != "http://"+want {
		t.Errorf("Host %q Origin %q, want %q", h["Host"], h["Origin"], want)
	}
	if r.Header.Get("Content-Encoding") != "" {
		t.Errorf("compression off, but Content-Encoding = %q", r.Header.Get("Content-Encoding"))
	}
}

func TestStartingUpPage(t *testing.T) {
	ext, internal := freePort(t), freePort(t)
	StartPortal(t, portalYAML(appYAML("Slow", ext, internal, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", ext)
	waitStatus(t, nil, url, 502)

	check := func(cfRay bool, wantStatus int) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if cfRay {
			req.Header.Set("Cf-Ray", "8a1b2c3d4e5f-AMS")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus || resp.Header.Get("X-Portal-Placeholder") != "true" ||
			resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(string(body), "starting up") {
			t.Errorf("cfRay=%v: %s %v\n%.200s", cfRay, resp.Status, resp.Header, body)
		}
	}
	check(false, 502)
	check(true, 200)

	// The app comes up: its own answers pass, including its own 5xx.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", internal))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "app says no", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "app is up")
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	waitStatus(t, nil, url, 200)
	resp, err := http.Get(url + "broken")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Portal-Placeholder") != "" || !strings.Contains(string(body), "app says no") {
		t.Errorf("app's own 503 must pass untouched: %s %v %q", resp.Status, resp.Header, body)
	}
}

func TestTLSWithInstancePair(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, key := range map[string]crypto.Signer{"rsa": rsaKey, "ecdsa": ecKey} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "i.crt"), filepath.Join(dir, "i.key")
			cert := genPair(t, certFile, keyFile, key)
			be := echoBackend(t)
			ext := freePort(t)
			p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
				"ENABLE_AUTH": "false", "ENABLE_HTTPS": "true", "INSTANCE_CERT": certFile, "INSTANCE_KEY": keyFile,
			}})
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("caddy output:\n%s", p.Logs())
				}
			})
			pool := x509.NewCertPool()
			pool.AddCert(cert)
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			url := fmt.Sprintf("https://127.0.0.1:%d/", ext)
			waitStatus(t, client, url, 200)
			resp, err := client.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !resp.TLS.PeerCertificates[0].Equal(cert) {
				t.Error("served certificate is not the instance certificate")
			}
			// Plain HTTP on the same port is redirected to HTTPS.
			resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/x?y=1", ext))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != fmt.Sprintf("https://127.0.0.1:%d/x?y=1", ext) {
				t.Errorf("plain HTTP: %s Location %q", resp.Status, resp.Header.Get("Location"))
			}
		})
	}
}

func TestTLSMismatchedPairFallsBackToPlaintext(t *testing.T) {
	dir := t.TempDir()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	genPair(t, filepath.Join(dir, "i.crt"), filepath.Join(dir, "unused.key"), k1)
	genPair(t, filepath.Join(dir, "other.crt"), filepath.Join(dir, "i.key"), k2)
	be := echoBackend(t)
	ext := freePort(t)
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", "ENABLE_HTTPS": "true", "INSTANCE_CERT": filepath.Join(dir, "i.crt"), "INSTANCE_KEY": filepath.Join(dir, "i.key"),
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", ext), 200)
	if logs := p.Logs(); !strings.Contains(logs, "serving plain HTTP") || !strings.Contains(logs, "private key does not match public key") {
		t.Errorf("want a warning saying why TLS is off; logs:\n%s", logs)
	}
}

func TestVastTCPPortFilteringAndLinkOnly(t *testing.T) {
	be := echoBackend(t)
	mapped, unmapped, link := freePort(t), freePort(t), freePort(t)
	yaml := portalYAML(appYAML("Mapped", mapped, be.Port, "/"), appYAML("Unmapped", unmapped, be.Port, "/"), appYAML("Link", link, link, "/"))
	StartPortal(t, yaml, PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", fmt.Sprintf("VAST_TCP_PORT_%d", mapped): "40001", fmt.Sprintf("VAST_TCP_PORT_%d", link): "40002",
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", mapped), 200)
	for _, port := range []int{unmapped, link} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d must not be listened on", port)
		}
	}
}

func TestPortalServerHealthAndApps(t *testing.T) {
	ext, internal := freePort(t), freePort(t)
	be := echoBackend(t)
	jext := freePort(t)
	yaml := portalYAML(appYAML("Instance Portal", ext, internal, "/"), appYAML("Jupyter", jext, be.Port, "/tree"))
	StartPortal(t, yaml, PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", "PUBLIC_IPADDR": "203.0.113.9", fmt.Sprintf("VAST_TCP_PORT_%d", jext): "40080",
		fmt.Sprintf("VAST_TCP_PORT_%d", ext): "40111", "VAST_TCP_PORT_22": "40022",
	}})
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	waitStatus(t, nil, base+"/health", 200)
	// The same handlers are reachable through the external port.
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", ext), 200)
	var apps []map[string]any
	(&apiClient{t: t, base: base}).getJSON("/api/apps", &apps)
	if len(apps) != 2 || apps[1]["name"] != "Jupyter" || apps[1]["direct_url"] != "http://203.0.113.9:40080/tree" ||
		apps[1]["ssh_command"] != fmt.Sprintf("ssh -p 40022 root@203.0.113.9 -L %d:localhost:%d", be.Port, be.Port) {
		t.Errorf("/api/apps = %v", apps)
	}
}

func TestReloadWithBrokenFileKeepsRunningConfig(t *testing.T) {
	be := echoBackend(t)
	ext, ext2 := freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", ext)
	waitStatus(t, nil, url, 200)

	broken := portalYAML(appYAML("App", ext, be.Port, "/")) + "  Bad:\n    hostname: localhost\n    external_port: 99999\n    internal_port: 1\n"
	mustWrite(t, p.ConfigPath, broken, 0o644)
	out, err := p.Reload()
	if err == nil || !strings.Contains(out, `portal.yaml:10: app \"Bad\": external_port: \"99999\": port 99999 outside 1-65535`) {
		t.Fatalf("broken reload: err=%v, output:\n%s", err, out)
	}
	waitStatus(t, nil, url, 200) // still serving

	good := portalYAML(appYAML("App", ext, be.Port, "/"), appYAML("Second", ext2, be.Port, "/"))
	mustWrite(t, p.ConfigPath, good, 0o644)
	if out, err := p.Reload(); err != nil {
		t.Fatalf("good reload: %v\n%s", err, out)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", ext2), 200)
	waitStatus(t, nil, url, 200)
}

func TestWatchAppliesEdits(t *testing.T) {
	be := echoBackend(t)
	ext, ext2 := freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}, Args: []string{"--watch"}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", ext), 200)
	// A broken edit is refused and logged; the old config keeps serving.
	mustWrite(t, p.ConfigPath, "applications:\n  App: [\n", 0o644)
	waitFor(t, 10*time.Second, "the watcher to report the syntax error", func() bool { return strings.Contains(p.Logs(), "YAML syntax") })
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", ext), 200)
	mustWrite(t, p.ConfigPath, portalYAML(appYAML("App", ext2, be.Port, "/")), 0o644)
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", ext2), 200)
}

func TestAdapterErrorStopsStartup(t *testing.T) {
	p := StartPortal(t, "applications:\n  A:\n    hostname: localhost\n    external_port: 8080\n", PortalOptions{NoWait: true})
	if !p.WaitExit(20 * time.Second) {
		t.Fatal("caddy kept running with an invalid config")
	}
	if !strings.Contains(p.Logs(), `portal.yaml:2: app \"A\": internal_port: missing`) {
		t.Errorf("error does not name file, line, app and field:\n%s", p.Logs())
	}
}

func TestPortalSubcommands(t *testing.T) {
	p := &Portal{t: t, Dir: t.TempDir()}
	skipShort(t)
	target := filepath.Join(p.Dir, "portal.yaml")
	p.Env = []string{"PATH=" + os.Getenv("PATH"), "PORTAL_CONFIG=localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/lab:Jupyter: Lab"}
	if out, err := p.Caddy("portal", "write-config", "--config", target); err != nil {
		t.Fatalf("write-config: %v\n%s", err, out)
	}
	out, err := p.Caddy("portal", "check", "--config", target)
	if err != nil || !strings.Contains(out, ":8080") || !strings.Contains(out, "Jupyter: Lab") {
		t.Errorf("check: %v\n%s", err, out)
	}
	if _, err := p.Caddy("portal", "check", "--config", target, "--has", "Jupyter: Lab"); err != nil {
		t.Errorf("--has configured app: %v", err)
	}
	_, err = p.Caddy("portal", "check", "--config", target, "--has", "ComfyUI")
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 1 {
		t.Errorf("--has missing app: want exit 1, got %v", err)
	}
	// A bad PORTAL_CONFIG writes nothing and says why.
	before, _ := os.ReadFile(target)
	p.Env = []string{"PATH=" + os.Getenv("PATH"), "PORTAL_CONFIG=localhost:80x:1:/:Bad"}
	out, err = p.Caddy("portal", "write-config", "--config", target)
	after, _ := os.ReadFile(target)
	if err == nil || !strings.Contains(out, `PORTAL_CONFIG: app "entry 1": external_port`) || string(before) != string(after) {
		t.Errorf("bad PORTAL_CONFIG: err=%v out=%s changed=%v", err, out, string(before) != string(after))
	}
}

func TestAuthExcludeAndCORS(t *testing.T) {
	be := echoBackend(t)
	open, guarded := freePort(t), freePort(t)
	p := StartPortal(t, portalYAML(appYAML("Open", open, be.Port, "/"), appYAML("Guarded", guarded, be.Port, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": "portal-test-secret-1", "AUTH_EXCLUDE": fmt.Sprint(open),
		"CADDY_CORS_ALLOWED_ORIGINS": "https://allowed.example",
	}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", open), 200)
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", guarded), 401)

	// CORS on the guarded port: an allowed origin's preflight is answered
	// without credentials (browsers send none), others are not.
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", fmt.Sprintf("http://127.0.0.1:%d/api", guarded), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight("https://allowed.example"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://allowed.example" ||
		r.Header.Get("Access-Control-Allow-Credentials") != "true" || r.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Errorf("allowed preflight: %s %v", r.Status, r.Header)
	}
	if r := preflight("https://evil.example"); r.StatusCode != 401 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %s %v", r.Status, r.Header)
	}
	// An authenticated request from an allowed origin gets the headers.
	guardedPort := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", guarded), token: "portal-test-secret-1"}
	if r := guardedPort.do("GET", "/", "", map[string]string{"Origin": "https://allowed.example"}); r.Code != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://allowed.example" {
		t.Errorf("CORS GET: %d %v", r.Code, r.Header)
	}
	if strings.Contains(p.AdminConfig(), "portal-test-secret-1") {
		t.Error("the secret is in the admin API's config")
	}
}

// An app that sets its own CORS headers keeps them.
func TestCORSNeverOverridesTheApp(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://app-choice.example")
		_, _ = io.WriteString(w, "ok")
	}))
	ext := freePort(t)
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", "CADDY_CORS_ALLOWED_ORIGINS": "https://allowed.example",
	}})
	url := fmt.Sprintf("http://127.0.0.1:%d/", ext)
	waitStatus(t, nil, url, 200)
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Origin", "https://allowed.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app-choice.example" {
		t.Errorf("Access-Control-Allow-Origin = %v, want the app's own", got)
	}
}
