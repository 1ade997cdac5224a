package capabilities

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/instanceportal/portal/provstatus"
)

func TestDecodeProvisionRequest(t *testing.T) {
	tests := []struct {
		body string
		want string // error substring, "" for none
	}{
		{`{"pip": ["requests==2.32.3", "numpy"]}`, ""},
		{`{"manifest_url": "https://example.com/m.yaml"}`, ""},
		{`{"inline_yaml": "version: 1\npip_packages: []\n"}`, ""},
		{`{"git_repos": ["https://github.com/a/b|/workspace/b|main"], "downloads": ["https://h/f.bin|/models/f.bin"]}`, ""},
		{`{}`, "give one of"},
		{`{"pip": []}`, "give one of"},
		{`{"pip": ["x"], "manifest_url": "https://e/m.yaml"}`, "not several"},
		{`{"pipp": ["x"]}`, `unknown field "pipp"`},
		{`{"pip": ["--index-url=https://evil"]}`, "pip[0]: \"--index-url=https://evil\": options are not allowed"},
		{`{"pip": ["ok", ""]}`, "pip[1]: empty"},
		{`{"pip": ["a\nb"]}`, "pip[0]: holds a line break"},
		{`{"downloads": ["file:///etc/shadow|/tmp/x"]}`, "downloads[0]: \"file:///etc/shadow\": want an http:// or https:// URL"},
		{`{"git_repos": ["ssh://git@h/r"]}`, "git_repos[0]"},
		{`{"manifest_url": "https://user:hunter2@example.com/m.yaml?x"}`, ""},
		{`{"manifest_url": "ftp://example.com/m.yaml"}`, "manifest_url"},
		{`{"inline_yaml": "- a\n"}`, "inline_yaml: want a mapping"},
		{`{"inline_yaml": "a: ["}`, "inline_yaml: not YAML"},
		{`{"pip": ["a"]} {}`, "one JSON object"},
		{`[1]`, "body: want a JSON object"},
	}
	for _, tt := range tests {
		_, err := DecodeProvisionRequest(strings.NewReader(tt.body))
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.body, err, tt.want)
		}
	}
	// A refused URL is shown without its password.
	_, err := DecodeProvisionRequest(strings.NewReader(`{"downloads": ["ftp://user:hunter2@h/f"]}`))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v shows the password", err)
	}
}

func TestManifestYAML(t *testing.T) {
	req := ProvisionRequest{
		Pip:       []string{" requests ", "numpy>=2"},
		GitRepos:  []string{"https://github.com/a/b", "https://github.com/c/d|/workspace/d|v1"},
		Downloads: []string{"https://h/f.bin|/models/f.bin|ignored"},
	}
	b, err := req.ManifestYAML()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version":      1,
		"pip_packages": []any{map[string]any{"packages": []any{"requests", "numpy>=2"}}},
		"git_repos": []any{
			map[string]any{"url": "https://github.com/a/b"},
			map[string]any{"url": "https://github.com/c/d", "dest": "/workspace/d", "ref": "v1"},
		},
		"downloads": []any{map[string]any{"url": "https://h/f.bin", "dest": "/models/f.bin"}},
	}
	if !equalYAML(got, want) {
		t.Errorf("manifest:\n%s", b)
	}
	inline := ProvisionRequest{InlineYAML: "version: 1\n"}
	if b, _ := inline.ManifestYAML(); string(b) != "version: 1\n" {
		t.Errorf("inline: %q", b)
	}
}

func equalYAML(a, b any) bool {
	ba, _ := yaml.Marshal(a)
	bb, _ := yaml.Marshal(b)
	return string(ba) == string(bb)
}

// The launcher runs a real program: a script standing in for this binary
// records its arguments, as `caddy portal provision FILE` receives them.
func TestLauncher(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "portal")
	argsFile := filepath.Join(dir, "args")
	release := filepath.Join(dir, "release")
	script := "#!/bin/sh\necho \"$@ ${PROVISIONING_MANIFEST:-}\" > " + argsFile + ".tmp && mv " + argsFile + ".tmp " + argsFile +
		"\ni=0; while [ ! -e " + release + " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Launcher{Executable: exe, StateDir: filepath.Join(dir, "state"), LockFile: filepath.Join(dir, "lock")}
	st, err := l.Start(ProvisionRequest{Pip: []string{"requests"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Manifest, filepath.Join(dir, "state", provstatus.RequestsDir)+"/provision-") {
		t.Errorf("manifest at %s", st.Manifest)
	}
	fi, err := os.Stat(st.Manifest)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest file: %v %v", fi, err)
	}
	waitFile(t, argsFile)
	args, _ := os.ReadFile(argsFile)
	if strings.TrimSpace(string(args)) != "portal provision "+st.Manifest {
		t.Errorf("ran with %q", args)
	}
	// While it runs, a second run is refused.
	if _, err := l.Start(ProvisionRequest{Pip: []string{"x"}}); !errors.Is(err, ErrBusy) {
		t.Errorf("second run while the first runs: %v", err)
	}
	os.WriteFile(release, nil, 0o644)
	waitFor(t, func() bool { return l.Busy() == "" })

	// The boot's lock, then a run in progress, refuse a run too.
	os.WriteFile(l.LockFile, nil, 0o644)
	if _, err := l.Start(ProvisionRequest{Pip: []string{"x"}}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), l.LockFile) {
		t.Errorf("with the lock: %v", err)
	}
	os.Remove(l.LockFile)
	provstatus.Write(provstatus.Path(l.StateDir), provstatus.Status{State: provstatus.Running})
	if _, err := l.Start(ProvisionRequest{Pip: []string{"x"}}); !errors.Is(err, ErrBusy) {
		t.Errorf("with a run in progress: %v", err)
	}
	// A URL goes to the provisioner as it is, through its environment
	// (PROVISIONING_MANIFEST), not its command line, which every local user
	// can read; only its masked form is shown.
	provstatus.Write(provstatus.Path(l.StateDir), provstatus.Status{State: provstatus.Done})
	os.Remove(argsFile)
	st, err = l.Start(ProvisionRequest{ManifestURL: "https://u:hunter2@example.com/m.yaml"})
	if err != nil || strings.Contains(st.Manifest, "hunter2") {
		t.Fatalf("%+v %v", st, err)
	}
	waitFile(t, argsFile)
	args, _ = os.ReadFile(argsFile)
	if strings.TrimSpace(string(args)) != "portal provision https://u:hunter2@example.com/m.yaml" || strings.Count(string(args), "provision ") != 1 {
		t.Errorf("ran with %q", args)
	}
}

func TestLauncherKeepsFewRequests(t *testing.T) {
	l := &Launcher{StateDir: t.TempDir()}
	for range keepRequests + 5 {
		if _, err := l.writeRequest([]byte("version: 1\n")); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(l.StateDir, provstatus.RequestsDir, "provision-*.yaml"))
	if len(files) != keepRequests {
		t.Errorf("%d request files kept, want %d", len(files), keepRequests)
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	waitFor(t, func() bool { _, err := os.Stat(p); return err == nil })
}
