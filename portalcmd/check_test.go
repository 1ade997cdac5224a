package portalcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instanceportal/portal/portalconfig"
)

// check runs `caddy portal check` with the environment env (on top of an
// empty PORTAL_CONFIG and a state dir in a temp dir) and returns the exit
// status, stdout and stderr.
func check(t *testing.T, path, has string, env map[string]string) (int, string, string) {
	t.Helper()
	t.Setenv("PORTAL_CONFIG", "")
	t.Setenv("PORTAL_STATE_DIR", t.TempDir())
	t.Setenv("ENABLE_HTTPS", "")
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := checkCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	code := runCheck(cmd, path, has)
	return code, out.String(), errOut.String()
}

// TestCheckMissingFile: a config file that does not exist is named as
// such, with the write-config command that makes it (issue 13 bug 4). The
// old code said the file "is empty or has no applications map".
func TestCheckMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	code, out, errOut := check(t, missing, "", nil)
	if code != 1 || out != "" || !strings.Contains(errOut, "error: "+missing+" does not exist") ||
		!strings.Contains(errOut, "caddy portal write-config --config "+missing) || strings.Contains(errOut, "is empty") {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The default path gets the plain command.
	if _, err := os.Stat(portalconfig.DefaultPortalYAML); err == nil {
		t.Logf("%s exists here; the default-path message is checked through missingConfigError", portalconfig.DefaultPortalYAML)
	}
	msg := missingConfigError(portalconfig.DefaultPortalYAML).Error()
	if !strings.HasPrefix(msg, "/etc/portal.yaml does not exist") || !strings.Contains(msg, `PORTAL_CONFIG="hostname:external_port:internal_port:open_path:name|…" caddy portal write-config,`) {
		t.Errorf("default path: %q", msg)
	}
	// --has stays quiet about it and says "broken" (2).
	if code, out, _ := check(t, missing, "Jupyter", nil); code != 2 || out != "" {
		t.Errorf("--has on a missing file: exit %d, stdout %q", code, out)
	}
	// With PORTAL_CONFIG, that is checked instead, with a note.
	code, out, errOut = check(t, missing, "", map[string]string{"PORTAL_CONFIG": "localhost:8080:18080:/:Jupyter"})
	if code != 0 || !strings.Contains(out, "PORTAL_CONFIG: 1 app, http") ||
		!strings.Contains(errOut, "note: "+missing+" does not exist: checking PORTAL_CONFIG instead") {
		t.Errorf("missing file with PORTAL_CONFIG: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := check(t, missing, "Jupyter", map[string]string{"PORTAL_CONFIG": "localhost:8080:18080:/:Jupyter"}); code != 0 || errOut != "" {
		t.Errorf("--has with PORTAL_CONFIG: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckWarnsOnce: with ENABLE_HTTPS=true and no pair the warning is
// printed once (issue 13 bug 6); the old code printed it as "warning:" and
// again as "note:". And "1 app", not "1 apps".
func TestCheckWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portal.yaml")
	if err := os.WriteFile(path, []byte("applications:\n  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := check(t, path, "", map[string]string{
		"ENABLE_HTTPS": "true", "INSTANCE_CERT": filepath.Join(dir, "none.crt"), "INSTANCE_KEY": filepath.Join(dir, "none.key"),
	})
	all := out + errOut
	if code != 0 || strings.Count(all, "ENABLE_HTTPS=true but TLS is off") != 1 || !strings.Contains(errOut, "warning: "+path+": ENABLE_HTTPS=true") {
		t.Errorf("exit %d, the warning must appear once, on stderr:\nstdout %q\nstderr %q", code, out, errOut)
	}
	if !strings.Contains(out, path+": 1 app, http, auth on") {
		t.Errorf("stdout %q, want \"1 app\"", out)
	}
	if countOf(2, "app") != "2 apps" || countOf(0, "app") != "0 apps" {
		t.Error("countOf")
	}
}

func TestWriteConfigSaysOneApp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	t.Setenv("PORTAL_CONFIG", "localhost:8080:18080:/:Jupyter")
	cmd := writeConfigCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--config", path})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "wrote 1 app to "+path+"\n" {
		t.Errorf("write-config said %q", out.String())
	}
}
