package portalcmd

import (
	"os"
	"strings"
	"testing"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

// TestTokenCommand: OPEN_BUTTON_TOKEN, else WEB_PASSWORD (blank ones
// skipped), else the generated token, saved and printed again the same.
// That the handler accepts what is printed is held by caddymodules'
// TestPortalTokenCommand.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	env := func(kv ...string) portalconfig.Environ {
		m := portalconfig.Environ{"PORTAL_STATE_DIR": dir}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	printed := func(l portalconfig.Environ) string {
		t.Helper()
		var b strings.Builder
		if err := printToken(&b, l); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "obt", "WEB_PASSWORD", "pw")); got != "obt\n" {
		t.Errorf("with both set: %q", got)
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "", "WEB_PASSWORD", "pw")); got != "pw\n" {
		t.Errorf("with WEB_PASSWORD only: %q", got)
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", " \t", "WEB_PASSWORD", "pw")); got != "pw\n" {
		t.Errorf("with a blank OPEN_BUTTON_TOKEN: %q", got)
	}
	generated := printed(env())
	if _, err := os.Stat(vastauth.TokenPath(dir)); err != nil {
		t.Fatalf("token not persisted: %v", err)
	}
	if again := printed(env()); again != generated {
		t.Errorf("second run printed %q, first %q", again, generated)
	}
}
