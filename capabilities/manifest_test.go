package capabilities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/tunnels"
)

// appList is an AppSource over a fixed list: the table tests decide the
// states; the integration test reads the real tracker.
type appList struct {
	states []appstate.State
	err    error
}

func (a appList) States(context.Context) ([]appstate.State, error) { return a.states, a.err }

type tunnelList []tunnels.Status

func (t tunnelList) List() []tunnels.Status { return t }

func app(key string, ext, internal int, state, program, programState string) appstate.State {
	return appstate.State{
		App: appstate.App{Key: key, AppInfo: portalconfig.AppInfo{
			Name: key, Hostname: "localhost", ExternalPort: ext, InternalPort: internal, OpenPath: "/",
			Proxied: ext != internal, Auth: true, TunnelPort: ext,
		}},
		State: state, Program: program, ProgramState: programState,
	}
}

// testOptions isolate a build from the machine: every path in dir, a
// fixed clock and host.
func testOptions(t *testing.T, env map[string]string) Options {
	t.Helper()
	dir := t.TempDir()
	if env == nil {
		env = map[string]string{}
	}
	return Options{
		Env:                  env,
		FragmentsDir:         filepath.Join(dir, "frag"),
		AgentsDir:            filepath.Join(dir, "agents"),
		CombinedGuide:        filepath.Join(dir, "guide.md"),
		SnapshotFile:         filepath.Join(dir, "snapshot.json"),
		LaunchFile:           filepath.Join(dir, "launch"),
		ProvisioningStateDir: filepath.Join(dir, "prov"),
		Markers: bootstatus.Config{
			LockFile: filepath.Join(dir, "lock"), DoneFile: filepath.Join(dir, "done"), FailedFile: filepath.Join(dir, "failed"),
		},
		Now:  func() time.Time { return time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC) },
		Host: &Host{Exists: func(p string) bool { _, err := os.Stat(p); return err == nil }, ReadFile: os.ReadFile},
	}
}

