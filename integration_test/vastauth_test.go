package integration_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testproc"
	"github.com/instanceportal/portal/portalconfig"
)

// vaClient never follows redirects, so tests see the 302 itself.
var vaClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// vaDoRaw sends one request line byte for byte (Go's client would clean the
// path) to 127.0.0.1:port and returns the raw answer.
func vaDoRaw(t *testing.T, port int, requestLine string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", requestLine, port); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
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
	for _, want := range []string{cookie + "=v2.", "Path=/", "Max-Age=604800", "HttpOnly", "SameSite=Lax"} {
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
	if r.StatusCode != 200 || r.app == nil || len(r.app.Authorization) != 0 || !strings.Contains(r.Header.Get("Set-Cookie"), cookie+"=v2.") {
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

	// Our secret in any other Authorization form is removed too, while the
	// cookie authenticates (issue 14 item 9).
	for _, authz := range []string{"Basic root:" + password, "Bearer\t" + token, `Bearer "` + token + `"`, "Token " + password} {
		r = vaDo(t, "GET", base+"/", "Cookie", cookie+"="+session, "Authorization", authz)
		if r.app == nil || len(r.app.Authorization) != 0 {
			t.Errorf("Authorization %q: %s, the app saw %+v", authz, r.Status, r.app)
		}
	}

	// Public-path tricks do not reach the app without credentials (issue
	// 14 item 13). The client sends these paths as they are.
	for _, path := range []string{"/.well-known/acme-challenge/..;/..;/admin", "/.well-known/acme-challenge/%252e%252e/%252e%252e/admin",
		"/.well-known/acme-challenge/%2e%2e/admin", "/manifest.json;/../admin"} {
		if r := vaDoRaw(t, ext, "GET "+path+" HTTP/1.1"); !strings.HasPrefix(r, "HTTP/1.1 401") {
			t.Errorf("%s: %q, want 401", path, firstLine(r))
		}
	}

	// A browser that cancels the prompt sees how to log in, never the token
	// (issue 13).
	r = vaDo(t, "GET", base+"/lab", "Accept", "text/html")
	if r.StatusCode != 401 || !strings.Contains(r.body, "caddy portal token") || !strings.Contains(r.body, "<code>vastai</code>") ||
		strings.Contains(r.body, token) || strings.Contains(r.body, password) {
		t.Errorf("login page: %s\n%s", r.Status, r.body)
	}

	// Logout: a GET shows the button and changes nothing; the POST revokes
	// the session, so the old cookie no longer works (issue 14 item 11).
	r = vaDo(t, "GET", base+"/.portal/logout", "Cookie", cookie+"="+session)
	if r.StatusCode != 200 || !strings.Contains(r.body, `method="post"`) || r.Header.Get("Set-Cookie") != "" {
		t.Errorf("GET logout: %s, Set-Cookie %q, body %q", r.Status, r.Header.Get("Set-Cookie"), r.body)
	}
	if r := vaDo(t, "POST", base+"/.portal/logout", "Cookie", cookie+"="+session, "Sec-Fetch-Site", "cross-site"); r.StatusCode != 403 {
		t.Errorf("cross-site logout: %s", r.Status)
	}
	r = vaDo(t, "POST", base+"/.portal/logout", "Cookie", cookie+"="+session, "Sec-Fetch-Site", "same-origin")
	if r.StatusCode != 200 || !strings.Contains(r.body, "Logged out") || !strings.Contains(r.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %s, Set-Cookie %q, body %q", r.Status, r.Header.Get("Set-Cookie"), r.body)
	}
	if r := vaDo(t, "GET", base+"/page", "Cookie", cookie+"="+session); r.StatusCode != 401 || r.app != nil {
		t.Errorf("the logged-out session still opens the app: %s", r.Status)
	}

	// Credentials in the URL in every spelling the access log used to keep
	// in clear (issue 14 item 10); all must be redacted below.
	for _, q := range []string{"Token=" + token, "token[]=" + token, "a=1;token=" + token, "x=1%23token=" + token, "pw=" + password} {
		vaDo(t, "GET", base+"/logged?"+q, "Authorization", "Bearer "+token)
	}

	// No secret in the running config (the admin API serves it to anyone local).
	cfg := p.AdminConfig()
	if strings.Contains(cfg, password) || strings.Contains(cfg, token) || !strings.Contains(cfg, "{env.WEB_PASSWORD}") {
		t.Errorf("admin config holds a secret or lacks the placeholders:\n%s", cfg)
	}
	// The start-up line says how to log in, masked; no log line holds a
	// secret or a session value, while the access log did record the requests.
	waitFor(t, 5*time.Second, "access log of the last request", func() bool {
		return strings.Contains(p.Logs(), `"uri":"/logged?pw=`)
	})
	logs := p.Logs()
	if !strings.Contains(logs, "authentication on") || !strings.Contains(logs, `"secrets_from":["{env.OPEN_BUTTON_TOKEN}","{env.WEB_PASSWORD}"]`) {
		t.Errorf("no start-up line saying where the secrets come from:\n%s", logs)
	}
	// Not even the first characters of the password (issue 14 item 10).
	if strings.Contains(logs, password[:4]) || strings.Contains(logs, token[:5]) {
		t.Errorf("the logs show the start of a secret:\n%s", logs)
	}
	for _, want := range []string{`"uri":"/lab/tree?x=1&token=REDACTED"`, `"uri":"/logged?Token=REDACTED"`, `"uri":"/logged?token[]=REDACTED"`,
		`"uri":"/logged?a=1;token=REDACTED"`, `"uri":"/logged?x=REDACTED"`, `"uri":"/logged?pw=REDACTED"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
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
	login := vaDo(t, "GET", base+"/?token="+token, "Accept", "application/json")
	session := strings.SplitN(login.Header.Get("Set-Cookie"), ";", 2)[0]

	for i := range 20 { // the default: 20 failures per minute
		if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer guess-"+strconv.Itoa(i)); r.StatusCode != 401 {
			t.Fatalf("failure %d: %s, want 401", i+1, r.Status)
		}
	}
	r := vaDo(t, "GET", base+"/", "Authorization", "Bearer guess")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("21st failure: %s, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	// Over the limit, even the right token is refused unchecked (issue 14
	// item 1); a session from before still works.
	if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer "+token); r.StatusCode != 429 {
		t.Errorf("the right token while limited: %s, want 429", r.Status)
	}
	if r := vaDo(t, "GET", base+"/", "Cookie", session); r.StatusCode != 200 {
		t.Errorf("a session while limited: %s", r.Status)
	}
	if r := vaDo(t, "GET", base+"/"); r.StatusCode != 401 {
		t.Errorf("no credentials while limited: %s, want the prompt", r.Status)
	}
	out, err := p.Reload("--force")
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
	// From a shell whose PORTAL_STATE_DIR differs (make run keeps its state
	// under .run/state), the command still prints the running portal's
	// token, found through the admin API, and creates nothing (issue 21).
	other := t.TempDir()
	cmd := exec.Command(caddyBin, "portal", "token")
	cmd.Env = append(append([]string(nil), p.Env...), "PORTAL_STATE_DIR="+other)
	if o, err := cmd.Output(); err != nil || strings.TrimSpace(string(o)) != token {
		t.Errorf("from another state dir: %q %v, want the running token", o, err)
	}
	if _, err := os.Stat(filepath.Join(other, "auth_token")); err == nil {
		t.Error("a token was generated in the shell's state dir")
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
		secrets {env.VA_SECRET}
		cookie_name t_auth_token
		state_dir %s
		failure_limit 3
		failure_window 2s
	}
	reverse_proxy 127.0.0.1:%d
}
`, admin, port, filepath.Join(dir, "state"), be.Port)
	cfgPath := filepath.Join(dir, "Caddyfile")
	mustWrite(t, cfgPath, caddyfile, 0o644)
	secret := randomSecret(t, "s-")
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "VA_SECRET=" + secret}
	out := testproc.Start(t, cmd, testproc.Options{Name: "caddy", Stop: os.Interrupt}).Out
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
	time.Sleep(time.Duration(retry) * time.Second) // the time under test: Retry-After must be enough
	if r := vaDo(t, "GET", base+"/", "Authorization", "Bearer wrong"); r.StatusCode != 401 {
		t.Errorf("after Retry-After: %s, want 401 again", r.Status)
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("a log line holds the secret:\n%s", out.String())
	}
}

// Issue 14 item 1, through the real binary: a dictionary run against a
// password a person chose finds nothing within its window, even with the
// right word in the list; the user's own logged-in browser keeps working,
// and a visitor coming through our cloudflared (a loopback peer with
// Cf-Ray) is counted by Cf-Connecting-IP, apart from the guesser.
func TestVastAuthBruteForceThroughBinary(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	const password = "Summer2026!" // the kind of password a person picks
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"WEB_PASSWORD": password}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)

	// The user logged in before the attack.
	r := vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", password))
	session := strings.SplitN(strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0], "=", 2)[1]
	if r.StatusCode != 200 || session == "" {
		t.Fatalf("login: %s", r.Status)
	}

	words := []string{"123456", "password", "qwerty", "Summer2025!", "letmein", "admin", "welcome", "Winter2026!"}
	found, refused := 0, 0
	for i := range 300 {
		word := words[i%len(words)] + strconv.Itoa(i)
		if i == 150 {
			word = password
		}
		var r vaResponse
		switch i % 3 {
		case 0:
			r = vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", word))
		case 1:
			r = vaDo(t, "GET", base+"/", "Authorization", "Bearer "+word)
		default:
			r = vaDo(t, "GET", base+"/?token="+url.QueryEscape(word), "Accept", "application/json")
		}
		switch {
		case r.StatusCode == 200 || r.app != nil:
			found++
			t.Errorf("guess %d (%q) got in: %s", i+1, word, r.Status)
		case r.StatusCode == 429:
			refused++
		case i >= 20:
			t.Errorf("guess %d: %s, want 429", i+1, r.Status)
		}
		if i%50 == 0 {
			if r := vaDo(t, "GET", base+"/", "Cookie", "_auth_token="+session); r.StatusCode != 200 {
				t.Fatalf("the user's session was refused during the attack: %s", r.Status)
			}
		}
	}
	if found != 0 || refused < 280 {
		t.Fatalf("found %d, refused %d of 300", found, refused)
	}
	// Through our cloudflared, another visitor is not the guesser.
	if r := vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", password), "Cf-Ray", "8a1b2c-AMS", "Cf-Connecting-IP", "203.0.113.77"); r.StatusCode != 200 {
		t.Errorf("a tunnel visitor with the password: %s", r.Status)
	}
	// Cf-Connecting-IP without Cf-Ray does not pick the counter.
	if r := vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", password), "Cf-Connecting-IP", "203.0.113.78"); r.StatusCode != 429 {
		t.Errorf("Cf-Connecting-IP without Cf-Ray: %s, want 429", r.Status)
	}
}

