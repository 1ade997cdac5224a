package capabilities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"
)

// waitFor polls cond, bounded in time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, 10*time.Second, 0, "the condition", cond)
}

func TestCombinedGuide(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"comfyui.md": "# ComfyUI on this image\nbody c\n", "base.md": "# The base image\nbody b", "pytorch.md": "## PyTorch\nbody p\n",
		"notes.txt": "not a guide",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	text, files := CombinedGuide(dir)
	want := []string{"base.md", "pytorch.md", "comfyui.md"}
	for i, f := range files {
		if filepath.Base(f) != want[i] {
			t.Errorf("order %v", files)
		}
	}
	s := string(text)
	for _, part := range []string{"1. base.md — The base image", "2. pytorch.md — PyTorch", "3. comfyui.md — ComfyUI on this image",
		"= base.md ===================\n\n# The base image\nbody b\n", "body p", "body c"} {
		if !strings.Contains(s, part) {
			t.Errorf("combined guide lacks %q:\n%s", part, s)
		}
	}
	if strings.Index(s, "body b") > strings.Index(s, "body p") || strings.Contains(s, "not a guide") {
		t.Error("wrong order or a non-guide included")
	}
	m := agentsGuide(dir, "/etc/g.md")
	if len(m.Files) != 3 || filepath.Base(m.Files[0]) != "base.md" || m.Dir != dir+"/" {
		t.Errorf("%+v", m)
	}
}

func TestLinkGuide(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "guide.md")
	legacy := filepath.Join(dir, "base.md")
	ws, home, missing := filepath.Join(dir, "ws"), filepath.Join(dir, "home"), filepath.Join(dir, "nope")
	os.Mkdir(ws, 0o755)
	os.Mkdir(home, 0o755)
	os.WriteFile(filepath.Join(ws, "CLAUDE.md"), []byte("the user's own\n"), 0o644)
	os.Symlink(legacy, filepath.Join(home, "AGENTS.md"))
	os.Symlink("/somewhere/else.md", filepath.Join(home, "CLAUDE.md"))
	lines := LinkGuide(target, []string{ws, home, missing}, legacy)
	if len(lines) != 4 {
		t.Fatalf("%q", lines)
	}
	for p, want := range map[string]string{
		filepath.Join(ws, "AGENTS.md"): target, filepath.Join(home, "AGENTS.md"): target, filepath.Join(home, "CLAUDE.md"): "/somewhere/else.md",
	} {
		if got, _ := os.Readlink(p); got != want {
			t.Errorf("%s -> %q, want %q", p, got, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "CLAUDE.md")); string(b) != "the user's own\n" {
		t.Error("the user's file was replaced")
	}
	again := LinkGuide(target, []string{ws}, legacy)
	if !strings.HasPrefix(again[0], "kept ") {
		t.Errorf("second boot: %q", again)
	}
}

func TestUpdateBanner(t *testing.T) {
	dir := t.TempDir()
	banner := filepath.Join(dir, "banner")
	line := BannerLine("/etc/vast-agents-guide.md")
	if exists, err := UpdateBanner(banner, line, true); exists || err != nil {
		t.Fatalf("missing banner: %v %v", exists, err)
	}
	if _, err := os.Stat(banner); err == nil {
		t.Fatal("a missing banner was created")
	}
	os.WriteFile(banner, []byte("Welcome to your instance\n"+BannerPrefix+" old wording\n"), 0o640)
	for range 2 {
		if _, err := UpdateBanner(banner, line, true); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(banner)
	if string(b) != "Welcome to your instance\n"+line+"\n" {
		t.Errorf("banner %q", b)
	}
	if fi, _ := os.Stat(banner); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	UpdateBanner(banner, line, false)
	if b, _ := os.ReadFile(banner); string(b) != "Welcome to your instance\n" {
		t.Errorf("disabled: %q", b)
	}
	for v, want := range map[string]bool{"": true, "true": true, "FALSE": false, " false ": false, "0": true} {
		if BannerEnabled(v) != want {
			t.Errorf("BannerEnabled(%q)", v)
		}
	}
	if !strings.HasPrefix(line, BannerPrefix) || strings.Contains(line, "\n") {
		t.Errorf("line %q", line)
	}
}
