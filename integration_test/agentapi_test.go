package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/instanceportal/portal/apidoc"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// npmPackages are the clients nobody here wrote: the official MCP
// TypeScript SDK and a maintained OpenAPI 3.1 validator. Versions pinned.
var npmPackages = []string{"@modelcontextprotocol/sdk@1.32.2", "@seriousme/openapi-schema-validator@2.11.0"}

var (
	npmOnce sync.Once
	npmDir  string
	npmErr  error
)

// nodeModules installs npmPackages once per machine (a directory under the
// temp dir, reused while the versions stay) and returns the directory that
// holds node_modules. Node and npm are required.
func nodeModules(t *testing.T) string {
	t.Helper()
	skipShort(t)
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed for the third-party clients (scripts/install-test-deps.sh installs it): %v", bin, err)
		}
	}
	npmOnce.Do(func() {
		npmDir = filepath.Join(os.TempDir(), "instanceportal-npm-"+strings.NewReplacer("@", "", "/", "-").Replace(strings.Join(npmPackages, "_")))
		if _, err := os.Stat(filepath.Join(npmDir, "node_modules", ".package-lock.json")); err == nil {
			return
		}
		if npmErr = os.MkdirAll(npmDir, 0o755); npmErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", append([]string{"install", "--no-audit", "--no-fund", "--prefix", npmDir}, npmPackages...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = fmt.Errorf("npm install %v: %v\n%s", npmPackages, err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return npmDir
}

// runNode runs script (ES module) with node_modules reachable, and returns
// its stdout.
func runNode(t *testing.T, script string, env ...string) string {
	t.Helper()
	dir := nodeModules(t)
	f := filepath.Join(dir, fmt.Sprintf("script-%d.mjs", time.Now().UnixNano()))
	mustWrite(t, f, script, 0o644)
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", f)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	return string(out)
}

// agentPortal runs the binary beside real supervisord (web: a Python web
// server that is an app; worker: protected by PORTAL_UNSTOPPABLE) and the
// stand-in cloudflared, with a token.
type agentPortal struct {
	*Portal
	ext, internal, webExt int
	secret                string
	api                   *apiClient // the external port, with the token, as a script calls it
}

func startAgentPortal(t *testing.T) *agentPortal {
	t.Helper()
	skipShort(t)
	webPort := freePort(t)
	sock := supervisordtest.Start(t, supervisordtest.HTTPServer("web", webPort)+supervisordtest.Sleeper("worker"))
	a := &agentPortal{ext: freePort(t), internal: freePort(t), webExt: freePort(t), secret: "agent-api-test-secret"}
	a.Portal = StartPortal(t, portalYAML(
		appYAML("Instance Portal", a.ext, a.internal, "/"),
		appYAML("Web", a.webExt, webPort, "/"),
	), PortalOptions{Env: map[string]string{
		"WEB_PASSWORD":                            a.secret,
		"SUPERVISOR_SOCKET":                       sock,
		"PORTAL_UNSTOPPABLE":                      "worker",
		"PUBLIC_IPADDR":                           "203.0.113.7",
		fmt.Sprintf("VAST_TCP_PORT_%d", a.webExt): "40123",
		// With any port mapped, only mapped ports are served.
		fmt.Sprintf("VAST_TCP_PORT_%d", a.ext): "40111",
		"CLOUDFLARED_BIN":                      buildFakeCloudflared(t),
		"FAKE_CLOUDFLARED_STATE_DIR":           t.TempDir(),
		"PROVISIONER_STATE_DIR":                t.TempDir(),
	}})
	fastTunnels(t, a.Portal)
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", a.internal), 200)
	a.api = &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", a.ext), token: a.secret}
	waitFor(t, 15*time.Second, "the external port", func() bool {
		r, err := a.api.send(http.MethodGet, "/health", "", nil)
		return err == nil && r.Code == 200
	})
	return a
}

// fields checks that v (decoded JSON) has each dotted path ("ram.total",
// "0.name": index 0 of a list, "*.name": every value of an object).
func fields(t *testing.T, where string, v any, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if !hasPath(v, strings.Split(p, ".")) {
			b, _ := json.Marshal(v)
			t.Errorf("%s: no %s in %.500s", where, p, b)
		}
	}
}

