package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// openAIStandIn is an OpenAI-compatible server's model list, as vLLM,
// llama.cpp or Ollama answer GET /v1/models: a Python program run by
// supervisord, on 127.0.0.1 only.
const openAIStandIn = `import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [{"id": "stand-in-7b", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// TestCapabilities runs the binary beside real supervisord with a web app
// and an OpenAI-style server, a fragment file and secrets in the
// environment, and reads the manifest through the portal's external port:
// its services, states and URLs are /api/apps's, the fragment is merged,
// the OpenAI server is found, and no secret appears in any of its forms
// (the routes, `caddy portal capabilities`, the boot snapshot).
func TestCapabilities(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "openai.py")
	mustWrite(t, script, openAIStandIn, 0o644)
	webPort, llmPort := freePort(t), freePort(t)
	sock := supervisordtest.Start(t, supervisordtest.HTTPServer("web", webPort)+fmt.Sprintf(`
[program:llm]
command=python3 %s %d
startsecs=0
stopwaitsecs=5
`, script, llmPort))

	frags := filepath.Join(dir, "capabilities.d")
	if err := os.MkdirAll(frags, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(frags, "30-test.yaml"), []byte(
		"image:\n  name: Test derivative\ntools:\n  - name: fragment-tool\n    description: from 30-test.yaml\n"+
			"python_environments:\n  - name: main\n    path: /venv/main\n    packages_of_interest: [torch]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"WEB_PASSWORD": "capabilities-pw-8d1f3", "OPEN_BUTTON_TOKEN": "capabilities-tok-77a2c", "HF_TOKEN": "hf_capabilitiesSecret91",
	}
	portalExt, portalInt, webExt, llmExt := freePort(t), freePort(t), freePort(t), freePort(t)
	stateDir := filepath.Join(dir, "provisioner")
	lock := filepath.Join(dir, "provisioning.lock")
	env := map[string]string{
		"SUPERVISOR_SOCKET":          sock,
		"CAPABILITIES_FRAGMENTS_DIR": frags,
		"AGENTS_DIR":                 filepath.Join(dir, "agents"),
		"PROVISIONER_STATE_DIR":      stateDir,
		"PROVISIONING_LOCK":          lock,
		"PROVISIONING_DONE":          filepath.Join(dir, "done"),
		"PROVISIONING_FAILED":        filepath.Join(dir, "failed"),
		"PUBLIC_IPADDR":              "203.0.113.7",
		// Every external port published (the portal serves only those
		// once any is); the web app's mapping is checked below.
		"VAST_TCP_PORT_" + strconv.Itoa(webExt):    "41080",
		"VAST_TCP_PORT_" + strconv.Itoa(portalExt): "41111",
		"VAST_TCP_PORT_" + strconv.Itoa(llmExt):    "41000",
		"VAST_CONTAINERLABEL":                      "C.4242",
	}
	for k, v := range secrets {
		env[k] = v
	}
	portal := StartPortal(t, portalYAML(
		appYAML("Instance Portal", portalExt, portalInt, "/"),
		appYAML("Web", webExt, webPort, "/files"),
		appYAML("LLM", llmExt, llmPort, "/"),
	), PortalOptions{Env: env})

	base := fmt.Sprintf("http://127.0.0.1:%d", portalExt)
	api := &apiClient{t: t, base: base, token: secrets["WEB_PASSWORD"], browser: true}
	noSecret := func(what, text string) {
		t.Helper()
		for k, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s holds %s's value", what, k)
			}
		}
	}

	// Both programs up and their ports answering before the first
	// manifest: the probe's answer is cached.
	waitFor(t, 20*time.Second, "web and llm listening", func() bool {
		for _, p := range []int{webPort, llmPort} {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 200*time.Millisecond)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})

	type service struct {
		Name              string  `json:"name"`
		InternalPort      int     `json:"internal_port"`
		ExternalPort      int     `json:"external_port"`
		OpenPath          string  `json:"open_path"`
		MappedPort        string  `json:"mapped_port"`
		InternalURL       string  `json:"internal_url"`
		DirectURL         *string `json:"direct_url"`
		SupervisorProcess *string `json:"supervisor_process"`
		State             string  `json:"state"`
		PortalState       string  `json:"portal_state"`
		OpenAIV1Base      *string `json:"openai_v1_base"`
	}
	type manifest struct {
		Image     map[string]any   `json:"image"`
		Tools     []map[string]any `json:"tools"`
		Services  []service        `json:"services"`
		Envs      []map[string]any `json:"python_environments"`
		Creds     map[string]any   `json:"credentials"`
		Auth      map[string]any   `json:"auth"`
		Hardware  map[string]any   `json:"hardware"`
		Endpoints []struct {
			Service         string   `json:"service"`
			InternalBaseURL string   `json:"internal_base_url"`
			Models          []string `json:"models"`
			Source          string   `json:"source"`
		} `json:"endpoints_openai"`
		Warnings []string `json:"warnings"`
	}
	type apiApp struct {
		Name         string `json:"name"`
		ExternalPort int    `json:"external_port"`
		InternalPort int    `json:"internal_port"`
		OpenPath     string `json:"open_path"`
		DirectURL    string `json:"direct_url"`
		State        string `json:"state"`
		Program      string `json:"program"`
		ProgramState string `json:"program_state"`
	}
	var m manifest
	var raw string
	waitFor(t, 20*time.Second, "both programs RUNNING in the manifest", func() bool {
		m = manifest{}
		raw = api.getJSON("/capabilities", &m)
		running := 0
		for _, s := range m.Services {
			if s.State == "RUNNING" && s.PortalState == "running" {
				running++
			}
		}
		return running == 2 // the portal's own entry has no program here (no caddy under supervisord)
	})
	noSecret("/capabilities", raw)

	// Services, states and URLs as /api/apps has them.
	var apps []apiApp
	body := api.getJSON("/api/apps", &apps)
	if len(apps) != len(m.Services) {
		t.Fatalf("%d apps, %d services:\n%s\n%s", len(apps), len(m.Services), body, raw)
	}
	for i, a := range apps {
		s := m.Services[i]
		direct := ""
		if s.DirectURL != nil {
			direct = *s.DirectURL
		}
		proc := ""
		if s.SupervisorProcess != nil {
			proc = *s.SupervisorProcess
		}
		wantState := a.ProgramState
		if wantState == "" {
			wantState = "unknown" // the reference's word for no program
		}
		if s.Name != a.Name || s.ExternalPort != a.ExternalPort || s.InternalPort != a.InternalPort || s.OpenPath != a.OpenPath ||
			direct != a.DirectURL || proc != a.Program || s.State != wantState || s.PortalState != a.State ||
			s.InternalURL != "http://localhost:"+strconv.Itoa(a.InternalPort) {
			t.Errorf("service %d:\n%+v\n/api/apps:\n%+v", i, s, a)
		}
	}
	web := m.Services[1]
	if web.DirectURL == nil || *web.DirectURL != "http://203.0.113.7:41080/files" || web.MappedPort != "41080" || *web.SupervisorProcess != "web" {
		t.Errorf("web service %+v", web)
	}

	// The fragment, merged.
	if m.Image["name"] != "Test derivative" || len(m.Tools) != 1 || m.Tools[0]["name"] != "fragment-tool" || len(m.Envs) != 1 || len(m.Warnings) != 0 {
		t.Errorf("fragment not merged: image %v tools %v envs %v warnings %v", m.Image, m.Tools, m.Envs, m.Warnings)
	}
	// The OpenAI stand-in, found by the probe; the web app is not one.
	if len(m.Endpoints) != 1 || m.Endpoints[0].Service != "LLM" || m.Endpoints[0].Source != "probe" ||
		m.Endpoints[0].InternalBaseURL != "http://localhost:"+strconv.Itoa(llmPort)+"/v1" ||
		len(m.Endpoints[0].Models) != 1 || m.Endpoints[0].Models[0] != "stand-in-7b" {
		t.Errorf("endpoints %+v", m.Endpoints)
	}
	if m.Creds["huggingface"] != true || m.Auth["cookie_name"] != "C.4242_auth_token" {
		t.Errorf("credentials %v auth %v", m.Creds, m.Auth)
	}

	// The other forms: parts, the well-known path, metrics and packages.
	for _, path := range []string{"/capabilities/services", "/capabilities/endpoints", "/.well-known/vast-capabilities", "/capabilities?include=metrics,packages"} {
		code, body := api.call("GET", path, "", nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		noSecret(path, body)
		switch path {
		case "/capabilities/services":
			if !strings.Contains(body, `"supervisor_process":"llm"`) || strings.HasPrefix(body, "{") {
				t.Errorf("%s: %s", path, body)
			}
		case "/capabilities/endpoints":
			if !strings.Contains(body, `"models":["stand-in-7b"]`) {
				t.Errorf("%s: %s", path, body)
			}
		case "/capabilities?include=metrics,packages":
			var withMetrics manifest
			json.Unmarshal([]byte(body), &withMetrics)
			if withMetrics.Hardware["disk"] == nil || withMetrics.Hardware["gpu"].(map[string]any)["memory_unit"] != "MB" {
				t.Errorf("include=metrics: hardware %v", withMetrics.Hardware)
			}
		}
	}
	if code, _ := api.call("GET", "/capabilities/nosuch", "", nil); code != 404 {
		t.Errorf("unknown part: %d", code)
	}
	if code, _ := (&apiClient{t: t, base: base}).call("GET", "/capabilities", "", nil); code != http.StatusUnauthorized {
		t.Errorf("unauthenticated /capabilities: %d", code)
	}

	// POST /capabilities/provision: POST only, refused cross-site, not
	// JSON, malformed, or while the boot provisions; accepted otherwise,
	// with the manifest written under the provisioner's state dir.
	if code, body := api.call("GET", "/capabilities/provision", "", nil); code != 405 {
		t.Errorf("GET provision: %d %s", code, body)
	}
	pip := `{"pip": ["requests==2.32.3"]}`
	for name, h := range map[string]map[string]string{
		"Sec-Fetch-Site": {"Sec-Fetch-Site": "cross-site"},
		"Origin":         {"Origin": "http://evil.example", "Sec-Fetch-Site": ""},
	} {
		if code, body := api.call("POST", "/capabilities/provision", pip, h); code != 403 || !strings.Contains(body, "cross-site request refused") {
			t.Errorf("cross-site (%s) provision: %d %s", name, code, body)
		}
	}
	if code, _ := api.call("POST", "/capabilities/provision", pip, map[string]string{"Content-Type": "text/plain"}); code != 415 {
		t.Errorf("text/plain provision: %d", code)
	}
	if code, body := api.call("POST", "/capabilities/provision", `{"pip": ["--index-url=http://x"]}`, nil); code != 400 || !strings.Contains(body, "pip[0]") {
		t.Errorf("bad provision: %d %s", code, body)
	}
	mustWrite(t, lock, "", 0o644)
	if code, body := api.call("POST", "/capabilities/provision", pip, nil); code != 409 || !strings.Contains(body, "/api/provisioning") {
		t.Errorf("provision during the boot's: %d %s", code, body)
	}
	os.Remove(lock)
	if _, err := os.Stat(filepath.Join(stateDir, "requests")); err == nil {
		t.Fatal("a refused request wrote a manifest")
	}
	// Accepted: a download from a local server, which the provisioner
	// (this binary's `portal provision`) really fetches.
	const payload = "weights from the local hub\n"
	hub := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, payload)
	}))
	dest := filepath.Join(dir, "models", "model.bin")
	req := fmt.Sprintf(`{"downloads": ["http://127.0.0.1:%d/model.bin|%s"]}`, hub.Port, dest)
	code, body := api.call("POST", "/capabilities/provision", req, nil)
	if code != 202 || !strings.Contains(body, `"progress_url":"/api/provisioning"`) {
		t.Fatalf("provision: %d %s", code, body)
	}
	var started struct{ Manifest string }
	json.Unmarshal([]byte(body), &started)
	written, err := os.ReadFile(started.Manifest)
	if err != nil || !strings.HasPrefix(started.Manifest, filepath.Join(stateDir, "requests")+"/") || !strings.Contains(string(written), dest) {
		t.Errorf("manifest %s: %q %v", started.Manifest, written, err)
	}
	waitFor(t, 60*time.Second, "the provisioner to download the file", func() bool {
		b, err := os.ReadFile(dest)
		return err == nil && string(b) == payload
	})
	waitFor(t, 30*time.Second, "the run to end in /api/provisioning", func() bool {
		_, body := api.call("GET", "/api/provisioning", "", nil)
		return strings.Contains(body, `"state":"done"`)
	})

	// `caddy portal capabilities` (vast-capabilities): from the running
	// portal, then built by itself.
	for _, args := range [][]string{
		{"portal", "capabilities", "--config", portal.ConfigPath},
		{"portal", "capabilities", "--config", portal.ConfigPath, "--static"},
	} {
		out, err := portal.Caddy(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		noSecret(strings.Join(args, " "), out)
		if !strings.Contains(out, `"fragment-tool"`) || !strings.Contains(out, `"supervisor_process": "llm"`) || !strings.Contains(out, "AGENTS.md") {
			t.Errorf("%v:\n%s", args, out)
		}
		// Only the running portal probes for OpenAI servers: the live
		// answer has the model, the one built here does not.
		if live := args[len(args)-1] != "--static"; live != strings.Contains(out, "stand-in-7b") {
			t.Errorf("%v: live=%v but the probed model is there=%v", args, live, !live)
		}
	}

	// The boot step: snapshot, combined guide, links, banner.
	agents := env["AGENTS_DIR"]
	os.MkdirAll(agents, 0o755)
	os.WriteFile(filepath.Join(agents, "base.md"), []byte("# Base guide\n"), 0o644)
	ws := filepath.Join(dir, "workspace")
	os.MkdirAll(ws, 0o755)
	banner := filepath.Join(dir, "banner")
	os.WriteFile(banner, []byte("Welcome\n"), 0o644)
	snapshot := filepath.Join(dir, "vast_capabilities.json")
	guide := filepath.Join(dir, "vast-agents-guide.md")
	boot := func(extra ...string) string {
		t.Helper()
		out, err := portal.CaddyEnv(append([]string{"CAPABILITIES_SNAPSHOT=" + snapshot, "AGENTS_GUIDE=" + guide}, extra...),
			"portal", "capabilities", "--boot", "--config", portal.ConfigPath, "--link-dir", ws, "--banner", banner)
		if err != nil {
			t.Fatalf("--boot: %v\n%s", err, out)
		}
		return out
	}
	out := boot()
	snap, err := os.ReadFile(snapshot)
	if err != nil || !strings.Contains(string(snap), `"fragment-tool"`) {
		t.Fatalf("snapshot: %v\n%s\n%s", err, snap, out)
	}
	noSecret("the boot snapshot", string(snap))
	if target, _ := os.Readlink(filepath.Join(ws, "AGENTS.md")); target != guide {
		t.Errorf("AGENTS.md -> %q\n%s", target, out)
	}
	if b, _ := os.ReadFile(banner); !strings.HasPrefix(string(b), "Welcome\nAI agents: ") || !strings.Contains(string(b), guide) {
		t.Errorf("banner %q", b)
	}
	boot("ENABLE_AGENT_BANNER=false")
	if b, _ := os.ReadFile(banner); string(b) != "Welcome\n" {
		t.Errorf("banner with ENABLE_AGENT_BANNER=false: %q", b)
	}
}
