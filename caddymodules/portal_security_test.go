package caddymodules

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/connlimit"
	"github.com/instanceportal/portal/hostguard"
	"github.com/instanceportal/portal/portalconfig"
)

// literalHandlers are our handlers that serve their config as data and
// never run it through Caddy's replacer: user text belongs there as
// written (escaping it would show the backslashes).
// portal_reference, portal_mcp and portal_capabilities hold the same parts as the REST handlers
// (AgentServices), whose own copies are walked.
var literalHandlers = map[string]bool{"portal_apps": true, "portal_processes": true, "portal_links": true, "portal_reference": true, "portal_mcp": true, "portal_capabilities": true}

// walkStrings calls f with every string in a decoded JSON value, and
// literal with each handler object of literalHandlers instead of walking
// into it.
func walkStrings(v any, f func(string), literal func(map[string]any)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, e := range v {
			walkStrings(e, f, literal)
		}
	case map[string]any:
		if h, _ := v["handler"].(string); literalHandlers[h] {
			literal(v)
			return
		}
		for k, e := range v {
			f(k)
			walkStrings(e, f, literal)
		}
	}
}

// TestUserTextIsNeverExpanded puts placeholders in every piece of
// portal.yaml text a user writes (key, name, open_path) and runs Caddy's
// own replacer over every string of the adapted JSON, as static_response
// bodies and header values are expanded at request time: the secret's
// value must never come out. Only our handlers that serve their config as
// data (literalHandlers) keep user text as written, which is checked too.
// Fails on the code before literalText, where /api/apps (then a
// static_response) served "leak=<the password>".
func TestUserTextIsNeverExpanded(t *testing.T) {
	const secret = "s3cret-value-never-served"
	t.Setenv("PORTAL_TEST_LEAK", secret)
	yaml := `applications:
  Instance Portal:
    hostname: localhost
    external_port: 1111
    internal_port: 11111
    open_path: /
  "leak={env.PORTAL_TEST_LEAK}":
    hostname: localhost
    external_port: 8080
    internal_port: 18080
    open_path: "/x/{env.PORTAL_TEST_LEAK}/\\{env.PORTAL_TEST_LEAK}"
  Link:
    hostname: localhost
    external_port: 8384
    internal_port: 8384
    open_path: /
    name: "{env.PORTAL_TEST_LEAK}}{"
`
	out, _, err := adaptPortal([]byte(yaml), "portal.yaml", portalconfig.Environ{"PUBLIC_IPADDR": "203.0.113.9", "VAST_TCP_PORT_1111": "40111", "VAST_TCP_PORT_8080": "40080"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	// The tunnels app keeps the apps' names to word its advice; it never
	// runs them through the replacer (tunnels_app.go resolves only its
	// paths and the token), so they are checked as written and left out.
	tun := cfg.(map[string]any)["apps"].(map[string]any)["tunnels"].(map[string]any)
	if names, _ := json.Marshal(tun["apps"]); !strings.Contains(string(names), `"leak={env.PORTAL_TEST_LEAK}"`) {
		t.Errorf("the tunnels app's apps must carry the names as written: %s", names)
	}
	delete(tun, "apps")
	repl := caddy.NewReplacer()
	var apps, pages int
	walkStrings(cfg, func(s string) {
		served := repl.ReplaceKnown(s, "")
		if strings.Contains(served, secret) {
			t.Errorf("a config string expands to the secret: %.200q", s)
		}
		if strings.Contains(served, "is starting up</title>") && strings.Contains(served, "leak=") {
			pages++
			if !strings.Contains(served, "<title>leak={env.PORTAL_TEST_LEAK} is starting up</title>") {
				t.Errorf("starting-up page does not name the app as written: %.300q", served)
			}
		}
	}, func(handler map[string]any) {
		if handler["handler"] != "portal_apps" {
			return
		}
		apps++
		b, _ := json.Marshal(handler["apps"])
		var got []portalconfig.AppInfo
		if err := json.Unmarshal(b, &got); err != nil || len(got) != 3 {
			t.Fatalf("portal_apps' apps: %v %s", err, b)
		}
		if got[1].Name != "leak={env.PORTAL_TEST_LEAK}" || got[1].OpenPath != `/x/{env.PORTAL_TEST_LEAK}/\{env.PORTAL_TEST_LEAK}` ||
			got[2].Name != "{env.PORTAL_TEST_LEAK}}{" {
			t.Errorf("/api/apps must serve user text as written: %+v", got)
		}
	})
	if apps != 1 || pages != 2 {
		t.Errorf("found %d /api/apps handlers and %d starting-up pages of the app, want 1 and 2", apps, pages)
	}
}

// FuzzLiteralText: whatever the text, Caddy's replacer gives back exactly
// what literalText escaped, placeholders and backslashes included.
func FuzzLiteralText(f *testing.F) {
	for _, s := range []string{"", "plain", "{env.HOME}", `\{env.HOME}`, `\\{`, "}{", `a\`, "{{}}", `{http.request.uri}`, "{env.HOME\\}", "é{"} {
		f.Add(s)
	}
	f.Setenv("PORTAL_FUZZ_VAR", "expanded")
	repl := caddy.NewReplacer()
	repl.Set("portal.known", "expanded")
	f.Fuzz(func(t *testing.T, s string) {
		if got := repl.ReplaceKnown(literalText(s), ""); got != s {
			t.Fatalf("literalText(%q) is served as %q", s, got)
		}
		if got := repl.ReplaceAll(literalText(s+"{portal.known}{env.PORTAL_FUZZ_VAR}"), "-"); got != s+"{portal.known}{env.PORTAL_FUZZ_VAR}" {
			t.Fatalf("with placeholders after it: %q", got)
		}
	})
}

func TestStartingPageNamesTheAppAndLinksTheDashboard(t *testing.T) {
	plan := testPlan(t, `localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:<b>Jupyter</b> & co`,
		portalconfig.Environ{"PUBLIC_IPADDR": "203.0.113.9", "VAST_TCP_PORT_1111": "40111", "VAST_TCP_PORT_8080": "40080"})
	jupyter, _ := plan.Server(8080)
	page, err := startingPage(plan, jupyter)
	if err != nil {
		t.Fatal(err)
	}
	served := caddy.NewReplacer().ReplaceKnown(page, "")
	for _, want := range []string{
		"<title>&lt;b&gt;Jupyter&lt;/b&gt; &amp; co is starting up</title>",
		`<span id="app-name">&lt;b&gt;Jupyter&lt;/b&gt; &amp; co</span> is starting up`,
		`data-dashboard-port="1111"`, `data-dashboard-public-port="40111"`, `data-app-public-port="40080"`,
		`data-dashboard-url="http://203.0.113.9:40111/"`,
		`(tries === 1 ? " time)" : " times)")`,
		"--bg: light-dark(#f3f5f8, #0a0e13)", // the dashboard's palette
	} {
		if !strings.Contains(served, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(served, "<b>Jupyter") {
		t.Error("the app name reaches the page unescaped")
	}
	// The portal's own port links nowhere; without a portal entry either.
	own, _ := plan.Server(1111)
	page, _ = startingPage(plan, own)
	if !strings.Contains(page, `data-dashboard-port="0"`) || !strings.Contains(page, `data-dashboard-url=""`) {
		t.Error("the portal's own starting page links to itself")
	}
	noPortal := testPlan(t, "localhost:8080:18080:/:Jupyter", nil)
	sp, _ := noPortal.Server(8080)
	page, _ = startingPage(noPortal, sp)
	if !strings.Contains(page, `data-dashboard-port="0"`) {
		t.Error("a link to a dashboard that does not exist")
	}
}

// TestServersCarryLimitsAndTimeouts checks the adapted config for the
// pieces issue 14 asked for, on every server, with and without TLS.
func TestServersCarryLimitsAndTimeouts(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		env := map[string]string{}
		if withTLS {
			env = map[string]string{"ENABLE_HTTPS": "true", "INSTANCE_CERT": "testdata/certs/instance.crt", "INSTANCE_KEY": "testdata/certs/instance.key"}
		}
		out, _, err := adaptPortal([]byte("applications:\n"+
			"  Instance Portal: {hostname: localhost, external_port: 1111, internal_port: 11111}\n"+
			"  Jupyter: {hostname: localhost, external_port: 8080, internal_port: 18080}\n"), "portal.yaml", env, time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Apps struct {
				HTTP caddyhttp.App `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		app := cfg.Apps.HTTP
		if time.Duration(app.GracePeriod) != 10*time.Second {
			t.Errorf("grace_period = %v, want 10s (Caddy's default waits forever)", time.Duration(app.GracePeriod))
		}
		for name, srv := range app.Servers {
			if time.Duration(srv.ReadHeaderTimeout) != readHeaderTimeout {
				t.Errorf("%s: read_header_timeout %v", name, time.Duration(srv.ReadHeaderTimeout))
			}
			if name == "portal" {
				if len(srv.ListenerWrappersRaw) != 0 {
					t.Errorf("the internal server must not be capped: it is the headroom")
				}
				first, _ := json.Marshal(srv.Routes[0])
				if !strings.Contains(string(first), `"handler":"portal_internal_guard"`) || len(srv.Routes[0].MatcherSetsRaw) != 0 {
					t.Errorf("the internal server's first route is not the guard for every request: %s", first)
				}
				continue
			}
			if time.Duration(srv.IdleTimeout) != idleTimeout {
				t.Errorf("%s: idle_timeout %v", name, time.Duration(srv.IdleTimeout))
			}
			var wrappers []string
			for _, w := range srv.ListenerWrappersRaw {
				var m struct{ Wrapper string }
				_ = json.Unmarshal(w, &m)
				wrappers = append(wrappers, m.Wrapper)
			}
			want := "portal_connlimit"
			if withTLS {
				want = "portal_connlimit,http_redirect,tls"
			}
			if strings.Join(wrappers, ",") != want {
				t.Errorf("%s: listener_wrappers %v, want %s (the cap before TLS)", name, wrappers, want)
			}
			routes, _ := json.Marshal(srv.Routes)
			front := `"handler":"portal_front"`
			if name == "app_1111" {
				front += `,"mark_internal":true`
			}
			if strings.Count(string(routes), front) != 2 || (name != "app_1111" && strings.Contains(string(routes), "mark_internal")) {
				t.Errorf("%s: want %s before each proxy, and the mark on the portal's front only: %s", name, front, routes)
			}
		}
	}
}

func TestPortalServerRoutesStartWithTheGuard(t *testing.T) {
	var warns []caddyconfig.Warning
	plan := testPlan(t, "localhost:1111:11111:/:Instance Portal", nil)
	routes := portalServerRoutes(plan, &warns)
	h, _ := json.Marshal(routes[0].HandlersRaw)
	if len(routes[0].MatcherSetsRaw) != 0 || routes[0].Terminal || !strings.Contains(string(h), "portal_internal_guard") {
		t.Errorf("first route %s, matchers %v, terminal %v", h, routes[0].MatcherSetsRaw, routes[0].Terminal)
	}
}

var nextOK = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if _, ok := r.Header[hostguard.FrontHeader]; ok {
		return fmt.Errorf("the front mark reached the handlers")
	}
	w.WriteHeader(http.StatusTeapot)
	return nil
})

