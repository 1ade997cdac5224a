package caddymodules

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// TestMCPServerGoClient runs the adapted portal in-process beside real
// supervisord and drives /mcp with the Go SDK's client: the tools and
// resources are listed, each read-only tool answers, a protected program
// is refused and an unprotected one stopped (the processes API's code
// path), a log is read and searched, and a cross-site Origin is refused.
func TestMCPServerGoClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs supervisord")
	}
	sock := supervisordtest.Start(t, handlerPrograms)
	dir := t.TempDir()
	logs := filepath.Join(dir, "log", "portal")
	agents := filepath.Join(dir, "agents")
	for _, d := range []string{logs, agents, filepath.Join(dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(logs, "web.log"), []byte("booting\n\x1b[31mERROR disk full\x1b[0m\nready\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agents, "base.md"), []byte("# Agent guide\nUse the tools.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AGENTS_DIR", agents)
	t.Setenv("PROVISIONER_STATE_DIR", filepath.Join(dir, "prov"))
	internal, external := testwait.FreePort(t), testwait.FreePort(t)
	env := portalconfig.Environ{
		"PORTAL_LOG_DIR": logs, "PORTAL_STATE_DIR": filepath.Join(dir, "state"), "SUPERVISOR_SOCKET": sock,
		"PORTAL_ADMIN_LISTEN": "off", "PORTAL_DEFAULT_TUNNELS": "false", "ENABLE_AUTH": "false",
		"INSTANCE_CERT": filepath.Join(dir, "c.crt"), "INSTANCE_KEY": filepath.Join(dir, "c.key"),
		"CLOUDFLARED_BIN": filepath.Join(dir, "no-cloudflared"), "PROVISIONER_STATE_DIR": filepath.Join(dir, "prov"),
	}
	yaml := fmt.Sprintf("applications:\n  Instance Portal:\n    hostname: localhost\n    external_port: %d\n    internal_port: %d\n    open_path: /\n    name: Instance Portal\n", external, internal)
	cfg, warns, err := adaptPortal([]byte(yaml), "portal.yaml", env, time.Now())
	if err != nil {
		t.Fatal(err, warns)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/mcp", internal)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-test", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	want := []string{"get_capabilities", "list_services", "read_logs", "list_processes", "control_process", "tunnels",
		"get_metrics", "start_provisioning", "get_provisioning", "get_boot_status"}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	call := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		return strings.Join(text, "\n"), res.IsError
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"get_capabilities", nil, `"services"`},
		{"list_services", nil, `"Instance Portal"`},
		{"list_processes", nil, `"web"`},
		{"tunnels", map[string]any{"action": "list"}, `"tunnels"`},
		{"get_metrics", nil, `"system"`},
		{"get_provisioning", nil, `"none"`},
		{"get_boot_status", nil, `"provisioning"`},
		{"read_logs", map[string]any{"file": "web.log", "search": "error"}, `"ERROR disk full"`},
		{"read_logs", map[string]any{"lines": 1}, `"ready"`},
	} {
		out, isErr := call(c.tool, c.args)
		if isErr || !strings.Contains(out, c.want) {
			t.Errorf("%s %v: error %v, want %s in:\n%.600s", c.tool, c.args, isErr, c.want, out)
		}
	}
	if out, _ := call("read_logs", map[string]any{"lines": 1}); strings.Contains(out, "booting") || strings.Contains(out, "\x1b") {
		t.Errorf("read_logs lines=1 gave more than the last line, or escapes: %s", out)
	}
	if out, isErr := call("read_logs", map[string]any{"file": "../portal.yaml"}); !isErr || !strings.Contains(out, "bare name") {
		t.Errorf("read_logs outside the directory: error %v: %s", isErr, out)
	}
	if out, isErr := call("control_process", map[string]any{"name": "caddy", "action": "stop"}); !isErr || !strings.Contains(out, "protected") {
		t.Errorf("stopping caddy: error %v: %s", isErr, out)
	}
	if out, isErr := call("control_process", map[string]any{"name": "web", "action": "stop"}); isErr || !strings.Contains(out, `"STOPPED"`) {
		t.Errorf("stopping web: error %v: %s", isErr, out)
	}
	if out, isErr := call("start_provisioning", map[string]any{}); !isErr {
		t.Errorf("an empty provisioning request was accepted: %s", out)
	}
	res, err := session.ListResources(ctx, nil)
	if err != nil || len(res.Resources) != 2 {
		t.Fatalf("resources: %v %v", res, err)
	}
	guide, err := session.ReadResource(ctx, &mcp.ReadResourceParams{URI: mcpGuideURI})
	if err != nil || len(guide.Contents) != 1 || !strings.Contains(guide.Contents[0].Text, "# Agent guide") {
		t.Errorf("guide resource: %v %v", guide, err)
	}
	manifest, err := session.ReadResource(ctx, &mcp.ReadResourceParams{URI: mcpManifestURI})
	if err != nil || len(manifest.Contents) != 1 || !json.Valid([]byte(manifest.Contents[0].Text)) {
		t.Errorf("manifest resource: %v %v", manifest, err)
	}

	// A page of another site cannot drive the server from a browser.
	if a := roundTrip(t, http.MethodPost, endpoint, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		"Content-Type", "application/json", "Accept", "application/json, text/event-stream", "Origin", "http://evil.example"); a.status != http.StatusForbidden {
		t.Errorf("cross-site Origin: %d, want 403", a.status)
	}
}

func TestRedactArguments(t *testing.T) {
	for in, want := range map[string]string{
		``:                                       `{}`,
		`{"name":"web","action":"stop"}`:         `{"action":"stop","name":"web"}`,
		`{"manifest_url":"https://u:p@h/x?t=1"}`: `{"manifest_url":"https://…@h/x?…"}`,
		`{"inline_yaml":"HF_TOKEN: abc"}`:        `{"inline_yaml":"[redacted]"}`,
		`{"api_key":"abc","pip":["torch"]}`:      `{"api_key":"[redacted]","pip":["torch"]}`,
		`not json`:                               `(not JSON)`,
	} {
		if got := redactArguments(json.RawMessage(in)); got != want {
			t.Errorf("redactArguments(%s) = %s, want %s", in, got, want)
		}
	}
}
