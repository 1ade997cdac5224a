package provisioner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/instanceportal/portal/provstatus"
)

// ownerMarker is planted in a state directory the provisioner created
// itself (the reference's name), so that --force never clears a directory
// it was merely pointed at.
const ownerMarker = ".provisioner-state-dir"

// forbiddenStateDirs are system roots refused as a state directory.
var forbiddenStateDirs = map[string]bool{
	"/": true, "/etc": true, "/usr": true, "/var": true, "/bin": true, "/sbin": true,
	"/lib": true, "/lib64": true, "/opt": true, "/root": true, "/home": true,
	"/boot": true, "/dev": true, "/proc": true, "/sys": true, "/run": true,
}

// StateDir is PROVISIONER_STATE_DIR when it is an absolute path that is not
// a system root, else the default; the warning says why a value was
// ignored.
func StateDir(env Env) (dir, warning string) {
	raw := env.Get(provstatus.StateDirEnv)
	if raw == "" {
		return provstatus.DefaultStateDir, ""
	}
	p := filepath.Clean(raw)
	switch {
	case !filepath.IsAbs(p):
		return provstatus.DefaultStateDir, fmt.Sprintf("%s=%q is not absolute, ignoring", provstatus.StateDirEnv, raw)
	case forbiddenStateDirs[p]:
		return provstatus.DefaultStateDir, fmt.Sprintf("%s=%q is a system directory, ignoring", provstatus.StateDirEnv, raw)
	}
	return p, ""
}

// State is the phase hashes of earlier runs: DIR/<phase>.hash, each the
// SHA-256 of the phase's content at its last success.
type State struct{ Dir string }

// Hash is the phase's key: SHA-256 over its name and content.
func Hash(phase string, content []byte) string {
	h := sha256.New()
	io.WriteString(h, phase+":")
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

func (s State) file(phase string) string { return filepath.Join(s.Dir, phase+".hash") }

// Done says whether phase last succeeded with this hash. A symlink in
// place of the hash file is not followed.
func (s State) Done(phase, hash string) bool {
	f, err := os.OpenFile(s.file(phase), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	return err == nil && strings.TrimSpace(string(b)) == hash
}

// Ensure creates the directory (0700) with the ownership marker when it
// does not exist; an existing directory is used as it is and never
// adopted.
func (s State) Ensure() error {
	err := os.Mkdir(s.Dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(s.Dir), 0o755); err == nil {
			err = os.Mkdir(s.Dir, 0o700)
		}
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, ownerMarker), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, "provisioner state directory\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Mark records that phase succeeded with hash. The hash file is written
// through a temp file and rename, so a symlink planted there is replaced,
// never followed.
func (s State) Mark(phase, hash string) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, "."+phase+".hash-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, hash); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.file(phase))
}

// ours says whether the provisioner created dir: it holds a regular
// marker file, or (a directory from before the marker) only hash files and
// the progress document.
func (s State) ours() bool {
	if fi, err := os.Lstat(filepath.Join(s.Dir, ownerMarker)); err == nil && fi.Mode().IsRegular() {
		return true
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil || len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".hash"), n == provstatus.FileName, strings.HasPrefix(n, ".progress-"):
		case n == provstatus.RequestsDir && e.IsDir():
		default:
			return false
		}
	}
	return true
}

// ErrForeignStateDir refuses --force on a directory the provisioner did
// not create.
var ErrForeignStateDir = errors.New("the state directory holds files the provisioner did not write, so it did not create it; remove them, point " +
	provstatus.StateDirEnv + " elsewhere, or drop --force")

// Clear forgets every phase (--force): the hash files are removed, nothing
// else. A directory the provisioner did not create is refused.
func (s State) Clear() error {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.ours() {
		return fmt.Errorf("%s: %w", s.Dir, ErrForeignStateDir)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".hash") {
			if err := os.Remove(filepath.Join(s.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