// Issue 10, through the real binary: a logged-in page gets a handoff token
// for another origin (here http://localhost:<port> against
// http://127.0.0.1:<port>), which logs the browser in there once, and is
// refused when replayed, also after `caddy reload`.
func TestVastAuthHandoffThroughBinary(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	token := randomSecret(t, "tok-")
	// The target's host stands for the instance's public address: tokens
	// are issued for the instance's own origins only (issue 20).
	p := StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"OPEN_BUTTON_TOKEN": token, "PORTAL_ACCESS_LOG": "true", "PUBLIC_IPADDR": "localhost"}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	target := fmt.Sprintf("http://localhost:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)
	r := vaDo(t, "GET", base+"/?token="+token, "Accept", "application/json")
	session := "_auth_token=" + strings.SplitN(strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0], "=", 2)[1]

	issue := func() string {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/api/handoff", strings.NewReader(`{"origin":"`+target+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cookie", session)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := vaClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Token == "" {
			t.Fatalf("POST /api/handoff: %s, %v", resp.Status, err)
		}
		return out.Token
	}
	// Unauthenticated or cross-site: refused.
	if r := vaDo(t, "POST", base+"/api/handoff", "Content-Type", "application/json"); r.StatusCode != 401 {
		t.Errorf("handoff without a login: %s", r.Status)
	}
	if r := vaDo(t, "POST", base+"/api/handoff", "Content-Type", "application/json", "Cookie", session, "Sec-Fetch-Site", "cross-site"); r.StatusCode != 403 {
		t.Errorf("cross-site handoff: %s", r.Status)
	}

	tok := issue()
	open := func(tok string) vaResponse {
		return vaDo(t, "GET", target+"/lab?x=1&portal_handoff="+tok, "Accept", "text/html")
	}
	r = open(tok)
	if r.StatusCode != 302 || r.Header.Get("Location") != "/lab?x=1" || !strings.Contains(r.Header.Get("Set-Cookie"), "_auth_token=v2.") {
		t.Fatalf("redeem: %s, Location %q, Set-Cookie %q", r.Status, r.Header.Get("Location"), r.Header.Get("Set-Cookie"))
	}
	fresh := strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0]
	if r := vaDo(t, "GET", target+"/app", "Cookie", fresh); r.StatusCode != 200 || r.app == nil || r.app.URI != "/app" {
		t.Errorf("the handed-off session: %s %+v", r.Status, r.app)
	}
	if r := open(tok); r.StatusCode != 401 {
		t.Errorf("replay: %s", r.Status)
	}
	// Issued for localhost, presented on 127.0.0.1: another origin.
	if r := vaDo(t, "GET", base+"/?portal_handoff="+issue()); r.StatusCode != 401 {
		t.Errorf("another origin: %s", r.Status)
	}
	// Spent before a reload, replayed after it: still spent.
	spent := issue()
	if r := open(spent); r.StatusCode != 302 {
		t.Fatalf("redeem before reload: %s", r.Status)
	}
	out, err := p.Reload("--force")
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if r := open(spent); r.StatusCode != 401 {
		t.Errorf("replay after reload: %s", r.Status)
	}
	// A token issued before the reload and unused still works after it.
	pending := issue()
	if _, err := p.Reload("--force"); err != nil {
		t.Fatal(err)
	}
	if r := open(pending); r.StatusCode != 302 {
		t.Errorf("unused token after reload: %s", r.Status)
	}
	waitFor(t, 5*time.Second, "the access log of the last redemption", func() bool { return strings.Count(p.Logs(), "portal_handoff=REDACTED") >= 4 })
	for _, tk := range []string{tok, spent, pending} {
		if strings.Contains(p.Logs(), tk) {
			t.Errorf("a handoff token is in the logs")
		}
	}
}

// Issue 14 item 3, through the real binary: an AUTH_EXCLUDE port is served
// without authentication but never receives our credentials.
func TestAuthExcludeStripsOurCredentials(t *testing.T) {
	be := recordingBackend(t)
	open, guarded := freePort(t), freePort(t)
	const password = "exclude-test-secret-1"
	StartPortal(t, portalYAML(appYAML("Open", open, be.Port, "/"), appYAML("Guarded", guarded, be.Port, "/")), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD": password, "AUTH_EXCLUDE": strconv.Itoa(open), "VAST_CONTAINERLABEL": "C.5"}})
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/manifest.json", guarded), 200)
	r := vaDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/?token=%s", guarded, password), "Accept", "application/json")
	session := strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0]
	if !strings.HasPrefix(session, "C.5_auth_token=") {
		t.Fatalf("login on the guarded port: %s, %q", r.Status, session)
	}

	// The browser sends the cookie to every port of the host.
	r = vaDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/p?a=1&token=%s", open, password),
		"Cookie", "theirs=1; "+session, "Authorization", "Bearer "+password)
	if r.StatusCode != 200 || r.app == nil {
		t.Fatalf("excluded port: %s", r.Status)
	}
	if r.app.URI != "/p?a=1" || strings.Join(r.app.Cookie, ";") != "theirs=1" || len(r.app.Authorization) != 0 {
		t.Errorf("the excluded app saw URI %q, Cookie %q, Authorization %q", r.app.URI, r.app.Cookie, r.app.Authorization)
	}
	// And it is not guarded: no credentials needed, wrong ones not counted.
	for range 30 {
		if r := vaDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/", open), "Authorization", "Bearer wrong"); r.StatusCode != 200 {
			t.Fatalf("excluded port with a wrong credential: %s", r.Status)
		}
	}
}

// Issue 13: `caddy validate` by a user who cannot write the default state
// directory (/var/lib/portal) says which variable to set instead of a bare
// "permission denied".
func TestVastAuthValidateAsNonRootNamesStateDir(t *testing.T) {
	skipShort(t)
	// Not under t.TempDir(), whose parent only its owner may enter.
	dir, err := os.MkdirTemp("", "portal-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "caddy")
	raw, err := os.ReadFile(caddyBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "portal.yaml")
	mustWrite(t, cfg, portalYAML(appYAML("App", freePort(t), freePort(t), "/")), 0o644)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o777)
	cmd := exec.Command(bin, "validate", "--adapter", "portal_yaml", "--config", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home,
		"PORTAL_DEFAULT_TUNNELS=false", "PORTAL_LOG_DIR=" + home, "PORTAL_ADMIN_LISTEN=off"}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if f, err := os.CreateTemp(portalconfig.DefaultStateDir, ".probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("this user can write " + portalconfig.DefaultStateDir)
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("caddy validate as a user who cannot write %s succeeded:\n%s", portalconfig.DefaultStateDir, out)
	}
	for _, want := range []string{`state_dir \"/var/lib/portal\"`, "permission denied", "PORTAL_STATE_DIR"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not name %s:\n%s", want, out)
		}
	}
	// With the variable set as the message says, it validates.
	state := filepath.Join(home, "state")
	cmd2 := exec.Command(bin, "validate", "--adapter", "portal_yaml", "--config", cfg)
	cmd2.Env = append(cmd.Env, "PORTAL_STATE_DIR="+state)
	cmd2.SysProcAttr = cmd.SysProcAttr
	if out, err := cmd2.CombinedOutput(); err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Errorf("with PORTAL_STATE_DIR set: %v\n%s", err, out)
	}
}

