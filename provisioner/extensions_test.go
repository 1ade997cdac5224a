package provisioner

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/provstatus"
)

// TestComfyUIExtension: the built-in provisioner_comfyui reads a workflow
// (subgraphs included), adds its models to downloads and its custom nodes
// (resolved through a local stand-in for the ComfyUI registry) to
// git_repos, and saves the workflow with write_files_late.
func TestComfyUIExtension(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/nodes/comfyui-kjnodes", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"repository":"https://github.com/kijai/ComfyUI-KJNodes"}`)
	})
	mux.HandleFunc("/wf/t2v.json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"nodes":[{"properties":{"cnr_id":"comfy-core","models":[
		  {"name":"m.safetensors","url":"https://huggingface.co/o/r/resolve/main/m.safetensors?download=true","directory":"checkpoints"}]}}],
		 "definitions":{"subgraphs":[{"nodes":[{"properties":{"cnr_id":"comfyui-kjnodes","models":[{"name":"v.safetensors","url":"https://huggingface.co/o/r/resolve/main/v.safetensors"}]}}]}]}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	body := "version: 1\nextensions:\n  - module: provisioner_comfyui\n    config:\n      workflows: [\"" + srv.URL + "/wf/t2v.json\"]\n"
	rec := &recorder{}
	res, out := testRun(t, dir, body, Env{"WORKSPACE": dir}, func(o *Options) {
		o.ComfyRegistry = srv.URL + "/nodes/"
		o.Runner = rec
		o.DryRun = true // the extension runs for real only outside dry runs
	})
	if res.Code != 0 || !strings.Contains(out, "[DRY RUN] Would run extension provisioner_comfyui") {
		t.Fatalf("dry run: %v\n%s", res.Err, out)
	}
	m := NewManifest()
	m.Extensions = []Extension{{Module: "provisioner_comfyui", Enabled: true, Config: map[string]any{"workflows": []any{srv.URL + "/wf/t2v.json"}}}}
	r := &run{opt: Options{Env: Env{"WORKSPACE": dir, EnvComfyWorkflows: srv.URL + "/wf/t2v.json"}, ComfyRegistry: srv.URL + "/nodes/"}, log: &logger{now: time.Now}}
	r.opt.fill()
	if err := r.runExtensions(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if len(m.Downloads) != 2 || m.Downloads[0].URL != "https://huggingface.co/o/r/resolve/main/m.safetensors" ||
		m.Downloads[0].Dest != dir+"/ComfyUI/models/checkpoints/m.safetensors" || m.Downloads[1].Dest != dir+"/ComfyUI/models/v.safetensors" {
		t.Errorf("downloads %+v", m.Downloads)
	}
	if len(m.GitRepos) != 1 || m.GitRepos[0].URL != "https://github.com/kijai/ComfyUI-KJNodes.git" || m.GitRepos[0].Dest != dir+"/ComfyUI/custom_nodes/ComfyUI-KJNodes" {
		t.Errorf("git %+v", m.GitRepos)
	}
	if len(m.WriteFilesLate) != 1 || m.WriteFilesLate[0].Path != dir+"/ComfyUI/user/default/workflows/t2v.json" {
		t.Errorf("workflow file %+v", m.WriteFilesLate)
	}
	// An unknown module, or a node the registry does not know, fails.
	m = NewManifest()
	m.Extensions = []Extension{{Module: "provisioner_other", Enabled: true}}
	if err := r.runExtensions(t.Context(), m); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown module: %v", err)
	}
	os.WriteFile(dir+"/wf.json", []byte(`{"nodes":[{"properties":{"cnr_id":"unknown-node"}}]}`), 0o644)
	m = NewManifest()
	m.Extensions = []Extension{{Module: "provisioner_comfyui", Enabled: true, Config: map[string]any{"workflows": []any{dir + "/wf.json"}}}}
	if err := r.runExtensions(t.Context(), m); err == nil || !strings.Contains(err.Error(), "node resolution unknown-node") {
		t.Errorf("unknown node: %v", err)
	}
}

