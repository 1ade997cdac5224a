package portalcmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instanceportal/portal/gpumetrics"
)

func runPrometheusTarget(t *testing.T, env map[string]string, yaml string, args ...string) (string, error) {
	t.Helper()
	for _, k := range []string{"PUBLIC_IPADDR", "CONTAINER_ID", "VAST_CONTAINERLABEL", "PORTAL_CONFIG", "ENABLE_HTTPS", "VAST_TCP_PORT_1111"} {
		t.Setenv(k, env[k]) // restored when the test ends
		if env[k] == "" {
			os.Unsetenv(k)
		}
	}
	path := filepath.Join(t.TempDir(), "portal.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := prometheusTargetCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--config", path}, args...))
	err := cmd.Execute()
	return out.String(), err
}

const portalOnly = "applications:\n  Instance Portal:\n    hostname: localhost\n    external_port: 1111\n    internal_port: 11111\n    open_path: /\n    name: Instance Portal\n"

func TestPrometheusTarget(t *testing.T) {
	out, err := runPrometheusTarget(t, map[string]string{
		"PUBLIC_IPADDR": "203.0.113.5", "VAST_TCP_PORT_1111": "41111", "VAST_CONTAINERLABEL": "C.77",
	}, portalOnly, "--gpu-model", "NVIDIA H100 80GB HBM3")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got []gpumetrics.FileSDEntry
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("not a file_sd document: %v\n%s", err, out)
	}
	e := got[0]
	if e.Targets[0] != "203.0.113.5:41111" || e.Labels["instance_id"] != "77" || e.Labels["container_label"] != "C.77" ||
		e.Labels["gpu_model"] != "NVIDIA H100 80GB HBM3" || e.Labels["__scheme__"] != "http" || e.Labels["host"] == "" {
		t.Errorf("entry: %+v", e)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		yaml string
		want string
	}{
		{"no mapping", map[string]string{"PUBLIC_IPADDR": "1.2.3.4"}, portalOnly, "VAST_TCP_PORT_1111 is not set"},
		{"no ip", map[string]string{"VAST_TCP_PORT_1111": "41111"}, portalOnly, "PUBLIC_IPADDR is not set"},
		{"no portal app", map[string]string{"PUBLIC_IPADDR": "1.2.3.4", "VAST_TCP_PORT_1111": "41111"},
			"applications:\n  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n    open_path: /\n    name: Jupyter\n", `no "Instance Portal" app`},
		{"bad yaml", nil, "applications: [", "portal.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPrometheusTarget(t, tc.env, tc.yaml, "--gpu-model", "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q (output %s)", err, tc.want, out)
			}
		})
	}
}
