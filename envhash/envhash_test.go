package envhash

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const status = `Package: libc6
Status: install ok installed
Version: 2.36-9

Package: bash
Status: install ok installed
Version: 5.2

Package: libgone
Status: deinstall ok config-files
Version: 1

Package: cuda-compat-12-8
Status: install ok installed
Version: 570.1
`

func TestSystemLibraries(t *testing.T) {
	got := SystemLibraries(strings.NewReader(status))
	want := []string{"cuda-compat-12-8=570.1", "libc6=2.36-9"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func FuzzSystemLibraries(f *testing.F) {
	f.Add(status)
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range SystemLibraries(strings.NewReader(s)) {
			if !strings.Contains(p, "=") {
				t.Fatal(p)
			}
		}
	})
}

func write(t *testing.T, root, p, body string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
	if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The hash changes with what a venv depends on, and only with that.
func TestCompute(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/os-release", "PRETTY_NAME=x\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	write(t, root, "var/lib/dpkg/status", status)
	write(t, root, "venv/main/pyvenv.cfg", "home = /usr/bin\nversion = 3.11.2\n")
	os.MkdirAll(filepath.Join(root, "venv/main/lib/python3.11/site-packages/pip-23.0.dist-info"), 0o755)
	h1 := Compute(root)
	if len(h1) != 12 || Compute(root) != h1 {
		t.Fatalf("hash %q not stable", h1)
	}
	write(t, root, "etc/os-release", "PRETTY_NAME=other words\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	write(t, root, "venv/main/lib/python3.11/site-packages/x.py", "")
	if Compute(root) != h1 {
		t.Fatal("a change that does not matter changed the hash")
	}
	for name, change := range map[string]func(){
		"a package in the venv": func() {
			os.MkdirAll(filepath.Join(root, "venv/main/lib/python3.11/site-packages/torch-2.5.dist-info"), 0o755)
		},
		"the venv's python": func() { write(t, root, "venv/main/pyvenv.cfg", "version = 3.12.1\n") },
		"a system library":  func() { write(t, root, "var/lib/dpkg/status", strings.Replace(status, "2.36-9", "2.36-10", 1)) },
		"the OS release":    func() { write(t, root, "etc/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\n") },
	} {
		before := Compute(root)
		change()
		if Compute(root) == before {
			t.Errorf("%s did not change the hash", name)
		}
	}
}
