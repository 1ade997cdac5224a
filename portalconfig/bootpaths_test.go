package portalconfig

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBootPathDefaults: the path defaults of the boot's bash
// (rootfs/opt/supervisor-scripts/utils/paths.sh, sourced with a clean
// environment) equal the Go constants, so that the portal and the scripts
// look at the same files.
func TestBootPathDefaults(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	want := map[string]string{
		"PORTAL_YAML":       DefaultPortalYAML,
		"LAUNCH_FILE":       DefaultLaunchFile,
		"INSTANCE_CERT":     DefaultCertFile,
		"INSTANCE_KEY":      DefaultKeyFile,
		"PORTAL_LOG_DIR":    DefaultLogDir,
		"PORTAL_STATE_DIR":  DefaultStateDir,
		"PORTAL_SKIP_DIR":   DefaultSkipDir,
		"SUPERVISOR_SOCKET": DefaultSupervisorSocket,
	}
	script := ". ../rootfs/opt/supervisor-scripts/utils/paths.sh"
	for name := range want {
		script += "; printf '%s=%s\\n' " + name + " \"$" + name + "\""
	}
	cmd := exec.Command(bash, "--noprofile", "--norc", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing paths.sh: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("paths.sh: %s=%q, Go: %q", name, got[name], w)
		}
	}
}