func TestInternalGuard(t *testing.T) {
	g := new(InternalGuard)
	provision(t, g)
	for _, c := range []struct {
		name, host string
		mark       []string
		want       int
	}{
		{"SSH forward", "localhost:11111", nil, http.StatusTeapot},
		{"SSH forward to another local port", "localhost:9000", nil, http.StatusTeapot},
		{"local process", "127.0.0.1:11111", nil, http.StatusTeapot},
		{"IPv6 loopback", "[::1]:11111", nil, http.StatusTeapot},
		{"DNS rebinding", "rebind.evil:11111", nil, http.StatusForbidden},
		{"rebinding with a guessed mark", "rebind.evil:11111", []string{"0123"}, http.StatusForbidden},
		{"rebinding with the mark twice", "rebind.evil:11111", []string{hostguard.Secret(), hostguard.Secret()}, http.StatusForbidden},
		{"our front", "203.0.113.9:40111", []string{hostguard.Secret()}, http.StatusTeapot},
		{"a wrong mark does not hurt a loopback Host", "localhost:11111", []string{"wrong"}, http.StatusTeapot},
	} {
		r := httptest.NewRequest(http.MethodPost, "http://x/api/tunnels", nil)
		r.Host = c.host
		if c.mark != nil {
			r.Header[hostguard.FrontHeader] = c.mark
		}
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, r, nextOK); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if w.Code == http.StatusForbidden && (strings.Contains(w.Body.String(), "rebind.evil") || !strings.Contains(w.Body.String(), "SSH port forward")) {
			t.Errorf("%s: 403 body %q must say what to do and not echo the Host", c.name, w.Body.String())
		}
	}
}

