package vastauth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	tok, created, err := loadOrCreateToken(dir)
	if err != nil || !created {
		t.Fatalf("first call: %q, created=%v, err=%v", tok, created, err)
	}
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q: want 43 URL-safe characters", tok)
	}
	st, err := os.Stat(TokenPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("created state dir mode %v, want 0700", st.Mode().Perm())
	}
	again, created, err := loadOrCreateToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second call: %q, created=%v, err=%v; want the same token", again, created, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only the token file", len(entries))
	}
}

func TestLoadOrCreateTokenRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	toks := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, _, err := loadOrCreateToken(dir)
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks[1:] {
		if tok != toks[0] {
			t.Fatalf("racing processes disagree: %q vs %q", tok, toks[0])
		}
	}
}

func TestReadTokenRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadToken(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	p := TokenPath(dir)
	write := func(content string, mode os.FileMode) {
		os.Remove(p)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("tok\n", 0o644)
	if _, err := ReadToken(dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("world-readable file: %v", err)
	}
	write(" \n", 0o600)
	if _, err := ReadToken(dir); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	write(strings.Repeat("x", maxTokenFile+1), 0o600)
	if _, err := ReadToken(dir); err == nil {
		t.Error("oversized file accepted")
	}
	write("  my-token \n", 0o600)
	if tok, err := ReadToken(dir); err != nil || tok != "my-token" {
		t.Errorf("ReadToken = %q, %v", tok, err)
	}
	target := filepath.Join(dir, "elsewhere")
	write("x", 0o600)
	os.Rename(p, target)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(dir); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	if _, _, err := loadOrCreateToken(dir); err == nil {
		t.Error("loadOrCreateToken replaced a symlinked token file instead of failing")
	}
	if _, _, err := loadOrCreateToken(""); err == nil {
		t.Error("empty state dir accepted")
	}
}
