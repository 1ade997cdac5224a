package caddymodules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/instanceportal/portal/apidoc"
)

// Every path a table entry serves is documented by one of its operations,
// and every operation is served by one of its paths: the table cannot hold
// an undocumented route. TestOpenAPIMatchesServedRoutes checks the same
// against the running binary.
func TestPortalRoutesDocumented(t *testing.T) {
	plan := testPlan(t, "localhost:1111:11111:/:Instance Portal", nil)
	for _, r := range portalRoutes() {
		if len(r.Paths) == 0 || len(r.Ops) == 0 || r.Handlers == nil {
			t.Errorf("route %v: want paths, handlers and operations", r.Paths)
			continue
		}
		for _, p := range r.Paths {
			covered := false
			for _, op := range r.Ops {
				covered = covered || apidoc.Covers(p, op.Path)
			}
			if !covered {
				t.Errorf("path %s is served but no operation of its route documents it", p)
			}
		}
		for _, op := range r.Ops {
			served := false
			for _, p := range r.Paths {
				served = served || apidoc.Covers(p, op.Path)
			}
			if !served {
				t.Errorf("%s %s is documented but its route does not match it (paths %v)", op.Method, op.Path, r.Paths)
			}
		}
		var warns []caddyconfig.Warning
		route := r.caddyRoute(plan, &warns)
		if len(warns) > 0 || !route.Terminal || len(route.HandlersRaw) == 0 {
			t.Errorf("route %v: warnings %v, terminal %v, %d handlers", r.Paths, warns, route.Terminal, len(route.HandlersRaw))
		}
	}
	doc, err := openAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(doc, &parsed); err != nil || parsed.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v, openapi %q", err, parsed.OpenAPI)
	}
	for _, op := range portalAPIOps() {
		if parsed.Paths[op.Path][strings.ToLower(op.Method)] == nil {
			t.Errorf("%s %s missing from the document", op.Method, op.Path)
		}
	}
}
