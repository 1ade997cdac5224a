// Package atomicfile writes a file so that readers never see half of it: a
// temporary file in the same directory, its mode set, renamed over the
// target. The provisioner, the capability manifest, the progress document
// and the thread-cap block of /etc/environment all write this way.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write stores data at path with mode perm, creating the directory (0755)
// if needed.
func Write(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
