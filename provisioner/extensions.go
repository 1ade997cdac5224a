package provisioner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
)

// The reference runs extensions as Python modules. Ours are built in, by
// the module name the manifests use; an unknown module fails the run
// before any phase, as a missing Python module does there.
var builtinExtensions = map[string]func(ctx context.Context, r *run, cfg map[string]any, m *Manifest) error{
	"provisioner_comfyui": comfyUIExtension,
}

// EnvComfyWorkflows adds workflow URLs to provisioner_comfyui
// (semicolon-separated), the reference's variable.
const EnvComfyWorkflows = "PROVISIONING_COMFYUI_WORKFLOWS"

func (r *run) runExtensions(ctx context.Context, m *Manifest) error {
	for _, e := range m.Extensions {
		switch {
		case !e.Enabled:
			r.log.Info(fmt.Sprintf("Extension %s disabled, skipping", e.Module))
			continue
		case e.Module == "":
			r.log.Warn("Extension entry with empty module, skipping")
			continue
		case r.opt.DryRun:
			cfg, _ := json.Marshal(e.Config)
			r.log.Info(fmt.Sprintf("[DRY RUN] Would run extension %s with config: %s", e.Module, cfg))
			continue
		}
		run, ok := builtinExtensions[e.Module]
		if !ok {
			return fmt.Errorf("extension module %q not found (built in: %s)", e.Module, strings.Join(extensionNames(), ", "))
		}
		r.log.Info("Running extension " + e.Module)
		if err := run(ctx, r, e.Config, m); err != nil {
			return fmt.Errorf("extension %s: %w", e.Module, err)
		}
		r.log.Info(fmt.Sprintf("Extension %s completed", e.Module))
	}
	return nil
}

func extensionNames() []string {
	var n []string
	for k := range builtinExtensions {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// comfyUIExtension reads ComfyUI workflows (GUI format) and adds the
// models they name to downloads, the custom nodes they use (resolved
// through the ComfyUI registry) to git_repos, and the workflows
// themselves to write_files_late, as the reference's extension does.
func comfyUIExtension(ctx context.Context, r *run, cfg map[string]any, m *Manifest) error {
	var workflows []string
	if l, ok := cfg["workflows"].([]any); ok {
		for _, w := range l {
			if s, ok := w.(string); ok {
				workflows = append(workflows, s)
			}
		}
	}
	dir := Expand("${WORKSPACE:-/workspace}/ComfyUI", r.opt.Env.Lookup)
	if d, ok := cfg["comfyui_dir"].(string); ok && d != "" {
		dir = Expand(d, r.opt.Env.Lookup)
	}
	seen := map[string]bool{}
	for _, w := range workflows {
		seen[w] = true
	}
	for _, w := range splitEntries(r.opt.Env.Get(EnvComfyWorkflows)) {
		if !seen[w] {
			seen[w] = true
			workflows = append(workflows, w)
			r.log.Info(fmt.Sprintf("Workflow from $%s: %s", EnvComfyWorkflows, w))
		}
	}
	if len(workflows) == 0 {
		r.log.Info("No workflows configured, nothing to do")
		return nil
	}
	haveURL := map[string]bool{}
	for _, d := range m.Downloads {
		haveURL[d.URL] = true
	}
	haveRepo := map[string]bool{}
	for _, g := range m.GitRepos {
		haveRepo[g.URL] = true
	}
	var failures []string
	for _, w := range workflows {
		r.log.Info("Processing workflow: " + w)
		data, err := r.readWorkflow(ctx, w)
		if err != nil {
			r.log.Warn(fmt.Sprintf("Failed to fetch workflow %s: %v", w, err))
			failures = append(failures, fmt.Sprintf("workflow fetch %s: %v", w, err))
			continue
		}
		var wf map[string]any
		if err := json.Unmarshal(data, &wf); err != nil {
			failures = append(failures, fmt.Sprintf("workflow %s: %v", w, err))
			continue
		}
		if _, ok := wf["nodes"]; !ok {
			r.log.Warn(fmt.Sprintf("Workflow %s appears to be API format (no 'nodes' key), skipping", w))
			continue
		}
		nodes := comfyNodes(wf)
		for _, d := range comfyModels(nodes, dir) {
			if !haveURL[d.URL] {
				haveURL[d.URL] = true
				m.Downloads = append(m.Downloads, d)
				r.log.Info(fmt.Sprintf("  Model: %s -> %s", d.URL, d.Dest))
			}
		}
		for _, id := range comfyNodeIDs(nodes) {
			repo, err := r.comfyRepo(ctx, id)
			if err != nil {
				r.log.Warn(fmt.Sprintf("Failed to resolve node %s: %v", id, err))
				failures = append(failures, "node resolution "+id)
				continue
			}
			if haveRepo[repo] {
				continue
			}
			haveRepo[repo] = true
			dest := dir + "/custom_nodes/" + strings.TrimSuffix(path.Base(urlPath(repo)), ".git")
			m.GitRepos = append(m.GitRepos, GitRepo{URL: repo, Dest: dest, Recursive: true})
			r.log.Info(fmt.Sprintf("  Custom node: %s -> %s", id, dest))
		}
		pretty, _ := json.MarshalIndent(wf, "", "  ")
		name := path.Base(urlPath(w))
		if name == "" || name == "." || name == "/" {
			name = "workflow.json"
		}
		if !strings.HasSuffix(name, ".json") {
			name += ".json"
		}
		p := dir + "/user/default/workflows/" + name
		m.WriteFilesLate = append(m.WriteFilesLate, FileWrite{Path: p, Content: string(pretty), Permissions: "0644"})
		r.log.Info("  Will save workflow to " + p)
	}
	if len(failures) > 0 {
		return fmt.Errorf("failed to resolve %d item(s): %s", len(failures), strings.Join(failures, "; "))
	}
	return nil
}

func urlPath(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Path
	}
	return s
}

// readWorkflow reads a workflow from a URL or (ours) a local file.
func (r *run) readWorkflow(ctx context.Context, w string) ([]byte, error) {
	if strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") {
		return r.fetch(ctx, w, 64<<20)
	}
	return os.ReadFile(w)
}

