package provisioner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func env(kv ...string) Env {
	e := Env{}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i]] = kv[i+1]
	}
	return e
}

func TestExpand(t *testing.T) {
	e := env("A", "x", "EMPTY", "", "W", "/ws")
	for _, c := range []struct{ in, want string }{
		{"${A}", "x"},
		{"${UNSET}", ""},
		{"${UNSET:-d}", "d"},
		{"${UNSET:=d}", "d"},
		{"${EMPTY:-d}", ""}, // set but empty keeps "", unlike the shell
		{"${W:-/workspace}/ComfyUI", "/ws/ComfyUI"},
		{"${UNSET:---port 7860}", "--port 7860"},
		{"${A:-${B}}", "x}"}, // the expression ends at the first '}'
		{"$A and $(seq 1 3)", "$A and $(seq 1 3)"},
		{"${X:=a:-b}", "b"}, // ":-" is looked for first
		{"no vars", "no vars"},
	} {
		if got := Expand(c.in, e.Lookup); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       string // file:line: path: …
	}{
		{"no version", "apt_packages: [x]\n", "m.yaml:1: version: missing"},
		{"version 2", "version: 2\n", `m.yaml:1: version: unsupported manifest version "2"`},
		{"version string", "version: \"1\"\n", "m.yaml:1: version: unsupported"},
		{"apt not list", "version: 1\napt_packages: ffmpeg\n", `m.yaml:2: apt_packages: want a list of strings, got "ffmpeg"`},
		{"apt item map", "version: 1\napt_packages:\n  - a\n  - {b: c}\n", "m.yaml:4: apt_packages[1]: want a string, got a mapping"},
		{"bad action", "version: 1\non_failure:\n  action: explode\n", `m.yaml:3: on_failure.action: "explode": want continue, destroy or stop`},
		{"bad retries", "version: 1\non_failure:\n  max_retries: many\n", `m.yaml:3: on_failure.max_retries: want a whole number`},
		{"bad bool", "version: 1\ngit_repos:\n  - url: https://h/r\n    dest: /d\n    recursive: maybe\n", "m.yaml:5: git_repos[0].recursive: want true or false"},
		{"repo without url", "version: 1\ngit_repos:\n  - dest: /d\n", "m.yaml:3: git_repos[0].url: missing"},
		{"bad perms", "version: 1\nwrite_files:\n  - path: /x\n    permissions: \"rwx\"\n", `m.yaml:4: write_files[0].permissions: "rwx": want octal`},
		{"relative file", "version: 1\nwrite_files_late:\n  - path: rel/x\n", `m.yaml:3: write_files_late[0].path: "rel/x": want an absolute path`},
		{"service name", "version: 1\nservices:\n  - name: \"a b\"\n    command: x\n", `m.yaml:3: services[0].name: "a b": want letters`},
		{"service env name", "version: 1\nservices:\n  - name: a\n    command: x\n    environment:\n      1BAD: x\n", "m.yaml:6: services[0].environment.1BAD: not a variable name"},
		{"pip tool", "version: 1\npip_packages:\n  - tool: conda\n    packages: [x]\n", `m.yaml:3: pip_packages[0].tool: "conda": want uv or pip`},
		{"download without dest", "version: 1\ndownloads:\n  - url: https://example.com/f.bin\n", "m.yaml:3: downloads[0]:"},
		{"download no url", "version: 1\ndownloads:\n  - dest: /x\n", "m.yaml:3: downloads[0].url: missing"},
		{"settings type", "version: 1\nsettings: [1]\n", "m.yaml:2: settings: want a mapping, got a list"},
		{"concurrency zero", "version: 1\nsettings:\n  concurrency:\n    hf_downloads: 0\n", "m.yaml:4: settings.concurrency.hf_downloads: want at least 1"},
		{"duplicate key", "version: 1\napt_packages: [a]\napt_packages: [b]\n", "m.yaml:3: apt_packages: given twice"},
		{"not a mapping", "- a\n", "m.yaml:1: a manifest is a mapping"},
		{"yaml syntax", "version: 1\n  bad: [\n", "m.yaml:2: "},
		{"empty", "", "m.yaml: empty manifest"},
		{"ports alone", "version: 1\nservices:\n  - name: a\n    command: x\n    internal_port: 8000\n", "m.yaml:3: services[0]: external_port and internal_port go together"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _, err := Parse([]byte(c.body), "m.yaml", env().Lookup)
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	body := `version: 1
settings:
  venv: ${VENV:-/venv/x}
  retry: {max_attempts: 2, initial_delay: 0, backoff_multiplier: 3}
on_failure: {action: stop, max_retries: 0, webhook: "https://hook/${ID}"}
pip_packages:            # a lone mapping is a list of one (reference compat)
  packages: [a, "b>=1"]
  python: 3.10
write_files:
  - path: /etc/x
    permissions: 0755    # unquoted: the text is what was meant
git_repos:
  - url: https://h/org/repo.git
    dest: /w/repo
    recursive: no
services:
  - name: app
    command: python app.py ${ARGS:---port 1}
    environment: {Z: "1", A: "$HOME"}
    external_port: 7860
    internal_port: 17860
typo_section: 1
`
	m, warns, err := Parse([]byte(body), "m.yaml", env("ID", "42").Lookup)
	if err != nil {
		t.Fatal(err)
	}
	if m.Settings.Venv != "/venv/x" || m.Settings.MaxAttempts != 2 || m.Settings.BackoffMultiplier != 3 || m.Settings.HFDownloads != 3 {
		t.Errorf("settings %+v", m.Settings)
	}
	if m.OnFailure.Action != ActionStop || m.OnFailure.MaxRetries != 0 || m.OnFailure.Webhook != "https://hook/42" || m.OnFailure.RetryDelay != 30 {
		t.Errorf("on_failure %+v", m.OnFailure)
	}
	if len(m.PipPackages) != 1 || m.PipPackages[0].Python != "3.10" || m.PipPackages[0].Tool != "uv" {
		t.Errorf("pip %+v", m.PipPackages)
	}
	if m.WriteFiles[0].Permissions != "0755" {
		t.Errorf("permissions %q", m.WriteFiles[0].Permissions)
	}
	if m.GitRepos[0].Recursive {
		t.Error("recursive: no")
	}
	s := m.Services[0]
	if s.Command != "python app.py --port 1" || !s.SkipOnServerless || !s.WaitForProvisioning || s.Venv != DefaultVenv ||
		len(s.Environment) != 2 || s.Environment[1] != (EnvVar{"A", "$HOME"}) || s.InternalPort != 17860 {
		t.Errorf("service %+v", s)
	}
	if len(warns) != 1 || warns[0].Line != 22 || warns[0].Path != "typo_section" {
		t.Errorf("warnings %v", warns)
	}
}

func TestConventionsAndOverrides(t *testing.T) {
	m := NewManifest()
	m.EnvMerge = []EnvMerge{{"HF_MODELS", "downloads"}, {"OTHER", "pip"}}
	m.ConditionalDownloads = []ConditionalDownload{
		{When: "hf_token_valid", Downloads: []Download{{"https://huggingface.co/o/gated/resolve/main/a", "/m/a"}}, ElseDownloads: []Download{{"https://huggingface.co/o/open/resolve/main/b", "/m/b"}}},
		{When: "nonsense"},
	}
	e := env(
		"HF_MODELS", "https://x/1|/d/1; #comment ;bad-entry",
		"OTHER", "x|y",
		EnvDownloads, "https://x/2 | /d/2",
		EnvGitRepos, "https://github.com/org/app.git;https://h/lib|/w/lib|v2",
		EnvApt, "ffmpeg; htop",
		EnvPip, "a>=1;b",
		EnvConda, "numpy",
		EnvPostCommands, "echo 1;echo 2",
		"WORKSPACE", "/ws",
		EnvRetryMax, "7", EnvRetryDelay, "x", EnvFailureAction, "bogus", EnvWebhookOnSuccess, "YES", EnvVenv, "/v",
	)
	if w := ResolveConditionals(m, false, false); len(w) != 1 {
		t.Errorf("conditional warnings %v", w)
	}
	if w := ApplyEnvMerge(m, e); len(w) != 2 {
		t.Errorf("env_merge warnings %v", w)
	}
	ApplyConventions(m, e)
	var dl []string
	for _, d := range m.Downloads {
		dl = append(dl, d.URL+"|"+d.Dest)
	}
	if got := strings.Join(dl, ";"); got != "https://huggingface.co/o/open/resolve/main/b|/m/b;https://x/1|/d/1;https://x/2|/d/2" {
		t.Errorf("downloads %s", got)
	}
	if len(m.GitRepos) != 2 || m.GitRepos[0].Dest != "/ws/app" || m.GitRepos[1].Ref != "v2" || !m.GitRepos[0].Recursive {
		t.Errorf("git %+v", m.GitRepos)
	}
	if strings.Join(m.AptPackages, ",") != "ffmpeg,htop" || len(m.PipPackages) != 1 || len(m.CondaPackages) != 1 || len(m.PostCommands) != 2 {
		t.Errorf("lists %+v", m)
	}
	w := ApplyOverrides(m, e)
	if m.OnFailure.MaxRetries != 7 || m.OnFailure.RetryDelay != 30 || m.OnFailure.Action != ActionContinue || !m.OnFailure.WebhookOnSuccess || m.Settings.Venv != "/v" {
		t.Errorf("overrides %+v %+v", m.OnFailure, m.Settings)
	}
	if len(w) != 2 {
		t.Errorf("override warnings %v", w)
	}
}

// downloadLine is what the reference's self-test counts.
var downloadLine = regexp.MustCompile(`\[DRY RUN\] Would download (HF|wget) `)

// TestReferenceManifests parses and dry-runs every manifest the reference
// ships (testdata/reference/SOURCE.md), and the reference self-test's
// three-class manifest, which must plan exactly three downloads.
func TestReferenceManifests(t *testing.T) {
	want := map[string]int{ // planned downloads, counted by hand from each file
		"examples-comfyui.yaml": 1, "examples-full-reference.yaml": 6, "examples-gated-models.yaml": 1,
		"examples-minimal.yaml": 0, "examples-whisper-webui.yaml": 0, "examples-multi-service.yaml": 2,
		"derivatives-comfyui-ltx-2.3.yaml": 5,
	}
	files, _ := filepath.Glob("testdata/reference/*.yaml")
	if len(files) < 14 {
		t.Fatalf("only %d reference manifests", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := Parse(body, f, env("WORKSPACE", "/workspace").Lookup); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res := Run(context.Background(), Options{Source: f, DryRun: true, Out: &out,
				Env: env("WORKSPACE", "/workspace", EnvLogFile, "", "PROVISIONER_STATE_DIR", t.TempDir())})
			if res.Code != 0 {
				t.Fatalf("dry run: %v\n%s", res.Err, out.String())
			}
			if !strings.Contains(out.String(), "=== DRY RUN MODE ===") {
				t.Error("no dry-run banner")
			}
			if n, ok := want[filepath.Base(f)]; ok {
				if got := len(downloadLine.FindAllString(out.String(), -1)); got != n {
					t.Errorf("%d download lines, want %d:\n%s", got, n, out.String())
				}
			}
		})
	}
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yaml")
	os.WriteFile(m, []byte(`version: 1
settings:
  log_file: `+dir+`/prov.log
downloads:
  - url: https://huggingface.co/org/repo/resolve/main/weights.safetensors
    dest: /tmp/selftest-hf-file/
  - url: https://huggingface.co/org/repo
    dest: /tmp/selftest-hf-repo/
  - url: https://example.invalid/thing.bin
    dest: /tmp/selftest-generic/
`), 0o644)
	var out bytes.Buffer
	if res := Run(context.Background(), Options{Source: m, DryRun: true, Out: &out, Env: env()}); res.Code != 0 {
		t.Fatal(res.Err)
	}
	if got := len(downloadLine.FindAllString(out.String(), -1)); got != 3 {
		t.Errorf("self-test manifest planned %d downloads, want 3:\n%s", got, out.String())
	}
	if log, _ := os.ReadFile(dir + "/prov.log"); !bytes.Contains(log, []byte("Would download wget https://example.invalid/thing.bin")) {
		t.Errorf("log file: %s", log)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/reference/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(string(b))
	}
	f.Add("version: 1\napt_packages: x\n")
	f.Add("version: 1\nservices: [{name: a, command: b, environment: {A: ${X:-y}}}]\n")
	f.Add("version: 1\non_failure: &a {action: stop}\nsettings: *a\n")
	f.Fuzz(func(t *testing.T, body string) {
		m, _, err := Parse([]byte(body), "f.yaml", env("X", "1").Lookup)
		lines := strings.Count(body, "\n") + 1
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				if fe.File != "f.yaml" || fe.Line < 0 || fe.Line > lines {
					t.Fatalf("error points outside the file: %v", fe)
				}
			} else if !strings.HasPrefix(err.Error(), "f.yaml:") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if m.Version != 1 {
			t.Fatalf("accepted version %d", m.Version)
		}
		switch m.OnFailure.Action {
		case ActionContinue, ActionStop, ActionDestroy:
		default:
			t.Fatalf("accepted action %q", m.OnFailure.Action)
		}
		for _, s := range m.Services {
			if !safeName(s.Name) {
				t.Fatalf("accepted service name %q", s.Name)
			}
		}
		for _, w := range m.WriteFiles {
			if _, err := parseMode(w.Permissions); err != nil || !filepath.IsAbs(w.Path) {
				t.Fatalf("accepted file %+v", w)
			}
		}
		Plan(m, "") // never panics on an accepted manifest
	})
}