func TestPortalFrontHandler(t *testing.T) {
	for _, c := range []struct {
		mark   bool
		remote string
	}{{true, "203.0.113.7:5000"}, {false, "127.0.0.1:5000"}} {
		f := &PortalFront{FrontConfig: hostguard.FrontConfig{MarkInternal: c.mark}}
		r := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		r.RemoteAddr = c.remote
		r.Header.Set(hostguard.FrontHeader, "client-sent")
		r.Header.Set("Upgrade", "h2c")
		r.Header.Set("Http2-Settings", "AAMAAABkAAQAAP__")
		r.Header.Set("Cf-Visitor", `{"scheme":"https"}`)
		var seen http.Header
		err := f.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
			seen = r.Header.Clone()
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		wantMark := ""
		if c.mark {
			wantMark = hostguard.Secret()
		}
		if seen.Get(hostguard.FrontHeader) != wantMark || seen.Get("Upgrade") != "" || seen.Get("Http2-Settings") != "" {
			t.Errorf("mark=%v: upstream sees %v", c.mark, seen)
		}
		if loopback := c.remote == "127.0.0.1:5000"; (seen.Get("Cf-Visitor") != "") != loopback {
			t.Errorf("peer %s: Cf-Visitor passed = %v", c.remote, seen.Get("Cf-Visitor") != "")
		}
	}
}

