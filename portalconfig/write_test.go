package portalconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()

	t.Run("new file is 0644", func(t *testing.T) {
		p := filepath.Join(dir, "new.yaml")
		if err := WriteFileAtomic(p, []byte("a")); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode = %v", fi.Mode())
		}
	})
	t.Run("existing mode kept", func(t *testing.T) {
		p := filepath.Join(dir, "kept.yaml")
		_ = os.WriteFile(p, []byte("old"), 0o600)
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(p, []byte("new")); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		b, _ := os.ReadFile(p)
		if fi.Mode().Perm() != 0o600 || string(b) != "new" {
			t.Errorf("mode %v content %q", fi.Mode(), b)
		}
	})
	t.Run("symlink target written, link kept", func(t *testing.T) {
		target := filepath.Join(dir, "real.yaml")
		_ = os.WriteFile(target, []byte("old"), 0o640)
		link := filepath.Join(dir, "link.yaml")
		if err := os.Symlink("real.yaml", link); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(link, []byte("via link")); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(link)
		if fi.Mode()&os.ModeSymlink == 0 {
			t.Error("link replaced by a file")
		}
		b, _ := os.ReadFile(target)
		ti, _ := os.Stat(target)
		if string(b) != "via link" || ti.Mode().Perm() != 0o640 {
			t.Errorf("target %q mode %v", b, ti.Mode())
		}
	})
	t.Run("dangling symlink creates the target", func(t *testing.T) {
		link := filepath.Join(dir, "dangling.yaml")
		if err := os.Symlink(filepath.Join(dir, "created.yaml"), link); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(link, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "created.yaml")); string(b) != "x" {
			t.Errorf("created = %q", b)
		}
	})
	t.Run("no temp files left", func(t *testing.T) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if len(e.Name()) > 0 && e.Name()[0] == '.' {
				t.Errorf("leftover %s", e.Name())
			}
		}
	})
	t.Run("missing directory is an error", func(t *testing.T) {
		if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "x.yaml"), []byte("x")); err == nil {
			t.Error("want error")
		}
	})
	t.Run("symlink loop is an error", func(t *testing.T) {
		a, b := filepath.Join(dir, "loopa"), filepath.Join(dir, "loopb")
		_ = os.Symlink(b, a)
		_ = os.Symlink(a, b)
		if err := WriteFileAtomic(a, []byte("x")); err == nil {
			t.Error("want error")
		}
	})
}
