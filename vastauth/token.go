package vastauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Files under the state directory. Each holds one random value written
// once (base64url, 43 characters) and must stay private (0600).
const (
	// TokenFileName holds the generated token, used when no secret is set.
	TokenFileName = "auth_token"
	// SaltFileName holds the per-instance salt of the session key, so that
	// a cookie from another instance with the same secrets is refused.
	SaltFileName = "session_salt"
)

// maxTokenFile bounds what we read from a state file.
const maxTokenFile = 4096

// generateToken returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters, safe in a URL as is).
func generateToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// TokenPath is where the generated token lives under stateDir.
func TokenPath(stateDir string) string { return filepath.Join(stateDir, TokenFileName) }

// ReadToken reads the persisted token from stateDir. A missing file is
// reported with an error satisfying errors.Is(err, fs.ErrNotExist). A
// symlink, a non-regular file, an empty file or one readable by others is
// refused: the token is a password.
func ReadToken(stateDir string) (string, error) {
	return readStateFile(TokenPath(stateDir), "token")
}

// loadOrCreateToken returns the token persisted under stateDir, generating
// and persisting one (mode 0600, directory 0700 if it must be created) when
// there is none yet. created reports whether it was generated now. Two
// processes racing here agree on one token: the file appears atomically
// (written aside, then hard-linked into place, which fails if it exists).
func loadOrCreateToken(stateDir string) (token string, created bool, err error) {
	return loadOrCreateStateFile(stateDir, TokenFileName, "token", true)
}

// loadOrCreateSalt returns the session-key salt of this instance, created
// the same way as the token on first use.
func loadOrCreateSalt(stateDir string) (salt []byte, err error) {
	return loadSalt(stateDir, true)
}

// loadSalt is loadOrCreateSalt; without write, a missing salt is made for
// this call only and nothing is written (see loadOrCreateStateFile).
func loadSalt(stateDir string, write bool) ([]byte, error) {
	s, _, err := loadOrCreateStateFile(stateDir, SaltFileName, "session salt", write)
	return []byte(s), err
}

// replaceSalt writes a new salt over the old one (written aside, then
// renamed into place), which invalidates every session issued so far.
func replaceSalt(stateDir string) ([]byte, error) {
	v, err := generateToken()
	if err != nil {
		return nil, err
	}
	tmp, err := writeAside(stateDir, SaltFileName, v)
	if err != nil {
		return nil, fmt.Errorf("writing session salt: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, filepath.Join(stateDir, SaltFileName)); err != nil {
		return nil, fmt.Errorf("writing session salt: %w", err)
	}
	return []byte(v), nil
}

// readStateFile reads one private value; what names it in messages.
func readStateFile(p, what string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", fmt.Errorf("%s file %s is a symlink; refusing it", what, p)
		}
		return "", fmt.Errorf("reading %s file: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %s file: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s file %s is not a regular file", what, p)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s file %s has mode %v; it must be 0600 (chmod 600 it)", what, p, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("reading %s file %s: %w", what, p, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%s file %s is over %d bytes", what, p, maxTokenFile)
	}
	v := normalizeSecret(string(b))
	if v == "" {
		return "", fmt.Errorf("%s file %s is empty; delete it to generate a new one", what, p)
	}
	return v, nil
}

// loadOrCreateStateFile returns the value in stateDir/name, generating it
// once. See loadOrCreateToken. Without write (`caddy validate`), a missing
// file is not created: the value returned is made for this call only, once
// the state directory (or the nearest parent that exists, which would hold
// it) is known to be writable, so that validation still reports a state
// directory the portal could not use.
func loadOrCreateStateFile(stateDir, name, what string, write bool) (string, bool, error) {
	if stateDir == "" {
		return "", false, fmt.Errorf("no state directory for the %s", what)
	}
	p := filepath.Join(stateDir, name)
	v, err := readStateFile(p, what)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return v, false, err
	}
	if !write {
		if err := checkWritable(stateDir); err != nil {
			return "", false, err
		}
		v, err := generateToken()
		return v, false, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", false, fmt.Errorf("creating state directory: %w", err)
	}
	v, err = generateToken()
	if err != nil {
		return "", false, err
	}
	tmp, err := writeAside(stateDir, name, v)
	if err != nil {
		return "", false, fmt.Errorf("writing %s: %w", what, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race: use its value.
			v, err = readStateFile(p, what)
			return v, false, err
		}
		return "", false, fmt.Errorf("writing %s: %w", what, err)
	}
	return v, true, nil
}

// writeAside writes content plus a newline to a new 0600 temporary file in
// dir (named after name) and returns its path; the caller links or renames
// it into place and removes it.
func writeAside(dir, name, content string) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", err
	}
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(content + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// isPermission reports a failure that a different directory would avoid:
// no permission, or a read-only file system.
// checkWritable reports whether dir, or the nearest parent that exists when
// it does not, may be written by this process, without writing anything.
func checkWritable(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			if err := syscall.Access(d, 2 /* W_OK */); err != nil {
				return fmt.Errorf("creating state directory: %s: %w", d, err)
			}
			return nil
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}
