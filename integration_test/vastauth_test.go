package integration_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vaClient never follows redirects, so tests see the 302 itself.
var vaClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// seen is what the app behind vastauth received.
type seen struct {
	URI           string
	Cookie        []string
	Authorization []string
}

// recordingBackend answers every request with what it received, as JSON.
func recordingBackend(t *testing.T) *backend {
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{URI: r.RequestURI, Cookie: r.Header["Cookie"], Authorization: r.Header["Authorization"]})
	}))
}

func randomSecret(t *testing.T, prefix string) string {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

type vaResponse struct {
	*http.Response
	app  *seen // nil when the app did not answer
	body string
}

func vaDo(t *testing.T, method, url string, hdr ...string) vaResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := vaClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := vaResponse{Response: resp, body: string(b)}
	var s seen
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &s) == nil {
		r.app = &s
	}
	return r
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestVastAuthThroughBinary(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	password, token := randomSecret(t, "pw-"), randomSecret(t, "tok-")
	const cookie = "C.99_auth_token"
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "OPEN_BUTTON_TOKEN": token, "VAST_CONTAINERLABEL": "C.99",
		"PORTAL_ACCESS_LOG": "true", // off by default; on here to check its redaction
	}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)

	// No credentials: the browser's login prompt.
	r := vaDo(t, "GET", base+"/")
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != `Basic realm="Instance Portal", charset="UTF-8"` || r.app != nil {
		t.Fatalf("no credentials: %s, WWW-Authenticate %q, app answered %v", r.Status, r.Header.Get("WWW-Authenticate"), r.app != nil)
	}
	// Public paths pass without credentials.
	for _, path := range []string{"/.well-known/acme-challenge/xyz", "/.well-known/change-password", "/manifest.json",
		"/manifest.webmanifest", "/site.webmanifest", "/.well-known/security.txt", "/security.txt"} {
		if r := vaDo(t, "GET", base+path); r.StatusCode != 200 || r.app == nil {
			t.Errorf("public %s: %s", path, r.Status)
		}
	}
	if r := vaDo(t, "GET", base+"/portal-resolver"); r.StatusCode != 200 || strings.TrimSpace(r.body) != "ok" {
		t.Errorf("/portal-resolver: %s %q", r.Status, r.body)
	}
	// A wrong token is a 401 too.
	if r := vaDo(t, "GET", base+"/?token=wrong"); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong token: %s", r.Status)
	}

	// A browser navigation with the token: cookie, and a 302 without it.
	r = vaDo(t, "GET", base+"/lab/tree?x=1&token="+token, "Accept", "text/html,application/xhtml+xml")
	if r.StatusCode != 302 || r.Header.Get("Location") != "/lab/tree?x=1" {
		t.Fatalf("navigation with token: %s, Location %q", r.Status, r.Header.Get("Location"))
	}
	setCookie := r.Header.Get("Set-Cookie")
	for _, want := range []string{cookie + "=v1.", "Path=/", "Max-Age=604800", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") || strings.Contains(setCookie, token) {
		t.Errorf("Set-Cookie %q: no Secure over plain HTTP, and never the token", setCookie)
	}
	session := strings.SplitN(strings.SplitN(setCookie, ";", 2)[0], "=", 2)[1]

	// Any other client is served directly; the app never sees the token.
	r = vaDo(t, "GET", base+"/api/x?token="+token+"&y=2", "Accept", "application/json")
	if r.StatusCode != 200 || r.app == nil || r.app.URI != "/api/x?y=2" || r.Header.Get("Set-Cookie") == "" {
		t.Fatalf("API client with token: %s, app saw %+v, Set-Cookie %q", r.Status, r.app, r.Header.Get("Set-Cookie"))
	}

	// The session cookie alone authenticates; the app gets its own cookies only.
	r = vaDo(t, "GET", base+"/page", "Cookie", "app_session=abc; "+cookie+"="+session+"; theme=dark")
	if r.StatusCode != 200 || r.app == nil || len(r.app.Cookie) != 1 || r.app.Cookie[0] != "app_session=abc; theme=dark" {
		t.Fatalf("session cookie: %s, app saw %+v", r.Status, r.app)
	}
	// The raw secret as cookie value, set by hand, still works.
	if r := vaDo(t, "GET", base+"/", "Cookie", cookie+"="+password); r.StatusCode != 200 {
		t.Errorf("raw-secret cookie: %s", r.Status)
	}
	// Merely containing the text, or the value under another name, does not.
	for _, c := range []string{"x=" + cookie + "=" + session, "other_auth_token=" + session, "x" + cookie + "=" + token} {
		if r := vaDo(t, "GET", base+"/", "Cookie", c); r.StatusCode != 401 {
			t.Errorf("Cookie %q: %s, want 401", c, r.Status)
		}
	}

	// Bearer: served, and the header does not reach the app.
	r = vaDo(t, "GET", base+"/", "Authorization", "Bearer "+token)
	if r.StatusCode != 200 || r.app == nil || len(r.app.Authorization) != 0 {
		t.Errorf("bearer: %s, app saw %+v", r.Status, r.app)
	}
	// Basic with the username and the password: served, and a cookie.
	r = vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", password))
	if r.StatusCode != 200 || r.app == nil || len(r.app.Authorization) != 0 || !strings.Contains(r.Header.Get("Set-Cookie"), cookie+"=v1.") {
		t.Errorf("basic: %s, app saw %+v, Set-Cookie %q", r.Status, r.app, r.Header.Get("Set-Cookie"))
	}
	if r := vaDo(t, "GET", base+"/", "Authorization", basicHeader("root", password)); r.StatusCode != 401 {
		t.Errorf("basic with the wrong user: %s", r.Status)
	}
	// An app's own Authorization passes when our cookie authenticates.
	r = vaDo(t, "GET", base+"/", "Cookie", cookie+"="+session, "Authorization", "Bearer app-key")
	if r.app == nil || len(r.app.Authorization) != 1 || r.app.Authorization[0] != "Bearer app-key" {
		t.Errorf("app's own Authorization: %s, app saw %+v", r.Status, r.app)
	}

	// Logout clears the cookie with a page that says so.
	r = vaDo(t, "GET", base+"/.portal/logout", "Cookie", cookie+"="+session)
	if r.StatusCode != 200 || !strings.Contains(r.body, "Logged out") || !strings.Contains(r.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %s, Set-Cookie %q, body %q", r.Status, r.Header.Get("Set-Cookie"), r.body)
	}

	// No secret in the running config (the admin API serves it to anyone local).
	cfg := p.AdminConfig()
	if strings.Contains(cfg, password) || strings.Contains(cfg, token) || !strings.Contains(cfg, "{env.WEB_PASSWORD}") {
		t.Errorf("admin config holds a secret or lacks the placeholders:\n%s", cfg)
	}
	// The start-up line says how to log in, masked; no log line holds a
	// secret or a session value, while the access log did record the requests.
	waitFor(t, 5*time.Second, "access log of the logout request", func() bool {
		return strings.Contains(p.Logs(), "/.portal/logout")
	})
	logs := p.Logs()
	if !strings.Contains(logs, "authentication on") || !strings.Contains(logs, password[:4]+"…") {
		t.Errorf("no masked start-up line:\n%s", logs)
	}
	if !strings.Contains(logs, `"uri":"/lab/tree?token=REDACTED&x=1"`) {
		t.Errorf("access log lacks the redacted navigation request:\n%s", logs)
	}
	for name, secret := range map[string]string{"password": password, "token": token, "session": session} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s:\n%s", name, logs)
		}
	}
}