func TestHostGuardCaddyfile(t *testing.T) {
	var f PortalFront
	if err := f.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal_front mark_internal")); err != nil || !f.MarkInternal || f.HoldHeaderFlush {
		t.Errorf("portal_front mark_internal: %v %+v", err, f)
	}
	f = PortalFront{}
	if err := f.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal_front hold_header_flush mark_internal")); err != nil || !f.MarkInternal || !f.HoldHeaderFlush {
		t.Errorf("portal_front hold_header_flush mark_internal: %v %+v", err, f)
	}
	var g InternalGuard
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal_internal_guard {\n hosts localhost myhost\n}")); err != nil ||
		strings.Join(g.Hosts, ",") != "localhost,myhost" {
		t.Errorf("portal_internal_guard: %v %+v", err, g)
	}
	for in, want := range map[string]string{
		"portal_front yes":                                      `portal_front: want mark_internal and/or hold_header_flush, got "yes"`,
		"portal_front mark_internal mark_internal":              `portal_front: want mark_internal and/or hold_header_flush, got "mark_internal"`,
		"portal_front {\n mark_internal\n}":                     "portal_front: takes no block",
		"portal_internal_guard x":                               "wrong argument count",
		"portal_internal_guard {\n bogus 1\n}":                  `portal_internal_guard: unrecognized option "bogus"`,
		"portal_internal_guard {\n hosts\n}":                    "wrong argument count",
		"portal_connlimit {\n per_address -1\n}":                "portal_connlimit",
		"portal_connlimit {\n per_address 1 2\n}":               "wrong argument count",
		"portal_connlimit {\n per_address 1\n per_address 2\n}": `duplicate option "per_address"`,
		"portal_connlimit 5":                                    "wrong argument count",
	} {
		var m caddyfile.Unmarshaler = new(ConnLimit)
		switch {
		case strings.HasPrefix(in, "portal_front"):
			m = new(PortalFront)
		case strings.HasPrefix(in, "portal_internal_guard"):
			m = new(InternalGuard)
		}
		refuseCaddyfile(t, m, in, want)
	}
	if err := (&InternalGuard{Config: hostguard.Config{Hosts: []string{"*.evil"}}}).Validate(); err == nil || !strings.Contains(err.Error(), "hosts:") {
		t.Errorf("a host pattern was accepted: %v", err)
	}
}

func TestConnLimitModule(t *testing.T) {
	var c ConnLimit
	parseCaddyfile(t, &c, "portal_connlimit {\n per_address 2\n total 3\n exempt 192.0.2.0/24\n}")
	ctx := caddyContext(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if c.limits.PerAddress != 2 || c.limits.Total != 3 || len(c.limits.Exempt) != 1 {
		t.Fatalf("limits %+v", c.limits)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := c.WrapListener(raw)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		conn, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	// The third is over per_address: it takes the place of the oldest,
	// which never authenticated and is reset.
	_ = conns[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("the oldest connection from a full address was not closed: %v", err)
	}
	var cfg connlimit.Config
	if err := json.Unmarshal(caddyconfig.JSON(c, nil), &cfg); err != nil || cfg.PerAddress != 2 {
		t.Errorf("the module's JSON is not the package's: %v %+v", err, cfg)
	}
}
