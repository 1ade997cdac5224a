package caddymodules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instanceportal/portal/portalconfig"
)

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
