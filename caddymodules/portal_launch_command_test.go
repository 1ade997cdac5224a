package caddymodules

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instanceportal/portal/portalconfig"
)

func TestLaunchCommand(t *testing.T) {
	dir := t.TempDir()
	launch := filepath.Join(dir, "launch")
	yaml := filepath.Join(dir, "portal.yaml")
	env := map[string]string{
		"PORTAL_CONFIG":      "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter",
		"VAST_TCP_PORT_8080": "40080",
	}
	run := func(print, write string, force bool) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runLaunch(&out, &errOut, portalconfig.Environ(env), launch, print, write, force)
		return out.String(), errOut.String(), err
	}

	// No launch file: entrypoint mode, the config as it is.
	out, msgs, err := run("mode,portal-config,https-links", "", false)
	if err != nil || out != "entrypoint\n"+env["PORTAL_CONFIG"]+"\n\n" || msgs != "" {
		t.Fatalf("entrypoint: %q %q %v", out, msgs, err)
	}

	// A launch file naming jupyter: a link, https, written to portal.yaml.
	if err := os.WriteFile(launch, []byte("#!/bin/sh\nexec jupyter-notebook --port 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, msgs, err = run("mode", yaml, false)
	if err != nil || out != "jupyter\n" || !strings.Contains(msgs, "launch mode jupyter: Jupyter: port 8080 is served by the platform's Jupyter") ||
		!strings.Contains(msgs, "wrote "+yaml) {
		t.Fatalf("jupyter: %q %q %v", out, msgs, err)
	}
	body, _ := os.ReadFile(yaml)
	if !strings.Contains(string(body), "internal_port: 8080\n    open_path: /\n    name: Jupyter\n    scheme: https\n") {
		t.Fatalf("portal.yaml:\n%s", body)
	}

	// An existing portal.yaml wins, unless --force.
	if err := os.WriteFile(yaml, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, msgs, err = run("", yaml, false); err != nil || !strings.Contains(msgs, "using the existing") {
		t.Fatalf("existing: %q %v", msgs, err)
	}
	if b, _ := os.ReadFile(yaml); string(b) != "mine\n" {
		t.Fatalf("overwritten: %q", b)
	}
	if _, _, err = run("", yaml, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(yaml); !bytes.Contains(b, []byte("scheme: https")) {
		t.Fatalf("--force did not write: %q", b)
	}

	// Errors name what is wrong.
	for name, tc := range map[string]struct {
		env   map[string]string
		print string
		want  string
	}{
		"unknown print item": {env: env, print: "mode,colour", want: `--print: unknown item "colour"`},
		"bad port variable":  {env: map[string]string{"JUPYTER_PORT": "x"}, want: `JUPYTER_PORT="x": not a number`},
		"nothing to write":   {env: map[string]string{}, print: "", want: "PORTAL_CONFIG is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runLaunch(&out, &errOut, portalconfig.Environ(tc.env), launch, tc.print, filepath.Join(dir, "new.yaml"), false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAppCommand(t *testing.T) {
	dir := t.TempDir()
	yaml := filepath.Join(dir, "portal.yaml")
	mustWriteFile(t, yaml, "applications:\n  Syncthing:\n    hostname: localhost\n    external_port: 8384\n    internal_port: 18384\n  Broken twin:\n    hostname: localhost\n    external_port: 8384\n    internal_port: 1\n")
	tests := []struct {
		name, path, app, print string
		code                   int
		out, errOut            string
	}{
		{name: "found, field printed", path: yaml, app: "syncthing", print: "internal_port", out: "18384\n"},
		{name: "found by part of the name, another entry's conflict does not matter", path: yaml, app: "twin", print: "name", out: "Broken twin\n"},
		{name: "not configured", path: yaml, app: "Jupyter", code: 1},
		{name: "unknown field", path: yaml, app: "Syncthing", print: "colour", code: 2, errOut: `unknown field "colour"`},
		{name: "missing file", path: filepath.Join(dir, "none.yaml"), app: "x", code: 2, errOut: "no such file"},
		{name: "empty file", path: writeTemp(t, dir, "empty.yaml", "\n"), app: "x", code: 2, errOut: "empty.yaml is empty"},
		{name: "no applications", path: writeTemp(t, dir, "other.yaml", "other: 1\n"), app: "x", code: 2, errOut: "has no applications"},
		{name: "syntax error", path: writeTemp(t, dir, "bad.yaml", "applications: [\n"), app: "x", code: 2, errOut: "YAML syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runApp(&out, &errOut, tt.path, tt.app, tt.print)
			if code != tt.code || out.String() != tt.out || !strings.Contains(errOut.String(), tt.errOut) {
				t.Fatalf("code %d out %q err %q; want %d %q %q", code, out.String(), errOut.String(), tt.code, tt.out, tt.errOut)
			}
		})
	}
}

func mustWriteFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeTemp(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	mustWriteFile(t, p, body)
	return p
}

// TestLaunchGoldenInputs: the portal.yaml of each testdata/adapt/launch_*.txt
// golden file is exactly what the boot writes in that launch mode, so the
// adapter's golden tests cover every config shape the boot produces.
func TestLaunchGoldenInputs(t *testing.T) {
	const (
		ref   = "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter|localhost:8080:8080:/terminals/1:Jupyter Terminal|localhost:8384:18384:/:Syncthing|localhost:6006:16006:/:Tensorboard"
		noJup = "localhost:1111:11111:/:Instance Portal|localhost:8384:18384:/:Syncthing|localhost:6006:16006:/:Tensorboard"
		seed  = "localhost:1111:11111:/:Instance Portal|localhost:8080:8080:/:Jupyter|localhost:8384:18384:/:Syncthing"
	)
	jupyterLaunch := "jupyter-notebook --port=8080 --certfile=/etc/instance.crt"
	cases := map[string]portalconfig.LaunchInput{
		"launch_entrypoint.txt":          {PortalConfig: ref, JupyterPortMapped: true, ForceJupyter: true},
		"launch_entrypoint_unmapped.txt": {PortalConfig: ref, ForceJupyter: true},
		"launch_entrypoint_addback.txt":  {PortalConfig: noJup, JupyterPortMapped: true, ForceJupyter: true},
		"launch_jupyter.txt":             {PortalConfig: ref, HasLaunchFile: true, LaunchFile: jupyterLaunch, JupyterPortMapped: true, ForceJupyter: true},
		"launch_ssh.txt":                 {PortalConfig: ref, HasLaunchFile: true, LaunchFile: "sshd", JupyterPortMapped: true, ForceJupyter: true},
		"launch_seed_entrypoint.txt":     {PortalConfig: seed, JupyterPortMapped: true, ForceJupyter: true},
		"launch_seed_jupyter.txt":        {PortalConfig: seed, HasLaunchFile: true, LaunchFile: jupyterLaunch, JupyterPortMapped: true, ForceJupyter: true},
	}
	files, _ := filepath.Glob("testdata/adapt/launch_*.txt")
	if len(files) != len(cases) {
		t.Errorf("%d launch_*.txt golden files, %d cases", len(files), len(cases))
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata/adapt", name))
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(raw), goldenSep, 3)
			if len(parts) < 2 {
				t.Fatal("no portal.yaml section")
			}
			mapped := strings.Contains(parts[0], "\nVAST_TCP_PORT_8080=")
			if mapped != in.JupyterPortMapped {
				t.Errorf("the golden environment maps 8080: %v, the case: %v", mapped, in.JupyterPortMapped)
			}
			body, err := portalconfig.ApplyLaunch(in).YAML()
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(body)) != strings.TrimSpace(parts[1]) {
				t.Errorf("the boot writes\n%s\nthe golden file has\n%s", body, parts[1])
			}
		})
	}
}
