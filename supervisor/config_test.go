package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero is valid", Config{}, ""},
		{"defaults are valid", Default(), ""},
		{"relative socket", Config{Socket: "run/s.sock"}, `socket: "run/s.sock": want an absolute path`},
		{"relative skip dir", Config{SkipDir: "skip"}, `skip_dir: "skip": want an absolute path`},
		{"blank unstoppable", Config{Unstoppable: []string{"ok", " "}}, `unstoppable: entry 2 " ": want a program name`},
		{"unstoppable with a slash", Config{Unstoppable: []string{"a/b"}}, `unstoppable: entry 1 "a/b": want a program name`},
		{"negative call timeout", Config{CallTimeout: -1}, "call_timeout: must be at least 100ms, got -1ns"},
		{"tiny call timeout", Config{CallTimeout: ms(1)}, "call_timeout: must be at least 100ms, got 1ms"},
		{"short wait timeout", Config{WaitTimeout: ms(500)}, "wait_timeout: must be at least 1s, got 500ms"},
		{"every error at once", Config{Socket: "x", SkipDir: "y"}, "socket: \"x\": want an absolute path\nskip_dir: \"y\": want an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Check()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func ms(n int) confdecl.Duration { return confdecl.Duration(time.Duration(n) * time.Millisecond) }

func TestNewFillsDefaults(t *testing.T) {
	s, err := New(Config{SkipDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Config()
	want := Default()
	want.SkipDir = "/x"
	if got.Socket != want.Socket || got.SkipDir != want.SkipDir || got.CallTimeout != want.CallTimeout || got.WaitTimeout != want.WaitTimeout {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestProtectedReason(t *testing.T) {
	c := Config{Unstoppable: []string{" jupyter ", "Syncthing"}}
	for name, want := range map[string]string{
		"caddy":     "caddy serves this portal",
		"CADDY":     "caddy serves this portal",
		"jupyter":   "jupyter is listed as unstoppable (PORTAL_UNSTOPPABLE)",
		"syncthing": "syncthing is listed as unstoppable",
		"comfyui":   "",
		"caddy2":    "",
	} {
		got := c.protectedReason(name)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("protectedReason(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestSkipMarker(t *testing.T) {
	dir := t.TempDir()
	skip := filepath.Join(dir, "skip")
	if err := os.Mkdir(skip, 0o777); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(secret, "the first line of a secret file\n")
	write(filepath.Join(skip, "named"), "ComfyUI\nsecond line\n")
	write(filepath.Join(skip, "empty"), "")
	write(filepath.Join(skip, "binary"), "\x00\x01junk")
	write(filepath.Join(skip, "long"), strings.Repeat("a", 1000))
	write(filepath.Join(skip, "spaces"), "  Jupyter Lab  \n")
	if err := os.Symlink(secret, filepath.Join(skip, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("named", filepath.Join(skip, "inside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(skip, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{SkipDir: skip}}
	tests := []struct {
		name    string
		skipped bool
		app     string
	}{
		{"named", true, "ComfyUI"},
		{"spaces", true, "Jupyter Lab"},
		{"empty", true, ""},
		{"binary", true, ""},
		{"long", true, strings.Repeat("a", maxMarkerBytes)},
		// A planted link is a marker, but what it points to is never read.
		{"escape", true, ""},
		{"inside", true, ""},
		{"adir", true, ""},
		{"missing", false, ""},
		{"../secret", false, ""},
		{"..", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		skipped, app := s.SkipMarker(tt.name)
		if skipped != tt.skipped || app != tt.app {
			t.Errorf("SkipMarker(%q) = %v, %q; want %v, %q", tt.name, skipped, app, tt.skipped, tt.app)
		}
	}
	// No skip directory at all: nothing is skipped.
	s = &Service{cfg: Config{SkipDir: filepath.Join(dir, "none")}}
	if skipped, _ := s.SkipMarker("named"); skipped {
		t.Error("missing skip dir reported a marker")
	}
}
