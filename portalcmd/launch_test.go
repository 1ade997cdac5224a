package portalcmd

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