func hasPath(v any, parts []string) bool {
	if len(parts) == 0 {
		return true
	}
	switch v := v.(type) {
	case map[string]any:
		if parts[0] == "*" {
			if len(v) == 0 {
				return false
			}
			for _, e := range v {
				if !hasPath(e, parts[1:]) {
					return false
				}
			}
			return true
		}
		e, ok := v[parts[0]]
		return ok && hasPath(e, parts[1:])
	case []any:
		var i int
		if _, err := fmt.Sscanf(parts[0], "%d", &i); err != nil || i >= len(v) {
			return false
		}
		return hasPath(v[i], parts[1:])
	}
	return false
}

// TestReferencePaths drives the reference image's API paths through the
// external port with the token, as its guide and users' scripts do: each
// answers with the reference's fields, served by our services (real
// supervisord, the stand-in cloudflared), with our protections.
func TestReferencePaths(t *testing.T) {
	a := startAgentPortal(t)
	target := fmt.Sprintf("http://localhost:%d", a.webExt)
	post := map[string]string{} // as curl: no Sec-Fetch-Site, no Origin
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		status       int
		fields       []string
		text         string // for a non-JSON answer: a prefix
	}{
		{"GET", "/get-applications", nil, 200, []string{"Web.name", "Web.hostname", "Web.external_port", "Web.internal_port", "Web.open_path", "Web.target_url", "Web.mapped_port"}, ""},
		{"GET", fmt.Sprintf("/get-direct-url/%d", a.webExt), nil, 200, []string{"result"}, ""},
		{"GET", "/get-direct-url/1", nil, 404, []string{"detail"}, ""},
		{"GET", "/get-named-tunnels", nil, 404, []string{"detail"}, ""},
		{"POST", "/start-quick-tunnel/" + target, post, 200, []string{"tunnel_url"}, ""},
		{"GET", "/get-all-quick-tunnels", nil, 200, []string{"0.targetUrl", "0.tunnelUrl"}, ""},
		{"GET", "/get-existing-quick-tunnel/" + target, nil, 200, nil, "https://"},
		{"POST", "/refresh-quick-tunnel/" + target, post, 200, []string{"tunnel_url"}, ""},
		{"POST", "/stop-quick-tunnel/" + target, post, 200, []string{"message"}, ""},
		{"GET", "/get-existing-quick-tunnel/" + target, nil, 404, []string{"detail"}, ""},
		{"POST", "/start-quick-tunnel/" + target, map[string]string{"Origin": "https://evil.example"}, 403, []string{"detail"}, ""},
		{"GET", "/supervisor/processes", nil, 200, []string{"0.name", "0.group", "0.state", "0.description", "0.pid", "0.start", "0.now", "0.unstoppable"}, ""},
		{"POST", "/supervisor/process/worker/stop", post, 403, []string{"detail"}, ""},
		{"POST", "/supervisor/process/web/stop", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, []string{"detail"}, ""},
		{"POST", "/supervisor/process/web/restart", post, 200, []string{"status", "name", "action"}, ""},
		{"POST", "/supervisor/process/nosuch/start", post, 404, []string{"detail"}, ""},
		{"GET", "/supervisor/process/web/start", nil, 405, []string{"error"}, ""},
		{"GET", "/system-metrics", nil, 200, []string{"ram.total", "ram.used", "ram.percent", "disk.total", "disk.used", "disk.percent", "cpu.percent", "cpu.count", "gpu.count", "gpu.memory_unit", "environment"}, ""},
		{"GET", "/download-logs", nil, 200, nil, "\x1f\x8b"},
	} {
		r := a.api.do(c.method, c.path, "", c.hdr)
		code, ct, body := r.Code, r.Header.Get("Content-Type"), r.Body
		where := c.method + " " + c.path
		if code != c.status {
			t.Errorf("%s: %d, want %d: %.300s", where, code, c.status, body)
			continue
		}
		if c.text != "" {
			if !strings.HasPrefix(body, c.text) {
				t.Errorf("%s: %q (%s), want it to start with %q", where, body, ct, c.text)
			}
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Errorf("%s: not JSON (%s): %.300s", where, ct, body)
			continue
		}
		fields(t, where, v, c.fields...)
		if strings.Contains(body, a.secret) {
			t.Errorf("%s: the token is in the answer", where)
		}
	}
	// The direct URL is the public address and mapped port.
	if _, body := a.api.call("GET", fmt.Sprintf("/get-direct-url/%d", a.webExt), "", nil); !strings.Contains(body, "http://203.0.113.7:40123") {
		t.Errorf("/get-direct-url: %s", body)
	}
	// The protected program kept running; /ws-logs is a WebSocket.
	if _, body := a.api.call("GET", "/supervisor/processes", "", nil); !strings.Contains(body, `"name":"worker"`) || !strings.Contains(body, `"unstoppable":true`) {
		t.Errorf("/supervisor/processes: %s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws-logs", a.ext), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + a.secret}},
	})
	if err != nil {
		t.Fatalf("/ws-logs: %v", err)
	}
	defer conn.CloseNow()
	if _, msg, err := conn.Read(ctx); err != nil || !strings.Contains(string(msg), `"type"`) {
		t.Errorf("/ws-logs first message: %v %s", err, msg)
	}
}

