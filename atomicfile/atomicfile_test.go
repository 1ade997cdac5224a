package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	for _, c := range []struct {
		body string
		perm os.FileMode
	}{{"one", 0o600}, {"two", 0o644}} {
		if err := Write(p, []byte(c.body), c.perm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != c.body || fi.Mode().Perm() != c.perm {
			t.Errorf("%q %v: read %q mode %v err %v", c.body, c.perm, b, fi.Mode().Perm(), err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "sub", ".f.*")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}
	if err := Write(filepath.Join(p, "under-a-file"), nil, 0o644); err == nil {
		t.Error("writing under a regular file must fail")
	}
}

func TestWriteDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, body := range []string{"one", "two"} {
		if err := WriteDurable(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != body || fi.Mode().Perm() != 0o640 {
			t.Errorf("%q: read %q mode %v err %v", body, b, fi.Mode().Perm(), err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".f.*")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}
	if err := WriteDurable(filepath.Join(dir, "no", "such", "f"), nil, 0o644); err == nil {
		t.Error("WriteDurable created a missing directory")
	}
}
