package caddymodules

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/confdecl"
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
		max_tunnels 8
		create_burst 2
		create_interval 1m
	}`
	var a TunnelsApp
	parseCaddyfile(t, &a, in)
	got, _ := json.Marshal(a)
	want := `{"cloudflared":"/usr/local/bin/cloudflared","protocol":"quic","log_dir":"/var/log/portal","state_dir":"/var/lib/portal",` +
		`"quick":["http://localhost:8080","https://localhost:1111","http://localhost:7860"],` +
		`"named_token":"{env.CF_TUNNEL_TOKEN}","ready_timeout":"30s","unready_restart":"2m","kill_grace":"3s",` +
		`"poll_interval":"250ms","backoff_base":"1s","backoff_max":"1m","failure_decay":"10m",` +
		`"rate_limit_cooldown":"15m","start_spacing":"5s","max_tunnels":8,"create_burst":2,"create_interval":"1m"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestTunnelsCaddyfileErrors(t *testing.T) {
	bad := map[string]struct{ in, want string }{
		"argument on the option":  {`tunnels extra {}`, "wrong argument count"},
		"unknown option":          {"tunnels {\n bogus 1\n}", `tunnels: unrecognized option "bogus"`},
		"duplicate":               {"tunnels {\n protocol http2\n protocol quic\n}", `tunnels: duplicate option "protocol"`},
		"missing arg":             {"tunnels {\n cloudflared\n}", "wrong argument count"},
		"two args":                {"tunnels {\n log_dir a b\n}", "wrong argument count"},
		"bad duration":            {"tunnels {\n ready_timeout soon\n}", `tunnels: ready_timeout "soon": want a duration`},
		"negative duration":       {"tunnels {\n kill_grace -1s\n}", `tunnels: kill_grace "-1s": want a duration`},
		"bad count":               {"tunnels {\n max_tunnels many\n}", `tunnels: max_tunnels "many": want an integer`},
		"backoff arity":           {"tunnels {\n backoff 1s\n}", "wrong argument count"},
		"backoff duration":        {"tunnels {\n backoff 1s later\n}", `tunnels: backoff "later": want two durations`},
		"backoff twice":           {"tunnels {\n backoff 1s 2s\n backoff 1s 2s\n}", `tunnels: duplicate option "backoff"`},
		"backoff order":           {"tunnels {\n backoff 1m 1s\n}", "tunnels: backoff_max: 1s is less than backoff_base 1m"},
		"bad protocol":            {"tunnels {\n protocol carrier-pigeon\n}", `tunnels: protocol: "carrier-pigeon": want auto, http2, quic`},
		"literal token":           {"tunnels {\n named_token eyJhIjoi\n}", "tunnels: named_token: must be a placeholder such as {env.CF_TUNNEL_TOKEN}"},
		"remote target":           {"tunnels {\n quick http://10.0.0.1:80\n}", `tunnels: quick[0]: invalid tunnel target "http://10.0.0.1:80": host must be localhost`},
		"quick without target":    {"tunnels {\n quick\n}", "wrong argument count"},
		"block on an option":      {"tunnels {\n protocol http2 {\n x\n }\n}", `tunnels: option "protocol" takes no block`},
		"list option from JSON":   {"tunnels {\n apps x\n}", `tunnels: option "apps" cannot be set in a Caddyfile`},
		"api argument":            {`tunnels_api extra`, "wrong argument count"},
		"api unknown option":      {"tunnels_api {\n path /x\n}", `unrecognized tunnels_api option "path"`},
		"api relative base":       {"tunnels_api {\n base_path api\n}", `base_path "api" must start with /`},
		"api duplicate base_path": {"tunnels_api {\n base_path /a\n base_path /b\n}", "duplicate option base_path"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			var m caddyfile.Unmarshaler = new(TunnelsApp)
			if strings.HasPrefix(c.in, "tunnels_api") {
				m = new(TunnelsAPI)
			}
			if err := refuseCaddyfile(t, m, c.in, c.want); err != nil && strings.Contains(err.Error(), "eyJhIjoi") {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
	var h TunnelsAPI
	if parseCaddyfile(t, &h, "tunnels_api {\n base_path /tunnels\n}"); h.BasePath != "/tunnels" {
		t.Fatalf("base_path %q", h.BasePath)
	}
}

func TestTunnelsAppFor(t *testing.T) {
	const apps = "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter|localhost:8080:18080:/lab:Dup|localhost:8384:8384:/:Link"
	dir := t.TempDir()
	appsJSON := func(scheme string) string {
		return `"apps":[{"name":"Instance Portal","internal_port":11111,"external_port":1111,"served":true,"tunnel_port":1111,"scheme":"` + scheme + `"},` +
			`{"name":"Jupyter","internal_port":18080,"external_port":8080,"served":true,"tunnel_port":8080,"scheme":"` + scheme + `"},` +
			`{"name":"Dup","internal_port":18080,"external_port":8080,"served":true,"tunnel_port":8080,"scheme":"` + scheme + `"},` +
			`{"name":"Link","internal_port":8384,"external_port":8384,"tunnel_port":8384,"scheme":"http"}],"admin_port":2019`
	}
	cases := []struct {
		name string
		env  portalconfig.Environ
		want string
	}{
		{"defaults off", portalconfig.Environ{"PORTAL_DEFAULT_TUNNELS": "false", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s",` + appsJSON("http") + `}`},
		{"one per served port", portalconfig.Environ{"CLOUDFLARED_BIN": "cf", "TUNNEL_TRANSPORT_PROTOCOL": "quic", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cf","protocol":"quic","log_dir":"/l","state_dir":"/s","quick":["http://localhost:1111","http://localhost:8080"],` + appsJSON("http") + `}`},
		// ENABLE_HTTPS without a usable pair serves plain HTTP, so the
		// tunnels must speak plain HTTP too (they targeted https before).
		{"https asked, no pair", portalconfig.Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": dir + "/none.crt", "INSTANCE_KEY": dir + "/none.key", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s", "CF_TUNNEL_TOKEN": "tok"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s","quick":["http://localhost:1111","http://localhost:8080"],"named_token":"{env.CF_TUNNEL_TOKEN}",` + appsJSON("http") + `}`},
		{"https with a pair", portalconfig.Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": "testdata/certs/instance.crt", "INSTANCE_KEY": "testdata/certs/instance.key", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s","quick":["https://localhost:1111","https://localhost:8080"],` + appsJSON("https") + `}`},
		// The admin port follows PORTAL_ADMIN_LISTEN; off leaves none.
		{"admin moved", portalconfig.Environ{"PORTAL_DEFAULT_TUNNELS": "false", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s", "PORTAL_ADMIN_LISTEN": "127.0.0.1:2999"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s",` + strings.Replace(appsJSON("http"), "2019", "2999", 1) + `}`},
		{"admin off", portalconfig.Environ{"PORTAL_DEFAULT_TUNNELS": "false", "PORTAL_LOG_DIR": "/l", "PORTAL_STATE_DIR": "/s", "PORTAL_ADMIN_LISTEN": "off"},
			`{"cloudflared":"cloudflared","protocol":"http2","log_dir":"/l","state_dir":"/s",` + strings.Replace(appsJSON("http"), `,"admin_port":2019`, "", 1) + `}`},
	}
	for _, c := range cases {
		var warns []caddyconfig.Warning
		app := tunnelsAppFor(testPlan(t, apps, c.env))
		raw := caddyconfig.JSON(app, &warns)
		if string(raw) != c.want || len(warns) != 0 {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.name, raw, warns, c.want)
		}
		if err := app.Config.WithDefaults().Check(); err != nil {
			t.Errorf("%s: the adapter's config does not validate: %v", c.name, err)
		}
	}
}

func TestTunnelsAppProvisionChecksSettings(t *testing.T) {
	ctx := caddyContext(t)
	cases := []struct {
		cfg  tunnels.Config
		want string
	}{
		{tunnels.Config{NamedToken: "eyJsecret"}, "named_token: must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token"},
		{tunnels.Config{Quick: []string{"http://example.com:80"}}, `quick[0]: invalid tunnel target "http://example.com:80": host must be localhost`},
		{tunnels.Config{Protocol: "carrier-pigeon"}, `protocol: "carrier-pigeon": want auto, http2, quic`},
		{tunnels.Config{BackoffBase: confdecl.Duration(time.Minute), BackoffMax: confdecl.Duration(time.Second)}, "backoff_max: 1s is less than backoff_base 1m"},
	}
	for _, c := range cases {
		a := &TunnelsApp{Config: c.cfg}
		err := a.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "eyJsecret") {
			t.Errorf("Provision(%+v) = %v, want %q", c.cfg, err, c.want)
		}
		if err := a.Cleanup(); err != nil {
			t.Errorf("Cleanup after a failed Provision: %v", err)
		}
	}
}

// TestTunnelsAppSharesManagerAcrossConfigs is the reload path: two configs
// with the same process settings share one pooled manager, which takes the
// newer config's timings and limits at Start, and the last Cleanup closes
// it.
func TestTunnelsAppSharesManagerAcrossConfigs(t *testing.T) {
	ctx := caddyContext(t)
	dir := t.TempDir()
	old := &TunnelsApp{Config: tunnels.Config{Cloudflared: filepath.Join(dir, "none"), StateDir: dir}}
	cur := &TunnelsApp{Config: tunnels.Config{Cloudflared: filepath.Join(dir, "none"), StateDir: dir, ReadyTimeout: confdecl.Duration(time.Second), MaxTunnels: 3}}
	for _, a := range []*TunnelsApp{old, cur} {
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if old.Manager() != cur.Manager() {
		t.Fatal("configs with the same process settings got different managers")
	}
	if n, _ := tunnelManagers.references(old.pooled.key); n != 2 {
		t.Fatalf("pool references = %d, want 2", n)
	}
	m := cur.Manager()
	if err := cur.Start(); err != nil {
		t.Fatal(err)
	}
	if c := m.Config(); c.ReadyTimeout != confdecl.Duration(time.Second) || c.MaxTunnels != 3 || c.KillGrace != tunnels.Default().KillGrace {
		t.Fatalf("manager settings after the new config started: %+v", c)
	}
	_ = cur.Stop()
	_ = old.Cleanup()
	_ = cur.Cleanup()
	if _, _, err := m.Create("http://localhost:8080"); err != tunnels.ErrClosed {
		t.Fatalf("manager still open after the last Cleanup: %v", err)
	}
}

// serveTunnelsAPI sends one request with Content-Type ctype (none when
// empty) through h.
func serveTunnelsAPI(t *testing.T, h *TunnelsAPI, method, path, ctype, body string) (int, map[string]any) {
	t.Helper()
	a := serve(t, h, method, path, map[string]string{"Content-Type": ctype}, body)
	if a.Code != http.StatusTeapot && a.Hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: no Cache-Control: no-store", method, path)
	}
	return a.Code, a.Body
}

func TestTunnelsAPIServeHTTP(t *testing.T) {
	m := tunnels.NewManager(tunnels.Config{Cloudflared: filepath.Join(t.TempDir(), "no-cloudflared")}, zap.NewNop())
	defer m.Close()
	h := &TunnelsAPI{BasePath: "/api/tunnels", manager: func() *tunnels.Manager { return m }, apps: func() []tunnels.App { return nil }, logger: zap.NewNop()}
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
		if code >= 400 && code != http.StatusTeapot && msg == "" {
			t.Errorf("%s %s: %d without a JSON body saying what was wrong", c.method, c.path, code)
		}
	}
	code, out := serveTunnelsAPI(t, h, "GET", "/api/tunnels/", "", "")
	list, _ := out["tunnels"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["state"] != "failed" {
		t.Fatalf("list after a failed create: %d %v", code, out)
	}
}

// TestTunnelsAPIAdviceAndLimits: a tunnel to an app's internal port is
// made, with a warning and the authenticated target in the answer; the API
// refuses more than max_tunnels tunnels (409) and creations or refreshes
// beyond the burst (429 with Retry-After), each with a JSON body saying so.
// On the old code the API made as many tunnels as asked, as fast as asked,
// without a word about the internal port.
func TestTunnelsAPIAdviceAndLimits(t *testing.T) {
	// `true` exits at once; the manager restarts it with backoff, which is
	// enough to create tunnels without cloudflared.
	m := tunnels.NewManager(tunnels.Config{Cloudflared: "true", MaxTunnels: 2, CreateBurst: 3, CreateInterval: confdecl.Duration(10 * time.Second),
		BackoffBase: confdecl.Duration(time.Hour), BackoffMax: confdecl.Duration(time.Hour)}, zap.NewNop())
	defer m.Close()
	apps := []tunnels.App{
		{Name: "Instance Portal", InternalPort: 11111, ExternalPort: 1111, Served: true, TunnelPort: 1111, Scheme: "http"},
		{Name: "Jupyter", InternalPort: 18080, ExternalPort: 8080, Served: true, TunnelPort: 8080, Scheme: "http"},
	}
	h := &TunnelsAPI{BasePath: "/api/tunnels", manager: func() *tunnels.Manager { return m }, apps: func() []tunnels.App { return apps }, logger: zap.NewNop()}
	const js = "application/json"

	code, out := serveTunnelsAPI(t, h, "POST", "/api/tunnels", js, `{"target":"http://127.0.0.1:18080"}`)
	warning, _ := out["warning"].(string)
	if code != 201 || out["suggested_target"] != "http://localhost:8080" ||
		!strings.Contains(warning, `port 18080 is the internal port of "Jupyter": this tunnel publishes it without the portal's authentication`) {
		t.Fatalf("tunnel to an internal port: %d %v", code, out)
	}
	if tun, _ := out["tunnel"].(map[string]any); tun["target"] != "http://127.0.0.1:18080" {
		t.Fatalf("the tunnel is made all the same: %v", out)
	}
	code, out = serveTunnelsAPI(t, h, "POST", "/api/tunnels", js, `{"target":"http://localhost:1111"}`)
	if _, warned := out["warning"]; code != 201 || warned {
		t.Fatalf("tunnel to a served port: %d %v", code, out)
	}

	code, out = serveTunnelsAPI(t, h, "POST", "/api/tunnels", js, `{"target":"http://localhost:7860"}`)
	if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "2 quick tunnels run, the most allowed (max_tunnels); stop one first") {
		t.Fatalf("beyond max_tunnels: %d %v", code, out)
	}

	if code, out = serveTunnelsAPI(t, h, "POST", "/api/tunnels/refresh", js, `{"target":"http://localhost:1111"}`); code != 200 {
		t.Fatalf("refresh within the burst: %d %v", code, out)
	}
	req := httptest.NewRequest("POST", "/api/tunnels/refresh", strings.NewReader(`{"target":"http://localhost:1111"}`))
	req.Header.Set("Content-Type", js)
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	msg, _ := out["error"].(string)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "10" || rec.Header().Get("Content-Type") != js ||
		!strings.Contains(msg, "tunnels are being created too fast: retry in 10s (create_burst 3, then one per create_interval 10s)") {
		t.Fatalf("refresh beyond the burst: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// TestTunnelsManagerLogsThroughNewestConfig is the reload of issue 12: the
// pooled manager outlives the config that created it, and the reload
// closes that config's log sink. The manager must then log through the new
// config's logger. On the old code it kept the first config's logger, and
// its warnings went to the closed sink (lost, with "write error" on
// stderr).
func TestTunnelsManagerLogsThroughNewestConfig(t *testing.T) {
	dir := t.TempDir()
	app := map[string]any{"tunnels": map[string]any{
		// `false` exits at once: the manager logs the failure and waits.
		"cloudflared": "false", "state_dir": dir, "backoff_base": "1h", "backoff_max": "1h",
	}}
	// The same binary and directories: the reload keeps the manager.
	oldSink, newSink := reloadClosingOldSink(t, []string{"tunnels"}, app)

	appIface, err := caddy.ActiveContext().App("tunnels")
	if err != nil {
		t.Fatal(err)
	}
	m := appIface.(*TunnelsApp).Manager()
	if _, _, err := m.Create("http://localhost:9"); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, newSink, "cloudflared failed; restarting", oldSink)
	if !strings.Contains(newSink.String(), `"logger":"tunnels"`) || !strings.Contains(newSink.String(), `"tunnel":"http://localhost:9"`) {
		t.Errorf("entry lost its logger name or fields: %s", newSink)
	}
	if n := oldSink.late(); n != 0 {
		t.Errorf("%d writes to the old config's closed sink", n)
	}
}
