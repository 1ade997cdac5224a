// Package atomicfile writes a file so that readers never see half of it: a
// temporary file in the same directory, its mode set, renamed over the
// target. The provisioner, the capability manifest, the progress document
// and the thread-cap block of /etc/environment all write this way, and
// portal.yaml durably (WriteDurable).
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
	return replace(path, data, perm, false)
}

// WriteDurable stores data at path with mode perm, in a directory that
// must exist, and syncs the file before the rename and the directory after
// it, so that a crash leaves the old content or the new one, never an
// empty file (portal.yaml).
func WriteDurable(path string, data []byte, perm fs.FileMode) error {
	return replace(path, data, perm, true)
}

func replace(path string, data []byte, perm fs.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil && durable {
		if d, derr := os.Open(dir); derr == nil { // make the rename durable
			_ = d.Sync()
			d.Close()
		}
	}
	return err
}
