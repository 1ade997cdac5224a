package capabilities

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) Fragment {
	t.Helper()
	f, err := ParseFragment([]byte(s))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return f
}

func TestParseFragmentErrors(t *testing.T) {
	tests := map[string]string{
		"- a\n- b\n":                            "want a mapping at the top, got a list",
		"image: [1]\n":                          "image: want a mapping, got a list",
		"tools: {name: git}\n":                  "tools: want a list, got a mapping",
		"python_environments: [main]\n":         "python_environments: entry 1: want a mapping, got a string",
		"openai_endpoints: [{service: A}, 3]\n": "openai_endpoints: entry 2: want a mapping",
		"tools: [\n":                            "yaml:",
		"just text\n":                           "want a mapping at the top, got a string",
	}
	for in, want := range tests {
		if _, err := ParseFragment([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	for _, empty := range []string{"", "# only a comment\n", "~\n", "unknown_key: 1\n"} {
		if f := mustParse(t, empty); !reflect.DeepEqual(f, Fragment{}) {
			t.Errorf("%q: %+v", empty, f)
		}
	}
}

// The reference's merge rules (its test_load_fragments_merges and
// test_image_identity_merge_and_default).
func TestMerge(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		check func(t *testing.T, f Fragment)
	}{
		{
			name: "lists add up; environments merge by name; packages_of_interest union",
			files: []string{
				"tools:\n  - name: git\npython_environments:\n  - name: main\n    path: /venv/main\n    packages_of_interest: [torch, numpy]\nopenai_endpoints:\n  - service: A\n    path: /v1\n",
				"tools:\n  - name: vllm\npython_environments:\n  - name: main\n    description: d\n    packages_of_interest: [vllm, torch]\nopenai_endpoints:\n  - service: B\n    path: /v1\n",
			},
			check: func(t *testing.T, f Fragment) {
				if len(f.Tools) != 2 || len(f.OpenAIEndpoints) != 2 || len(f.PythonEnvironments) != 1 {
					t.Fatalf("%+v", f)
				}
				env := f.PythonEnvironments[0]
				if !reflect.DeepEqual(env["packages_of_interest"], []any{"torch", "numpy", "vllm"}) || env["path"] != "/venv/main" || env["description"] != "d" {
					t.Errorf("env %v", env)
				}
			},
		},
		{
			name:  "image keys: the later file wins key by key",
			files: []string{"image:\n  repo: R\n  readme: BASE\n", "image:\n  name: PyTorch\n  readme: PT\n"},
			check: func(t *testing.T, f Fragment) {
				if !reflect.DeepEqual(f.Image, map[string]any{"repo": "R", "name": "PyTorch", "readme": "PT"}) {
					t.Errorf("image %v", f.Image)
				}
			},
		},
		{
			name:  "an environment without name or path is dropped; path is the key without a name",
			files: []string{"python_environments:\n  - description: nameless\n  - path: /.uv\n", "python_environments:\n  - path: /.uv\n    kind: uv\n"},
			check: func(t *testing.T, f Fragment) {
				if len(f.PythonEnvironments) != 1 || f.PythonEnvironments[0]["kind"] != "uv" {
					t.Errorf("%v", f.PythonEnvironments)
				}
			},
		},
		{
			name:  "non-string keys and odd values still encode as JSON",
			files: []string{"tools:\n  - {1: one, true: yes, x: .nan}\n"},
			check: func(t *testing.T, f Fragment) {
				if _, err := json.Marshal(f.Tools); err != nil {
					t.Error(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var frags []Fragment
			for _, s := range tt.files {
				frags = append(frags, mustParse(t, s))
			}
			tt.check(t, Merge(frags))
		})
	}
}

func TestLoadFragments(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "30-b.yaml"), []byte("tools: [{name: b}]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "10-a.yaml"), []byte("tools: [{name: a}]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "20-not-yaml.txt"), []byte("tools: [{name: x}]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "40-big.yaml"), []byte("tools: ["+strings.Repeat(" ", MaxFragmentBytes)+"]\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "50-dir.yaml"), 0o755)
	f, warns := LoadFragments(dir)
	if !reflect.DeepEqual(f.Tools, []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}}) {
		t.Errorf("tools %v", f.Tools)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], "40-big.yaml: larger than") || !strings.Contains(warns[1], "50-dir.yaml: not a regular file") {
		t.Errorf("warnings %q", warns)
	}
	if f, warns := LoadFragments(filepath.Join(dir, "missing")); len(warns) != 0 || len(f.Tools) != 0 {
		t.Errorf("missing dir: %v %v", f, warns)
	}
	// The image's own base fragment parses.
	base, err := os.ReadFile("../rootfs/etc/vast_capabilities.d/10-base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f := mustParse(t, string(base)); len(f.Tools) == 0 || f.Image["repo"] != DefaultImageRepo || len(f.PythonEnvironments) != 1 {
		t.Errorf("10-base.yaml: %+v", f)
	}
}

// FuzzParseFragment: any input is refused with an error or parsed into a
// fragment that merges and encodes as JSON, with every list entry kept.
func FuzzParseFragment(f *testing.F) {
	for _, s := range []string{
		"", "tools: [{name: git}]\n", "image: {repo: x}\npython_environments: [{name: main, packages_of_interest: [a, a]}]\n",
		"openai_endpoints: [{service: S, path: /v1, capabilities: [chat]}]\n", "{1: 2}\n", "- x\n", "a: &a [*a]\n",
		"tools: [{x: .inf}, {y: !!binary aGk=}]\n", "python_environments: [{path: /p}, {path: /p, kind: venv}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frag, err := ParseFragment(data)
		if err != nil {
			return
		}
		merged := Merge([]Fragment{frag, frag})
		if len(merged.Tools) != 2*len(frag.Tools) || len(merged.OpenAIEndpoints) != 2*len(frag.OpenAIEndpoints) {
			t.Fatalf("merge lost entries: %d tools from %d", len(merged.Tools), len(frag.Tools))
		}
		if len(merged.PythonEnvironments) > len(frag.PythonEnvironments) {
			t.Fatalf("environments did not merge by name: %d from %d", len(merged.PythonEnvironments), len(frag.PythonEnvironments))
		}
		if _, err := json.Marshal(merged); err != nil {
			t.Fatalf("not JSON-encodable: %v", err)
		}
	})
}