func TestVastAuthLimiterSurvivesReloadThroughBinary(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	token := randomSecret(t, "tok-")
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"OPEN_BUTTON_TOKEN": token}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)

	for i := range 20 { // the default: 20 failures per minute
		if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer guess-"+strconv.Itoa(i)); r.StatusCode != 401 {
			t.Fatalf("failure %d: %s, want 401", i+1, r.Status)
		}
	}
	r := vaDo(t, "GET", base+"/", "Authorization", "Bearer guess")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("21st failure: %s, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer "+token); r.StatusCode != 200 {
		t.Errorf("a valid credential while limited: %s", r.Status)
	}
	if r := vaDo(t, "GET", base+"/"); r.StatusCode != 401 {
		t.Errorf("no credentials while limited: %s, want the prompt", r.Status)
	}
	out, err := p.Caddy("reload", "--adapter", "portal_yaml", "--config", p.ConfigPath, "--address", p.AdminAddr, "--force")
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer guess"); r.StatusCode != 429 {
		t.Errorf("after reload: %s, want 429 (a reload must not reset the counts)", r.Status)
	}
}

func TestVastAuthGeneratedTokenSurvivesRestart(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	state := t.TempDir()
	yaml := portalYAML(appYAML("App", ext, be.Port, "/"))
	opts := PortalOptions{Env: map[string]string{"PORTAL_STATE_DIR": state}} // no WEB_PASSWORD, no OPEN_BUTTON_TOKEN
	p := StartPortal(t, yaml, opts)
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)

	tokenFile := filepath.Join(state, "auth_token")
	st, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("no generated token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	out, err := p.Caddy("portal", "token")
	if err != nil {
		t.Fatalf("caddy portal token: %v\n%s", err, out)
	}
	token := strings.TrimSpace(out)
	if len(token) != 43 {
		t.Fatalf("caddy portal token printed %q", out)
	}
	r := vaDo(t, "GET", base+"/?token="+token, "Accept", "application/json")
	if r.StatusCode != 200 {
		t.Fatalf("generated token: %s", r.Status)
	}
	session := strings.SplitN(strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0], "=", 2)[1]
	if strings.Contains(p.Logs(), token) {
		t.Errorf("the logs hold the generated token:\n%s", p.Logs())
	}
	p.Stop()

	p2 := StartPortal(t, yaml, opts)
	waitStatus(t, nil, base+"/manifest.json", 200)
	if r := vaDo(t, "GET", base+"/", "Cookie", "_auth_token="+session); r.StatusCode != 200 {
		t.Errorf("session cookie from before the restart: %s", r.Status)
	}
	if out, _ := p2.Caddy("portal", "token"); strings.TrimSpace(out) != token {
		t.Errorf("token changed across restart: %q → %q", token, out)
	}
}