func (r *run) comfyRepo(ctx context.Context, id string) (string, error) {
	b, err := r.fetch(ctx, r.opt.ComfyRegistry+url.PathEscape(id), 1<<20)
	if err != nil {
		return "", err
	}
	var v struct {
		Repository string `json:"repository"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	if v.Repository == "" {
		return "", errors.New("no repository field")
	}
	if !strings.HasSuffix(v.Repository, ".git") {
		v.Repository += ".git"
	}
	return v.Repository, nil
}

// comfyNodes is the workflow's nodes and those of its subgraphs.
func comfyNodes(wf map[string]any) []map[string]any {
	var out []map[string]any
	add := func(v any) {
		l, _ := v.([]any)
		for _, n := range l {
			if m, ok := n.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	add(wf["nodes"])
	if defs, ok := wf["definitions"].(map[string]any); ok {
		if sgs, ok := defs["subgraphs"].([]any); ok {
			for _, sg := range sgs {
				if m, ok := sg.(map[string]any); ok {
					add(m["nodes"])
				}
			}
		}
	}
	return out
}

// comfyModels is every properties.models[] entry with a url and a name,
// query strings dropped, each URL once.
func comfyModels(nodes []map[string]any, dir string) []Download {
	var out []Download
	seen := map[string]bool{}
	for _, n := range nodes {
		props, _ := n["properties"].(map[string]any)
		models, _ := props["models"].([]any)
		for _, mv := range models {
			m, _ := mv.(map[string]any)
			u, _ := m["url"].(string)
			name, _ := m["name"].(string)
			sub, _ := m["directory"].(string)
			if u == "" || name == "" {
				continue
			}
			if pu, err := url.Parse(u); err == nil && pu.RawQuery != "" {
				pu.RawQuery = ""
				u = pu.String()
			}
			if seen[u] {
				continue
			}
			seen[u] = true
			dest := dir + "/models/" + name
			if sub != "" {
				dest = dir + "/models/" + sub + "/" + name
			}
			out = append(out, Download{URL: u, Dest: dest})
		}
	}
	return out
}

// comfyNodeIDs is the custom node packages used (cnr_id), without
// comfy-core, sorted.
func comfyNodeIDs(nodes []map[string]any) []string {
	set := map[string]bool{}
	for _, n := range nodes {
		props, _ := n["properties"].(map[string]any)
		if id, _ := props["cnr_id"].(string); id != "" && id != "comfy-core" {
			set[id] = true
		}
	}
	var out []string
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
