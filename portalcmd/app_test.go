package portalcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
