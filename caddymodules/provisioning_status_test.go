package caddymodules

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/instanceportal/portal/provstatus"
)

func TestPortalProvisioningServesTheProgress(t *testing.T) {
	dir := t.TempDir()
	h := &PortalProvisioning{StateDir: dir}
	if err := h.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	get := func(method string) (int, map[string]any, http.Header) {
		t.Helper()
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, httptest.NewRequest(method, "/api/provisioning", nil), nextNotCalled); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if method != http.MethodHead {
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("%s: %v", rec.Body, err)
			}
		}
		return rec.Code, body, rec.Header()
	}

	// No run yet: not a 404, a state the page can show.
	code, body, hdr := get(http.MethodGet)
	if code != 200 || body["state"] != "none" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("before any run: %d %v %v", code, body, hdr)
	}
	if d, ok := body["downloads"].([]any); !ok || len(d) != 0 {
		t.Errorf("downloads should be an empty list: %v", body["downloads"])
	}

	now := time.Now().UTC().Truncate(time.Second)
	st := provstatus.Status{State: provstatus.Running, StartedAt: now, UpdatedAt: now,
		Phases:    []provstatus.Phase{{Name: "downloads", State: provstatus.Running, StartedAt: &now}},
		Downloads: []provstatus.Download{{ID: "1", Kind: "url", Source: "https://h/x?…", Dest: "/d/x", State: provstatus.Running, Bytes: 5, Total: 10, RateBps: 2.5, ETASeconds: 2}},
		Command:   &provstatus.Command{Phase: "apt", Line: "apt-get install -y x", Tail: []string{"Unpacking x"}}}
	if err := provstatus.Write(provstatus.Path(dir), st); err != nil {
		t.Fatal(err)
	}
	code, body, _ = get(http.MethodGet)
	dl := body["downloads"].([]any)[0].(map[string]any)
	if code != 200 || body["state"] != "running" || dl["bytes"] != 5.0 || dl["total"] != 10.0 || dl["eta_seconds"] != 2.0 ||
		body["command"].(map[string]any)["tail"].([]any)[0] != "Unpacking x" {
		t.Errorf("running: %d %v", code, body)
	}
	if code, _, _ := get(http.MethodHead); code != 200 {
		t.Errorf("HEAD: %d", code)
	}

	// A broken document is an error that says which file, not a crash.
	if err := os.WriteFile(provstatus.Path(dir), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body, _ = get(http.MethodGet)
	if code != 500 || !strings.Contains(body["error"].(string), provstatus.Path(dir)) {
		t.Errorf("broken: %d %v", code, body)
	}

	// Read-only.
	code, body, hdr = get(http.MethodPost)
	if code != 405 || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", code, body)
	}
}

func TestPortalProvisioningConfig(t *testing.T) {
	h := new(PortalProvisioning)
	_ = h.Provision(caddy.Context{})
	if h.StateDir != "/.provisioner_state" {
		t.Errorf("default state dir %q", h.StateDir)
	}
	if err := (&PortalProvisioning{StateDir: "rel"}).Validate(); err == nil || !strings.Contains(err.Error(), `state_dir "rel"`) {
		t.Errorf("relative state dir: %v", err)
	}
	parseCaddyfile(t, new(PortalProvisioning), "portal_provisioning")
	for in, want := range map[string]string{
		"portal_provisioning extra":                              "wrong argument count",
		"portal_provisioning {\n state_dir\n}":                   "wrong argument count",
		"portal_provisioning {\n state_dir a b\n}":               "wrong argument count",
		"portal_provisioning {\n state_dir /a\n state_dir /b\n}": `portal_provisioning: duplicate option "state_dir"`,
		"portal_provisioning {\n bogus 1\n}":                     `portal_provisioning: unrecognized option "bogus"`,
	} {
		refuseCaddyfile(t, new(PortalProvisioning), in, want)
	}
	h = new(PortalProvisioning)
	if parseCaddyfile(t, h, "portal_provisioning {\n state_dir /data/prov\n}"); h.StateDir != "/data/prov" {
		t.Errorf("state_dir %q", h.StateDir)
	}
}