// TestValidateLeavesNoStateFiles: `caddy validate --adapter portal_yaml`
// provisions every module but must change nothing: before issue 20 it wrote
// auth_token and session_salt into the state directory. A run of the same
// config afterwards still generates them.
func TestValidateLeavesNoStateFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portal.yaml")
	mustWrite(t, cfg, portalYAML(appYAML("App", freePort(t), freePort(t), "/")), 0o644)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "validate", "--adapter", "portal_yaml", "--config", cfg)
	cmd.Env = append(os.Environ(), "PORTAL_STATE_DIR="+state, "PORTAL_LOG_DIR="+dir, "PORTAL_DEFAULT_TUNNELS=false",
		"PORTAL_ADMIN_LISTEN=off", "WEB_PASSWORD=", "OPEN_BUTTON_TOKEN=", "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("validate wrote %v into the state directory", names)
	}
}

// TestVastAuthOwnerOpenLinkWhileLimitedThroughBinary (issue 20, item 6): a
// guesser behind the owner's address reaches the failure limit; the owner's
// Open link (?token=OPEN_BUTTON_TOKEN, unguessable) still gets in, while
// the user-chosen WEB_PASSWORD, right as it is, gets 429 in every form.
func TestVastAuthOwnerOpenLinkWhileLimitedThroughBinary(t *testing.T) {
	be := recordingBackend(t)
	ext := freePort(t)
	const password = "Summer2026!"
	const open = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{"WEB_PASSWORD": password, "OPEN_BUTTON_TOKEN": open}})
	base := fmt.Sprintf("http://127.0.0.1:%d", ext)
	waitStatus(t, nil, base+"/manifest.json", 200)
	limited := false
	for i := range 40 {
		if r := vaDo(t, "GET", base+"/?token=guess"+strconv.Itoa(i), "Accept", "application/json"); r.StatusCode == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("40 wrong guesses did not reach the limit")
	}
	for name, r := range map[string]vaResponse{
		"password as ?token=": vaDo(t, "GET", base+"/?token="+url.QueryEscape(password), "Accept", "application/json"),
		"password as Basic":   vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", password)),
		"Open token as Basic": vaDo(t, "GET", base+"/", "Authorization", basicHeader("vastai", open)),
	} {
		if r.StatusCode != 429 || r.app != nil {
			t.Errorf("%s while limited: %s, want 429", name, r.Status)
		}
	}
	if r := vaDo(t, "GET", base+"/?token="+open, "Accept", "application/json"); r.StatusCode != 200 {
		t.Errorf("the owner's Open link while limited: %s, want 200", r.Status)
	}
}
