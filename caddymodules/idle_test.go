package caddymodules

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/idle"
	"github.com/instanceportal/portal/portalconfig"
)

const idleYAML = "applications:\n" +
	"  Instance Portal:\n    hostname: localhost\n    external_port: 1111\n    internal_port: 11111\n    open_path: /\n    name: Instance Portal\n" +
	"  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n    open_path: /\n    name: Jupyter\n"

// TestAdaptIdle: off, the config has only /api/idle (which says so); on, the
// idle app (settings as placeholders), an idle_activity handler right
// after vastauth on each app server (streams only on the portal's port)
// and /api/idle; a bad setting is an error naming the variable.
func TestAdaptIdle(t *testing.T) {
	adapt := func(env portalconfig.Environ) (string, error) {
		out, _, err := adaptPortal([]byte(idleYAML), "portal.yaml", env, time.Now())
		return string(out), err
	}
	off, err := adapt(portalconfig.Environ{})
	if err != nil || strings.Contains(off, `"idle":`) || strings.Contains(off, "idle_activity") || !strings.Contains(off, `"/api/idle"`) {
		t.Fatalf("off: %v, idle in config:\n%s", err, off)
	}
	on, err := adapt(portalconfig.Environ{idle.StopAfterEnv: "30m", idle.CommandEnv: "secret-command --key abc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"idle":{"stop_after":"{env.PORTAL_IDLE_STOP_AFTER}","gpu_util":"{env.PORTAL_IDLE_GPU_UTIL}","command":"{env.PORTAL_IDLE_COMMAND}"`,
		`"handler":"vastauth"`, `{"handler":"idle_activity","streams_only":true}`, `{"handler":"idle_activity"}`,
		`"/api/idle","/api/idle/postpone"`,
	} {
		if !strings.Contains(on, want) {
			t.Errorf("config lacks %s", want)
		}
	}
	if strings.Contains(on, "secret-command") {
		t.Error("the command's text reached the Caddy JSON")
	}
	if a, b := strings.Index(on, `"handler":"vastauth"`), strings.Index(on, `"handler":"idle_activity"`); a < 0 || b < a {
		t.Errorf("idle_activity must come after vastauth (%d, %d)", a, b)
	}
	if _, err := adapt(portalconfig.Environ{idle.StopAfterEnv: "half an hour"}); err == nil || !strings.Contains(err.Error(), idle.StopAfterEnv) {
		t.Errorf("bad setting: %v", err)
	}
}

// TestIdleActivityCounts: a request counts once; a stream is open while
// the next handler runs.
func TestIdleActivityCounts(t *testing.T) {
	req0, _ := idleCounters.Read()
	var during int64
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		_, during = idleCounters.Read()
		return nil
	})
	r := httptest.NewRequest("GET", "/api/logs/ws", nil)
	r.Header.Set("Upgrade", "websocket")
	if err := (IdleActivity{}).ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	req1, after := idleCounters.Read()
	if req1 != req0+1 || during != 1 || after != 0 {
		t.Errorf("requests %d→%d, streams during %d after %d", req0, req1, during, after)
	}
	if err := (IdleActivity{StreamsOnly: true}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/metrics", nil), next); err != nil {
		t.Fatal(err)
	}
	if req2, _ := idleCounters.Read(); req2 != req1 {
		t.Errorf("streams_only counted a plain request")
	}
}

// BenchmarkIdleActivity is what idle auto-stop adds to a proxied request:
// the handler (two header reads, one atomic add) in front of the next
// handler, against calling the next handler directly ("baseline").
func BenchmarkIdleActivity(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	w := httptest.NewRecorder()
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = next.ServeHTTP(w, r)
		}
	})
	b.Run("idle_activity", func(b *testing.B) {
		h := IdleActivity{}
		b.ReportAllocs()
		for b.Loop() {
			_ = h.ServeHTTP(w, r, next)
		}
	})
}

// TestIdleAPIPostponePolicy: postponing is POST-only, refused cross-site
// (the processes API's policy) and without a JSON content type; off, it
// is a 409 and GET says so.
func TestIdleAPIPostponePolicy(t *testing.T) {
	prev := runningIdle.Load()
	t.Cleanup(func() { runningIdle.Store(prev) })
	a := &IdleApp{cfg: idle.Config{StopAfter: time.Minute, GPUUtil: 5}, now: time.Now, mu: new(sync.Mutex), logger: zap.NewNop()}
	a.machine = idle.New(a.cfg, time.Now().Add(-30*time.Second))
	runningIdle.Store(a)
	call := func(method string, hdr map[string]string) (int, string) {
		r := httptest.NewRequest(method, "/api/idle/postpone", strings.NewReader("{}"))
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		if err := (PortalIdleAPI{}).ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		return w.Code, w.Body.String()
	}
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{"GET", nil, http.StatusMethodNotAllowed},
		{"POST", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"POST", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"POST", map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"POST", jsonCT, http.StatusOK},
	} {
		if code, body := call(tc.method, tc.hdr); code != tc.want {
			t.Errorf("%s %v: %d %s, want %d", tc.method, tc.hdr, code, body, tc.want)
		}
	}
	if st := a.status(); st.IdleSeconds > 5 {
		t.Errorf("postpone did not restart the window: %+v", st)
	}
	runningIdle.Store(nil)
	if code, _ := call("POST", jsonCT); code != http.StatusConflict {
		t.Errorf("off: %d, want 409", code)
	}
	w := httptest.NewRecorder()
	_ = (PortalIdleAPI{}).ServeHTTP(w, httptest.NewRequest("GET", "/api/idle", nil), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"enabled":false`) {
		t.Errorf("GET off: %d %s", w.Code, w.Body.String())
	}
}
