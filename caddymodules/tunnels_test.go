package caddymodules

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/tunnels"
)

func TestTunnelsGlobalOptionCaddyfile(t *testing.T) {
	in := `tunnels {
		cloudflared /usr/local/bin/cloudflared
		protocol quic
		log_dir /var/log/portal
		state_dir /var/lib/portal
		quick http://localhost:8080 https://localhost:1111
		quick http://localhost:7860
		named_token {env.CF_TUNNEL_TOKEN}
		ready_timeout 30s
		unready_restart 2m
		kill_grace 3s
		poll_interval 250ms
		backoff 1s 1m
		failure_decay 10m
		rate_limit_cooldown 15m
		start_spacing 5s
	}`
	var a TunnelsApp
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a)
	want := `{"cloudflared":"/usr/local/bin/cloudflared","protocol":"quic","log_dir":"/var/log/portal","state_dir":"/var/lib/portal",` +
		`"quick":[{"target":"http://localhost:8080"},{"target":"https://localhost:1111"},{"target":"http://localhost:7860"}],` +
		`"named":{"token":"{env.CF_TUNNEL_TOKEN}"},"ready_timeout":30000000000,"unready_restart":120000000000,"kill_grace":3000000000,` +
		`"poll_interval":250000000,"backoff_base":1000000000,"backoff_max":60000000000,"failure_decay":600000000000,` +
		`"rate_limit_cooldown":900000000000,"start_spacing":5000000000}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestTunnelsCaddyfileErrors(t *testing.T) {
	bad := map[string]string{
		"argument on the option":  `tunnels extra {}`,
		"unknown option":          "tunnels {\n bogus 1\n}",
		"duplicate":               "tunnels {\n protocol http2\n protocol quic\n}",
		"missing arg":             "tunnels {\n cloudflared\n}",
		"two args":                "tunnels {\n log_dir a b\n}",
		"bad duration":            "tunnels {\n ready_timeout soon\n}",
		"negative duration":       "tunnels {\n kill_grace -1s\n}",
		"backoff arity":           "tunnels {\n backoff 1s\n}",
		"backoff order":           "tunnels {\n backoff 1m 1s\n}",
		"literal token":           "tunnels {\n named_token eyJhIjoi\n}",
		"quick without target":    "tunnels {\n quick\n}",
		"block on an option":      "tunnels {\n protocol http2 {\n x\n }\n}",
		"api argument":            `tunnels_api extra`,
		"api unknown option":      "tunnels_api {\n path /x\n}",
		"api relative base":       "tunnels_api {\n base_path api\n}",
		"api duplicate base_path": "tunnels_api {\n base_path /a\n base_path /b\n}",
	}
	for name, in := range bad {
		var err error
		if strings.HasPrefix(in, "tunnels_api") {
			err = new(TunnelsAPI).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		} else {
			err = new(TunnelsApp).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		}
		if err == nil {
			t.Errorf("%s: accepted %q", name, in)
		} else if strings.Contains(err.Error(), "eyJhIjoi") {
			t.Errorf("%s: error echoes the token: %v", name, err)
		}
	}
	var h TunnelsAPI
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tunnels_api {\n base_path /tunnels\n}")); err != nil || h.BasePath != "/tunnels" {
		t.Fatalf("base_path: %v %q", err, h.BasePath)
	}
}

func TestTunnelsAppFor(t *testing.T) {
	const apps = "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter|localhost:8080:18080:/lab:Dup|localhost:8384:8384:/:Link"
	dir := t.TempDir()
	cases := []struct {
		name string
		env  portalconfig.Environ
		want string
	}{
		{"defaults off", portalconfig.Environ{"PORTAL_DEFAULT_TUNNELS": "false", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s"}`},
		{"one per served port", portalconfig.Environ{"CLOUDFLARED_BIN": "cf", "TUNNEL_TRANSPORT_PROTOCOL": "quic", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cf","protocol":"quic","log_dir":"/l","state_dir":"/s","quick":[{"target":"http://localhost:1111"},{"target":"http://localhost:8080"}]}`},
		// ENABLE_HTTPS without a usable pair serves plain HTTP, so the
		// tunnels must speak plain HTTP too (they targeted https before).
		{"https asked, no pair", portalconfig.Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": dir + "/none.crt", "INSTANCE_KEY": dir + "/none.key", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s", "CF_TUNNEL_TOKEN": "tok"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s","quick":[{"target":"http://localhost:1111"},{"target":"http://localhost:8080"}],"named":{"token":"{env.CF_TUNNEL_TOKEN}"}}`},
		{"https with a pair", portalconfig.Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": "testdata/certs/instance.crt", "INSTANCE_KEY": "testdata/certs/instance.key", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s","quick":[{"target":"https://localhost:1111"},{"target":"https://localhost:8080"}]}`},
	}
	for _, c := range cases {
		var warns []caddyconfig.Warning
		raw := caddyconfig.JSON(tunnelsAppFor(testPlan(t, apps, c.env)), &warns)
		if string(raw) != c.want || len(warns) != 0 {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.name, raw, warns, c.want)
		}
	}
}

func TestTunnelsAppProvisionRefusesLiteralToken(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	a := &TunnelsApp{Named: &NamedTunnelConfig{Token: "eyJsecret"}}
	err := a.Provision(ctx)
	if err == nil || strings.Contains(err.Error(), "eyJsecret") {
		t.Fatalf("Provision = %v", err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b := &TunnelsApp{Quick: []QuickTunnelConfig{{Target: "http://example.com:80"}}}
	if err := b.Provision(ctx); err == nil || !strings.Contains(err.Error(), "quick[0]") {
		t.Fatalf("Provision with a remote target = %v", err)
	}
	_ = b.Cleanup()
	c := &TunnelsApp{Protocol: "carrier-pigeon"}
	if err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Cleanup()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Fatalf("Validate = %v", err)
	}
}

// TestTunnelsAppSharesManagerAcrossConfigs is the reload path: two configs
// with the same process settings share one pooled manager, and the last
// Cleanup closes it.
func TestTunnelsAppSharesManagerAcrossConfigs(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	dir := t.TempDir()
	old := &TunnelsApp{Cloudflared: filepath.Join(dir, "none"), StateDir: dir}
	cur := &TunnelsApp{Cloudflared: filepath.Join(dir, "none"), StateDir: dir, ReadyTimeout: caddy.Duration(1)}
	for _, a := range []*TunnelsApp{old, cur} {
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if old.Manager() != cur.Manager() {
		t.Fatal("configs with the same process settings got different managers")
	}
	if n, _ := tunnelManagers.References(old.poolKey); n != 2 {
		t.Fatalf("pool references = %d, want 2", n)
	}
	m := cur.Manager()
	_ = old.Cleanup()
	_ = cur.Cleanup()
	if _, _, err := m.Create("http://localhost:8080"); err != tunnels.ErrClosed {
		t.Fatalf("manager still open after the last Cleanup: %v", err)
	}
}

func serveTunnelsAPI(t *testing.T, h *TunnelsAPI, method, path, ctype, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	if err := h.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != http.StatusTeapot && rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: no Cache-Control: no-store", method, path)
	}
	return rec.Code, out
}

func TestTunnelsAPIServeHTTP(t *testing.T) {
	m := tunnels.NewManager(tunnels.Options{Binary: filepath.Join(t.TempDir(), "no-cloudflared"), Logger: zap.NewNop()})
	defer m.Close()
	h := &TunnelsAPI{BasePath: "/api/tunnels", manager: func() *tunnels.Manager { return m }, logger: zap.NewNop()}
	const js = "application/json"
	cases := []struct {
		method, path, ctype, body string
		code                      int
		errPart                   string
	}{
		{"GET", "/api/tunnels", "", "", 200, ""},
		{"GET", "/api/tunnelsX", "", "", http.StatusTeapot, ""},
		{"GET", "/other", "", "", http.StatusTeapot, ""},
		{"DELETE", "/api/tunnels", "", "", 405, "method not allowed"},
		{"GET", "/api/tunnels/stop", "", "", 405, "use POST"},
		{"POST", "/api/tunnels/nope", js, `{}`, 404, "no tunnels endpoint"},
		{"POST", "/api/tunnels", "text/plain", `{"target":"http://localhost:1"}`, 415, "application/json"},
		{"POST", "/api/tunnels", js, `{"target":`, 400, "body"},
		{"POST", "/api/tunnels", js, `{"target":"http://localhost:1","x":1}`, 400, "unknown field"},
		{"POST", "/api/tunnels", js, `{}`, 400, "missing \"target\""},
		{"POST", "/api/tunnels", js, `{"target":"http://localhost:1"} {}`, 400, "one JSON object"},
		{"POST", "/api/tunnels", js, `{"target":"http://10.0.0.1:80"}`, 400, "host must be localhost"},
		{"POST", "/api/tunnels", js, `{"target":"` + strings.Repeat("a", 5000) + `"}`, 400, "body"},
		{"POST", "/api/tunnels/stop", js, `{"target":"http://localhost:9"}`, 404, "no such tunnel"},
		{"POST", "/api/tunnels", js, `{"target":"http://localhost:8080"}`, 503, "cloudflared binary not available"},
		{"POST", "/api/tunnels/refresh", "application/json; charset=utf-8", `{"target":"http://localhost:8080"}`, 503, "no-cloudflared"},
	}
	for _, c := range cases {
		code, out := serveTunnelsAPI(t, h, c.method, c.path, c.ctype, c.body)
		msg, _ := out["error"].(string)
		if code != c.code || !strings.Contains(msg, c.errPart) {
			t.Errorf("%s %s %s: %d %v; want %d with %q", c.method, c.path, c.body[:min(len(c.body), 60)], code, out, c.code, c.errPart)
		}
	}
	code, out := serveTunnelsAPI(t, h, "GET", "/api/tunnels/", "", "")
	list, _ := out["tunnels"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["state"] != "failed" {
		t.Fatalf("list after a failed create: %d %v", code, out)
	}
}