func TestBuildServices(t *testing.T) {
	withURL := func(s appstate.State, direct string, public int) appstate.State {
		s.DirectURL, s.PublicPort = direct, public
		return s
	}
	tests := []struct {
		name   string
		apps   []appstate.State
		env    map[string]string
		launch string
		tl     tunnelList
		want   []Service
	}{
		{
			name: "program state, direct URL and mapped port",
			apps: []appstate.State{withURL(app("ComfyUI", 8188, 18188, appstate.Running, "comfyui", "RUNNING"), "http://203.0.113.7:40188/", 40188)},
			env:  map[string]string{"PUBLIC_IPADDR": "203.0.113.7", "VAST_TCP_PORT_8188": "40188"},
			want: []Service{{
				Name: "ComfyUI", Hostname: "localhost", InternalPort: 18188, ExternalPort: 8188, OpenPath: "/",
				MappedPort: "40188", InternalURL: "http://localhost:18188", DirectURL: ptr("http://203.0.113.7:40188/"),
				SupervisorProcess: ptr("comfyui"), State: "RUNNING", PortalState: appstate.Running,
			}},
		},
		{
			name: "no program: unknown; no address: null direct URL",
			apps: []appstate.State{app("Tool", 7000, 17000, appstate.External, "", "")},
			want: []Service{{
				Name: "Tool", Hostname: "localhost", InternalPort: 17000, ExternalPort: 7000, OpenPath: "/",
				InternalURL: "http://localhost:17000", State: "unknown", PortalState: appstate.External,
			}},
		},
		{
			name:   "Jupyter run by the platform",
			apps:   []appstate.State{app("Jupyter", 8080, 18080, appstate.External, "", "")},
			launch: "jupyter\n",
			want: []Service{{
				Name: "Jupyter", Hostname: "localhost", InternalPort: 18080, ExternalPort: 8080, OpenPath: "/",
				InternalURL: "http://localhost:18080", State: "vast-managed", PortalState: appstate.External,
			}},
		},
		{
			name: "a running tunnel to the app's port; a starting one is not shown",
			apps: []appstate.State{app("A", 8001, 18001, appstate.Running, "a", "RUNNING"), app("B", 8002, 18002, appstate.Running, "b", "RUNNING")},
			tl: tunnelList{
				{Target: "http://localhost:8001", URL: "https://a.trycloudflare.com", State: tunnels.StateRunning},
				{Target: "http://localhost:8002", URL: "https://b.trycloudflare.com", State: tunnels.StateStarting},
			},
			want: []Service{
				{Name: "A", Hostname: "localhost", InternalPort: 18001, ExternalPort: 8001, OpenPath: "/", InternalURL: "http://localhost:18001",
					SupervisorProcess: ptr("a"), State: "RUNNING", PortalState: appstate.Running, TunnelURL: ptr("https://a.trycloudflare.com")},
				{Name: "B", Hostname: "localhost", InternalPort: 18002, ExternalPort: 8002, OpenPath: "/", InternalURL: "http://localhost:18002",
					SupervisorProcess: ptr("b"), State: "RUNNING", PortalState: appstate.Running},
			},
		},
		{
			name: "programs of apps not configured are not services",
			apps: []appstate.State{{App: appstate.App{AppInfo: portalconfig.AppInfo{Name: "Syncthing"}}, State: appstate.NotConfigured, Program: "syncthing"}},
			want: []Service{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t, tt.env)
			if tt.launch != "" {
				if err := os.WriteFile(opts.LaunchFile, []byte(tt.launch), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src := Sources{Apps: appList{states: tt.apps}}
			if tt.tl != nil {
				src.Tunnels = tt.tl
			}
			m, err := Build(context.Background(), src, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Services, tt.want) {
				got, _ := json.MarshalIndent(m.Services, "", " ")
				want, _ := json.MarshalIndent(tt.want, "", " ")
				t.Errorf("services:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// The reference's keys, in its order, each present (schema parity).
func TestManifestKeys(t *testing.T) {
	m, err := Build(context.Background(), Sources{Apps: appList{}}, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "generated_at", "image", "credentials", "instance", "hardware",
		"python_environments", "tools", "services", "endpoints_openai", "provisioning", "auth", "discovery"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	if _, ok := doc["warnings"]; ok {
		t.Error("warnings present without a warning")
	}
	if m.Image["repo"] != DefaultImageRepo || m.GeneratedAt != "2026-12-06T07:00:00Z" || m.Hardware.GPU["summary"] != "unknown" {
		t.Errorf("image %v, generated_at %s, gpu %v", m.Image, m.GeneratedAt, m.Hardware.GPU)
	}
	for _, k := range []string{"services", "endpoints_openai", "tools", "python_environments"} {
		if string(doc[k]) != "[]" {
			t.Errorf("%s = %s, want []", k, doc[k])
		}
	}
}

func TestBuildWarnsAndKeepsGoing(t *testing.T) {
	opts := testOptions(t, nil)
	if err := os.MkdirAll(opts.FragmentsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(opts.FragmentsDir, "10-good.yaml"), []byte("tools: [{name: git}]\n"), 0o644)
	os.WriteFile(filepath.Join(opts.FragmentsDir, "20-bad.yaml"), []byte("tools: {name: git}\n"), 0o644)
	m, err := Build(context.Background(), Sources{Apps: appList{err: errors.New("socket refused")}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tools) != 1 || len(m.Warnings) != 2 {
		t.Fatalf("tools %v, warnings %q", m.Tools, m.Warnings)
	}
	if !strings.Contains(m.Warnings[0], "20-bad.yaml") || !strings.Contains(m.Warnings[0], "tools: want a list") ||
		!strings.Contains(m.Warnings[1], "socket refused") {
		t.Errorf("warnings %q", m.Warnings)
	}
	if _, err := Build(context.Background(), Sources{}, opts); err == nil {
		t.Error("no app source accepted")
	}
}

func TestCredentialsAndAuthNeverCarryValues(t *testing.T) {
	secrets := map[string]string{
		"WEB_PASSWORD": "pw-Secret-4711", "OPEN_BUTTON_TOKEN": "tok-Secret-4712", "HF_TOKEN": "hf_Secret4713",
		"CIVITAI_TOKEN": "civ-Secret-4714", "CF_TUNNEL_TOKEN": "cf-Secret-4715",
	}
	env := map[string]string{"VAST_CONTAINERLABEL": "C.42", "AUTH_EXCLUDE": "8384, 7000", "ENABLE_AUTH": "true"}
	for k, v := range secrets {
		env[k] = v
	}
	m, err := Build(context.Background(), Sources{Apps: appList{}}, testOptions(t, env))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	for k, v := range secrets {
		if strings.Contains(string(b), v) {
			t.Errorf("%s's value in the manifest", k)
		}
	}
	if !m.Credentials.HuggingFace || !m.Credentials.Civitai {
		t.Errorf("credentials %+v", m.Credentials)
	}
	if *m.Auth.CookieName != "C.42_auth_token" || !reflect.DeepEqual(m.Auth.ExcludedPorts, []string{"8384", "7000"}) || !m.Auth.Enabled {
		t.Errorf("auth %+v", m.Auth)
	}
}

func TestOpenPorts(t *testing.T) {
	env := map[string]string{
		"VAST_TCP_PORT_8000": "40080", "VAST_TCP_PORT_10100": "41100", "VAST_UDP_PORT_5000": "55000",
		"VAST_TCP_PORT_9999": "notaport", "VAST_TCP_PORT_72299": "13058", "VAST_TCP_PORT_X": "1",
	}
	svcs := []Service{{Name: "vLLM API", ExternalPort: 8000}}
	got := openPorts(env, svcs, map[int]bool{13058: true})
	want := []OpenPort{
		{Proto: "tcp", ContainerPort: 8000, PublicPort: "40080", InUse: true, Service: "vLLM API"},
		{Proto: "tcp", ContainerPort: 10100, PublicPort: "41100"},
		{Proto: "tcp", ContainerPort: 72299, PublicPort: "13058", SelfMapped: true, BindPort: 13058, InUse: true},
		{Proto: "udp", ContainerPort: 5000, PublicPort: "55000"},
	}
	for i := range got {
		got[i].Note = ""
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("open ports\n%+v\nwant\n%+v", got, want)
	}
}

func TestProvisioningStatus(t *testing.T) {
	tests := []struct {
		name    string
		markers []string // which of lock, done, failed exist
		run     string   // progress state, "" for none
		want    string
	}{
		{"nothing", nil, "", "none"},
		{"lock", []string{"lock"}, "", "in_progress"},
		{"done wins", []string{"lock", "done"}, "", "complete"},
		{"failed", []string{"failed"}, "", "failed"},
		{"a portal run in progress", []string{"done"}, provstatus.Running, "in_progress"},
		{"a finished run", nil, provstatus.Done, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, nil)
			files := map[string]string{"lock": o.Markers.LockFile, "done": o.Markers.DoneFile, "failed": o.Markers.FailedFile}
			for _, m := range tt.markers {
				os.WriteFile(files[m], []byte("status=1\nmessage=x\n"), 0o644)
			}
			if tt.run != "" {
				if err := provstatus.Write(provstatus.Path(o.ProvisioningStateDir), provstatus.Status{State: tt.run, Source: "/m.yaml"}); err != nil {
					t.Fatal(err)
				}
			}
			p := provisioning(o.withDefaults())
			if p.Status != tt.want || (tt.run != "") != (p.Run != nil) || p.ProgressURL != ProgressPath {
				t.Errorf("got %+v", p)
			}
		})
	}
}

func TestMetricsFromSnapshot(t *testing.T) {
	gib := uint64(1 << 30)
	s := &gpumetrics.Snapshot{
		GPUReport: gpumetrics.GPUReport{Available: true, Backend: "nvml", GPUs: []gpumetrics.GPU{
			{Name: "H100", UtilizationPercent: gpumetrics.Ptr(50.0), MemoryTotalBytes: gpumetrics.Ptr(80 * gib), MemoryUsedBytes: gpumetrics.Ptr(20 * gib)},
			{Name: "H100", UtilizationPercent: gpumetrics.Ptr(100.0), MemoryTotalBytes: gpumetrics.Ptr(80 * gib), MemoryUsedBytes: gpumetrics.Ptr(60 * gib)},
		}},
		System: gpumetrics.System{
			CPUPercent: gpumetrics.Ptr(12.34), CPULimitCores: gpumetrics.Ptr(4.0), CPUSource: "cgroup2",
			MemoryUsedBytes: gpumetrics.Ptr(gib), MemoryLimitBytes: gpumetrics.Ptr(4 * gib), MemorySource: "cgroup2",
			Disks: []gpumetrics.Disk{{Label: "root", Path: "/", UsedBytes: 10, UsableBytes: 40}, {Label: "workspace", Path: "/workspace", UsedBytes: 1, UsableBytes: 4}},
		},
	}
	m := MetricsFromSnapshot(s)
	if m.GPU.Count != 2 || m.GPU.NvidiaCount != 2 || m.GPU.AvgLoadPercent != 75 || *m.GPU.MemoryTotal != 160*1024 || *m.GPU.MemoryPercent != 50 {
		t.Errorf("gpu %+v", m.GPU)
	}
	if m.Environment != "container" || m.CPU.Percent != 12.3 || m.CPU.Count != 4 || m.RAM.Percent != 25 || m.Disk.Percent != 25 || m.Volume.Path != "/workspace" {
		t.Errorf("metrics %+v %+v %+v %+v", m, m.CPU, m.RAM, m.Disk)
	}
	if got := gpuSummary(s); got != "2× H100" {
		t.Errorf("summary %q", got)
	}
	none := MetricsFromSnapshot(&gpumetrics.Snapshot{GPUReport: gpumetrics.GPUReport{Reason: "NVML library not found"}})
	if none.GPU.Count != 0 || *none.GPU.MemoryUsed != 0 || none.GPU.Errors["gpu"] == "" || gpuSummary(&gpumetrics.Snapshot{}) != "No GPU detected" {
		t.Errorf("no GPU: %+v", none.GPU)
	}
}

// modelsServer is an OpenAI-style server on 127.0.0.1 answering /v1/models.
func modelsServer(t *testing.T, body string, hits *atomic.Int32) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		if r.URL.Path != ModelsPath || r.Header.Get("Authorization") != "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return port
}

func TestProber(t *testing.T) {
	var hits atomic.Int32
	openai := modelsServer(t, `{"object":"list","data":[{"id":"llama-3-8b","object":"model"},{"id":"qwen"}]}`, &hits)
	other := modelsServer(t, `<html>not json</html>`, nil)
	noData := modelsServer(t, `{"object":"list"}`, nil)
	closed := freeClosedPort(t)
	p := NewProber(ProberConfig{Timeout: 2 * time.Second, CacheTTL: time.Hour, MaxModels: 1})
	got := p.Probe(context.Background(), []int{openai, other, noData, closed, openai, 0, 70000})
	if !reflect.DeepEqual(got, map[int][]string{openai: {"llama-3-8b"}}) {
		t.Fatalf("probe: %v", got)
	}
	p.Probe(context.Background(), []int{openai})
	if hits.Load() != 1 {
		t.Errorf("%d requests: the cached answer was not reused", hits.Load())
	}
}

func TestProberBodyBound(t *testing.T) {
	big := `{"data":[{"id":"` + strings.Repeat("x", 4096) + `"}]}`
	port := modelsServer(t, big, nil)
	p := NewProber(ProberConfig{MaxBody: 1024})
	if got := p.Probe(context.Background(), []int{port}); len(got) != 0 {
		t.Errorf("an answer over the body bound was read: %v", got)
	}
}

func freeClosedPort(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	port, _ := strconv.Atoi(u.Port())
	return port
}

func TestEndpoints(t *testing.T) {
	port := modelsServer(t, `{"data":[{"id":"m1"}]}`, nil)
	apps := []appstate.State{
		app("vLLM API", 8000, 18000, appstate.Running, "vllm", "RUNNING"),
		app("Probed", 8001, port, appstate.Running, "", ""),
		app("Instance Portal", 1111, port, appstate.Running, "caddy", "RUNNING"), // never probed
	}
	apps[0].DirectURL = "http://203.0.113.7:40080/"
	apps[1].Auth = false
	opts := testOptions(t, map[string]string{"PUBLIC_IPADDR": "203.0.113.7", "VAST_TCP_PORT_8000": "40080"})
	os.MkdirAll(opts.FragmentsDir, 0o755)
	os.WriteFile(filepath.Join(opts.FragmentsDir, "30-vllm.yaml"), []byte(
		"openai_endpoints:\n  - service: vLLM API\n    path: /v1/\n    capabilities: [chat, completions]\n    models_path: /v1/models\n"), 0o644)
	m, err := Build(context.Background(), Sources{Apps: appList{states: apps}, OpenAI: NewProber(ProberConfig{})}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []OpenAIEndpoint{
		{Service: "vLLM API", BaseURL: ptr("http://203.0.113.7:40080/v1"), InternalBaseURL: "http://localhost:18000/v1",
			Capabilities: []string{"chat", "completions"}, ModelsPath: ptr("/v1/models"),
			Auth: EndpointAuth{Type: "bearer", TokenEnv: tokenEnv}, Source: "fragment"},
		{Service: "Probed", InternalBaseURL: "http://localhost:" + strconv.Itoa(port) + "/v1", Capabilities: []string{},
			ModelsPath: ptr("/v1/models"), Auth: EndpointAuth{Type: "none", TokenEnv: tokenEnv}, Models: []string{"m1"}, Source: "probe"},
	}
	if !reflect.DeepEqual(m.EndpointsOpenAI, want) {
		got, _ := json.MarshalIndent(m.EndpointsOpenAI, "", " ")
		t.Errorf("endpoints:\n%s", got)
	}
	b, _ := json.Marshal(m.Services)
	if !strings.Contains(string(b), `"openai_v1_base":"http://203.0.113.7:40080/v1","capabilities":["chat","completions"]`) ||
		!strings.Contains(string(b), `"openai_v1_base":null`) {
		t.Errorf("services: %s", b)
	}
}

func TestParseInclude(t *testing.T) {
	for in, want := range map[string][2]bool{"": {}, "metrics": {true, false}, " packages , metrics": {true, true}, "gpu,x": {}} {
		m, p := ParseInclude(in)
		if [2]bool{m, p} != want {
			t.Errorf("%q: %v %v", in, m, p)
		}
	}
}

func TestCachedReusesAndSeparatesKinds(t *testing.T) {
	var calls atomic.Int32
	src := Sources{Apps: countingApps{&calls}}
	c := &Cached{Sources: src, Options: testOptions(t, nil), TTL: time.Hour}
	for range 3 {
		if _, err := c.Manifest(context.Background(), false, false); err != nil {
			t.Fatal(err)
		}
	}
	c.Manifest(context.Background(), true, false)
	if calls.Load() != 2 {
		t.Errorf("%d builds, want 2 (one per kind)", calls.Load())
	}
}

type countingApps struct{ n *atomic.Int32 }

func (c countingApps) States(context.Context) ([]appstate.State, error) {
	c.n.Add(1)
	return nil, nil
}

func TestParseProcNetLine(t *testing.T) {
	tests := map[string]int{
		"   0: 0100007F:2B67 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0": 11111,
		"   1: 0100007F:2B67 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1":                  -1,
		"  sl  local_address rem_address   st":                                                   -1,
		"   2: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0": 8080,
	}
	for line, want := range tests {
		p, ok := parseProcNetLine(line)
		if (want < 0) == ok || (ok && p != want) {
			t.Errorf("%q: %d %v", line, p, ok)
		}
	}
}

func TestEnvKindAndPackages(t *testing.T) {
	dir := t.TempDir()
	conda, venv := filepath.Join(dir, "conda"), filepath.Join(dir, "venv")
	os.MkdirAll(filepath.Join(conda, "conda-meta"), 0o755)
	os.MkdirAll(filepath.Join(venv, "bin"), 0o755)
	os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /usr\n"), 0o644)
	h := &Host{Exists: func(p string) bool { _, err := os.Stat(p); return err == nil }}
	if envKind(conda, h) != "conda" || envKind(venv, h) != "venv" || envKind(dir, h) != "" || envKind("", h) != "" {
		t.Error("env kinds")
	}
	// The environment's own Python answers: a script standing in for it
	// prints what importlib.metadata would.
	py := filepath.Join(venv, "bin", "python")
	os.WriteFile(py, []byte("#!/bin/sh\necho '{\"jupyter\": \"1.1.1\", \"missing\": null, \"extra\": \"9\"}'\n"), 0o755)
	envs := pythonEnvironments(context.Background(), []map[string]any{
		{"name": "main", "path": venv, "packages_of_interest": []any{"jupyter", "missing"}},
	}, true, &PackageProber{}, h)
	got := envs[0]["package_versions"].(map[string]*string)
	if len(got) != 2 || *got["jupyter"] != "1.1.1" || got["missing"] != nil || envs[0]["kind"] != "venv" {
		t.Errorf("package versions %v, env %v", got, envs[0])
	}
	if !reflect.DeepEqual(envs[0]["packages_of_interest"], []any{"jupyter", "missing"}) {
		t.Errorf("packages_of_interest changed: %v", envs[0]["packages_of_interest"])
	}
}