// TestOpenAPIMatchesServedRoutes reads /openapi.json from the running
// binary, has a maintained OpenAPI 3.1 validator (an npm package, run with
// node) accept it, and compares it with the routes the running server
// really has (the admin API's config): every path pattern served is
// documented, and every documented operation is answered by its handler,
// not by the dashboard's file server.
func TestOpenAPIMatchesServedRoutes(t *testing.T) {
	a := startAgentPortal(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", a.internal)
	internal := &apiClient{t: t, base: base} // no token: the internal port is behind no login
	code, docText := internal.call("GET", "/openapi.json", "", nil)
	if code != 200 {
		t.Fatalf("/openapi.json: %d %s", code, docText)
	}
	docBytes := []byte(docText)
	docFile := filepath.Join(t.TempDir(), "openapi.json")
	mustWrite(t, docFile, docText, 0o644)
	out := runNode(t, `
import { Validator } from "@seriousme/openapi-schema-validator";
const v = new Validator();
const res = await v.validate(process.env.DOC);
console.log(JSON.stringify({ version: v.version, valid: res.valid, errors: res.errors }));
`, "DOC="+docFile)
	var verdict struct {
		Version string `json:"version"`
		Valid   bool   `json:"valid"`
		Errors  any    `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &verdict); err != nil {
		t.Fatalf("validator output: %v: %s", err, out)
	}
	if !verdict.Valid || verdict.Version != "3.1" {
		t.Errorf("the validator refuses the document (version %q): %v", verdict.Version, verdict.Errors)
	}

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(docBytes, &doc); err != nil {
		t.Fatal(err)
	}
	// Served → documented: every path matcher of the portal server.
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Match []struct {
							Path []string `json:"path"`
						} `json:"match"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(a.AdminConfig()), &cfg); err != nil {
		t.Fatal(err)
	}
	served := 0
	for _, r := range cfg.Apps.HTTP.Servers["portal"].Routes {
		for _, m := range r.Match {
			for _, pattern := range m.Path {
				served++
				documented := false
				for p := range doc.Paths {
					documented = documented || apidoc.Covers(pattern, p)
				}
				if !documented {
					t.Errorf("the portal serves %s but /openapi.json does not document it", pattern)
				}
			}
		}
	}
	if served < 20 {
		t.Errorf("only %d path patterns found in the running config", served)
	}
	// Documented → served: each operation reaches a handler.
	// Only the status and type are read: some answers are streams.
	client := &http.Client{Timeout: 60 * time.Second}
	samples := map[string]string{"id": "nosuch", "name": "nosuch", "port": "1", "target": "nosuch"}
	ops := 0
	for p, methods := range doc.Paths {
		for method := range methods {
			ops++
			method = strings.ToUpper(method)
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("{}")
			}
			req, _ := http.NewRequest(method, base+apidoc.Sample(p, samples), body)
			if method == http.MethodPost {
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("%s %s: %v", method, p, err)
				continue
			}
			resp.Body.Close()
			ct := resp.Header.Get("Content-Type")
			if (resp.StatusCode == 404 || resp.StatusCode == 405) && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s %s is documented but no handler answers it (%d, %q: the file server's answer)", method, p, resp.StatusCode, ct)
			}
		}
	}
	if ops < 40 {
		t.Errorf("only %d operations documented", ops)
	}
}