// TestTokensAndProgress: tokens are checked against the hub (HF_ENDPOINT)
// in a header and never logged; conditional downloads follow the verdict;
// the progress document carries the phases and the running command's
// last lines.
func TestTokensAndProgress(t *testing.T) {
	const token = "hf_secret_token_123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/whoami-v2" && r.Header.Get("Authorization") == "Bearer "+token {
			fmt.Fprint(w, `{"name":"u"}`)
			return
		}
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	dir := t.TempDir()
	body := `version: 1
conditional_downloads:
  - when: hf_token_valid
    downloads: [{url: "https://huggingface.co/o/gated/resolve/main/g.bin", dest: /m/g.bin}]
    else_downloads: [{url: "https://huggingface.co/o/open/resolve/main/o.bin", dest: /m/o.bin}]
post_commands:
  - for i in $(seq 1 30); do echo line $i; done
`
	res, out := testRun(t, dir, body, Env{"HF_TOKEN": token, "HF_ENDPOINT": srv.URL}, func(o *Options) { o.DryRun = true })
	if res.Code != 0 || !strings.Contains(out, "HuggingFace token is valid") || !strings.Contains(out, "Would download HF o/gated/g.bin") {
		t.Fatalf("valid token: %v\n%s", res.Err, out)
	}
	res, out = testRun(t, dir, body, Env{"HF_TOKEN": "wrong-token-456", "HF_ENDPOINT": srv.URL}, func(o *Options) { o.DryRun = true })
	if res.Code != 0 || !strings.Contains(out, "HuggingFace token is invalid") || !strings.Contains(out, "Would download HF o/open/o.bin") {
		t.Fatalf("invalid token: %v\n%s", res.Err, out)
	}
	if strings.Contains(out, "wrong-token-456") {
		t.Errorf("a token was logged:\n%s", out)
	}
	// A real run (no downloads: the conditional ones are removed) to see
	// the command's tail in the progress.
	body = strings.Replace(body, "conditional_downloads:", "x_conditional_downloads:", 1)
	res, out = testRun(t, dir, body, Env{}, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	st, err := provstatus.Read(provstatus.Path(filepath.Join(dir, "state")))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range st.Phases {
		names = append(names, p.Name)
		if p.State != provstatus.Done || p.StartedAt == nil || p.FinishedAt == nil {
			t.Errorf("phase %+v", p)
		}
	}
	if strings.Join(names, ",") != "extensions,auth,write_files,apt,git,pip,conda,downloads,services,write_files_late,post_commands" {
		t.Errorf("phases %v", names)
	}
	if st.Command != nil {
		t.Errorf("a finished run still shows a command: %+v", st.Command)
	}
	// The tail while running: the progress keeps the last 20 lines.
	p := newProgress("", time.Hour, time.Now, &logger{now: time.Now})
	p.command(PhasePostCommands, "cmd https://u:p@h/x")
	for i := 1; i <= 30; i++ {
		p.output(fmt.Sprintf("line %d", i))
	}
	s := p.snapshot()
	if s.Command == nil || len(s.Command.Tail) != tailLines || s.Command.Tail[0] != "line 11" || strings.Contains(s.Command.Line, "u:p") {
		t.Errorf("command %+v", s.Command)
	}
}

// TestProgressThrottle: many updates within one interval give one write,
// and the pending state is written by the next tick; a phase change is
// written at once.
func TestProgressThrottle(t *testing.T) {
	dir := t.TempDir()
	path := provstatus.Path(dir)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := newProgress(path, time.Hour, clock, &logger{now: clock}) // the ticker never fires in this test
	defer p.close()
	p.update(true, func(s *provstatus.Status) {
		s.State = provstatus.Running
		s.Phases = []provstatus.Phase{{Name: PhaseDownloads, State: provstatus.Pending}}
	})
	for i := 1; i <= 1000; i++ {
		p.download(provstatus.Download{ID: "1", State: provstatus.Running, Bytes: int64(i)})
	}
	st, _ := provstatus.Read(path)
	if len(st.Downloads) != 0 {
		t.Errorf("throttled updates were written at once: %+v", st.Downloads)
	}
	p.phase(PhaseDownloads, provstatus.Running, "", 1)
	st, _ = provstatus.Read(path)
	if len(st.Downloads) != 1 || st.Downloads[0].Bytes != 1000 || st.Phases[0].State != provstatus.Running {
		t.Errorf("phase change: %+v", st)
	}
	now = now.Add(time.Hour)
	p.download(provstatus.Download{ID: "1", State: provstatus.Running, Bytes: 2000})
	if st, _ = provstatus.Read(path); st.Downloads[0].Bytes != 2000 {
		t.Errorf("after the interval: %+v", st.Downloads)
	}
}
