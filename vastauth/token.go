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
	"strings"
	"syscall"
)

// TokenFileName is the file under the state directory that holds the
// generated token.
const TokenFileName = "auth_token"

// maxTokenFile bounds what we read from the token file.
const maxTokenFile = 4096

// GenerateToken returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters, safe in a URL as is).
func GenerateToken() (string, error) {
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
	p := TokenPath(stateDir)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", fmt.Errorf("token file %s is a symlink; refusing it", p)
		}
		return "", fmt.Errorf("reading token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", p)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %v; it must be 0600 (chmod 600 it)", p, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("reading token file %s: %w", p, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s is over %d bytes", p, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty; delete it to generate a new token", p)
	}
	return tok, nil
}

// LoadOrCreateToken returns the token persisted under stateDir, generating
// and persisting one (mode 0600, directory 0700 if it must be created) when
// there is none yet. created reports whether it was generated now. Two
// processes racing here agree on one token: the file appears atomically
// (written aside, then hard-linked into place, which fails if it exists).
func LoadOrCreateToken(stateDir string) (token string, created bool, err error) {
	if stateDir == "" {
		return "", false, errors.New("no state directory for the generated token")
	}
	tok, err := ReadToken(stateDir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, false, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", false, fmt.Errorf("creating state directory: %w", err)
	}
	tok, err = GenerateToken()
	if err != nil {
		return "", false, err
	}
	tmp, err := os.CreateTemp(stateDir, "."+TokenFileName+".*")
	if err != nil {
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	if err := os.Link(tmp.Name(), TokenPath(stateDir)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race: use its token.
			tok, err = ReadToken(stateDir)
			return tok, false, err
		}
		return "", false, fmt.Errorf("writing token: %w", err)
	}
	return tok, true, nil
}

// Mask shows enough of a secret to recognise it and never all of it: at
// most the first 4 characters, and at most a quarter of a short one.
func Mask(secret string) string {
	r := []rune(secret)
	return string(r[:min(4, len(r)/4)]) + "…"
}
