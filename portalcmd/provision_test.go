package portalcmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instanceportal/portal/provisioner"
)

func TestManifestSource(t *testing.T) {
	root := t.TempDir()
	withYAML := t.TempDir()
	if err := os.WriteFile(withYAML+defaultManifest, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := provisioner.Env{provisioner.EnvManifest: "https://h/m.yaml"}
	for _, c := range []struct {
		name    string
		args    []string
		env     provisioner.Env
		root    string
		onlyArg bool
		want    string
	}{
		{"argument wins", []string{"/a.yaml"}, env, withYAML, false, "/a.yaml"},
		{"PROVISIONING_MANIFEST", nil, env, withYAML, false, "https://h/m.yaml"},
		{"baked /provisioning.yaml", nil, provisioner.Env{}, withYAML, false, withYAML + defaultManifest},
		{"none", nil, provisioner.Env{}, root, false, ""},
		{"reference command: argument only", nil, env, withYAML, true, ""},
	} {
		if got := ManifestSource(c.args, c.env, c.root, c.onlyArg); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestFailedMarker(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".provisioning_failed")
	writeFailedMarker(p, provisioner.Result{Code: 1, Err: &provisioner.PhaseError{Phase: "pip", Err: errors.New("exit 2: pip install --index-url https://u:secret@h/simple x")}})
	b, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(b), "status=1\nmessage=provisioning failed: phase pip: exit 2") || strings.Contains(string(b), "secret") {
		t.Errorf("marker %q", b)
	}
	writeFailedMarker(p, provisioner.Result{})
	if _, err := os.Stat(p); err == nil {
		t.Error("a success leaves the marker")
	}
}