// TestMCPTypeScriptClient connects the official MCP TypeScript SDK to /mcp
// through the external port with the token: it lists the tools, calls each
// one, is refused a protected program, and is refused without the token.
func TestMCPTypeScriptClient(t *testing.T) {
	a := startAgentPortal(t)
	// start_provisioning runs for real: a download from a local server,
	// which ends on its own (a pip install would wait on a network that
	// is not there).
	hub := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "weights\n")
	}))
	dest := filepath.Join(t.TempDir(), "model.bin")
	download := fmt.Sprintf("http://127.0.0.1:%d/model.bin|%s", hub.Port, dest)
	out := runNode(t, `
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
const url = new URL(process.env.MCP_URL);
const result = {};
const connect = async (headers) => {
  const client = new Client({ name: "ts-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
  return client;
};
try {
  await connect({});
  result.without_token = "connected";
} catch (e) {
  result.without_token = String(e) + " (status " + e.code + ")";
}
const client = await connect({ Authorization: "Bearer " + process.env.TOKEN });
result.tools = (await client.listTools()).tools.map((t) => t.name).sort();
const args = {
  read_logs: { lines: 5 },
  control_process: { name: "web", action: "restart" },
  tunnels: { action: "list" },
  start_provisioning: { downloads: [process.env.DOWNLOAD] },
};
result.calls = {};
for (const name of result.tools) {
  const r = await client.callTool({ name, arguments: args[name] ?? {} });
  result.calls[name] = { isError: !!r.isError, text: r.content.map((c) => c.text).join("\n").slice(0, 2000) };
}
const refused = await client.callTool({ name: "control_process", arguments: { name: "worker", action: "stop" } });
result.protected = { isError: !!refused.isError, text: refused.content.map((c) => c.text).join("\n") };
result.resources = (await client.listResources()).resources.map((r) => r.uri).sort();
await client.close();
console.log(JSON.stringify(result));
`, fmt.Sprintf("MCP_URL=http://127.0.0.1:%d/mcp", a.ext), "TOKEN="+a.secret, "DOWNLOAD="+download)
	var res struct {
		WithoutToken string   `json:"without_token"`
		Tools        []string `json:"tools"`
		Calls        map[string]struct {
			IsError bool   `json:"isError"`
			Text    string `json:"text"`
		} `json:"calls"`
		Protected struct {
			IsError bool   `json:"isError"`
			Text    string `json:"text"`
		} `json:"protected"`
		Resources []string `json:"resources"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The run start_provisioning began writes into this test's temporary
	// directories: it must do its work and its process end before they
	// are removed.
	var started struct{ Manifest string }
	json.Unmarshal([]byte(res.Calls["start_provisioning"].Text), &started)
	if started.Manifest == "" {
		t.Fatalf("start_provisioning named no manifest: %s", res.Calls["start_provisioning"].Text)
	}
	waitFor(t, 60*time.Second, "the provisioning run to download the file and end", func() bool {
		b, err := os.ReadFile(dest)
		_, body := a.api.call("GET", "/api/provisioning", "", nil)
		return err == nil && string(b) == "weights\n" && strings.Contains(body, `"state":"done"`) &&
			len(processesWith(func(argv []string) bool { return slices.Contains(argv, started.Manifest) })) == 0
	})
	if res.WithoutToken == "connected" || !strings.Contains(res.WithoutToken, "(status 401)") {
		t.Errorf("without the token: %s, want a 401 refusal", res.WithoutToken)
	}
	want := []string{"control_process", "get_boot_status", "get_capabilities", "get_metrics", "get_provisioning", "list_processes", "list_services", "read_logs", "start_provisioning", "tunnels"}
	if strings.Join(res.Tools, ",") != strings.Join(want, ",") {
		t.Errorf("tools %v, want %v", res.Tools, want)
	}
	for name, c := range res.Calls {
		if c.IsError {
			t.Errorf("%s failed: %s", name, c.Text)
		}
	}
	for name, want := range map[string]string{"list_services": `"Web"`, "list_processes": `"worker"`, "control_process": `"RUNNING"`, "get_metrics": `"system"`, "start_provisioning": `"started"`} {
		if !strings.Contains(res.Calls[name].Text, want) {
			t.Errorf("%s: no %s in %s", name, want, res.Calls[name].Text)
		}
	}
	if !res.Protected.IsError || !strings.Contains(res.Protected.Text, "protected") {
		t.Errorf("stopping the protected worker: %+v", res.Protected)
	}
	if strings.Join(res.Resources, ",") != "vast://agents/base.md,vast://capabilities" {
		t.Errorf("resources %v", res.Resources)
	}
	if strings.Contains(out, a.secret) {
		t.Errorf("the token appears in an MCP answer")
	}
	if logs := a.Logs(); !strings.Contains(logs, `"tool":"control_process"`) || strings.Contains(logs, a.secret) {
		t.Errorf("tool calls must be logged, without the token")
	}
}