// TestVastAuthCaddyfileLimiterRecovers runs the directive from a Caddyfile
// on the real binary, with a short failure window, to see a client
// refused and then let in again.
func TestVastAuthCaddyfileLimiterRecovers(t *testing.T) {
	skipShort(t)
	be := recordingBackend(t)
	port, admin := freePort(t), freePort(t)
	dir := t.TempDir()
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
http://127.0.0.1:%d {
	vastauth {
		secret {env.VA_SECRET}
		cookie_name t_auth_token
		state_dir %s
		failure_limit 3 2s
	}
	reverse_proxy 127.0.0.1:%d
}
`, admin, port, filepath.Join(dir, "state"), be.Port)
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := randomSecret(t, "s-")
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "VA_SECRET=" + secret}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitStatus(t, nil, base+"/manifest.json", 200)

	if r := vaDo(t, "GET", base+"/x", "Authorization", "Bearer "+secret); r.StatusCode != 200 || r.app == nil {
		t.Fatalf("valid bearer: %s\n%s", r.Status, out.String())
	}
	for i := range 3 {
		if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer wrong"); r.StatusCode != 401 {
			t.Fatalf("failure %d: %s", i+1, r.Status)
		}
	}
	r := vaDo(t, "GET", base+"/", "Authorization", "Bearer wrong")
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.StatusCode != 429 || err != nil || retry < 1 || retry > 4 {
		t.Fatalf("4th failure: %s, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	time.Sleep(time.Duration(retry) * time.Second)
	if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer wrong"); r.StatusCode != 401 {
		t.Errorf("after Retry-After: %s, want 401 again", r.Status)
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("a log line holds the secret:\n%s", out.String())
	}
}
